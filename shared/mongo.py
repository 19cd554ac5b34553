"""MongoDB conventions shared by the services' stores (FerretDB 1.24 and MongoDB alike)."""

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


async def insert_new(collection: AsyncCollection, docs: list[dict[str, Any]]) -> set[Any]:
    """Insert documents whose `_id` may already be there (written by an earlier attempt or another
    replica): those are left as they are. Any other error is raised. Returns the `_id`s inserted now."""
    if not docs:
        return set()
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details["writeErrors"]
        if any(e["code"] != DUPLICATE_KEY for e in errors):
            raise
        there = {e["index"] for e in errors}
        return {doc["_id"] for n, doc in enumerate(docs) if n not in there}
    return {doc["_id"] for doc in docs}
