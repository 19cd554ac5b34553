"""MongoDB conventions shared by the services' stores (FerretDB 1.24 and MongoDB alike)."""

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


async def insert_new(collection: AsyncCollection, docs: list[dict[str, Any]]) -> None:
    """Insert documents whose `_id` may already be there (written by an earlier attempt or another
    replica): those are left as they are. Any other error is raised."""
    if not docs:
        return
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
            raise
