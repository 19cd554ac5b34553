"""shared.mongo on the real FerretDB."""

import asyncio

from pymongo import AsyncMongoClient

from shared.mongo import insert_new
from tests.integration.conftest import namespace


def test_insert_new_keeps_what_is_there_and_names_what_it_inserted(stack):
    settings = namespace(stack)

    async def run() -> tuple[set, set, set, list]:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            collection = client[settings.mongo_database]["insert_new"]
            first = await insert_new(collection, [{"_id": "a", "v": 1}, {"_id": "b", "v": 1}])
            again = await insert_new(collection, [{"_id": "b", "v": 2}, {"_id": "c", "v": 2}])
            nothing = await insert_new(collection, [])
            return first, again, nothing, await collection.find().sort("_id", 1).to_list()
        finally:
            await client.close()

    first, again, nothing, stored = asyncio.run(run())
    assert (first, again, nothing) == ({"a", "b"}, {"c"}, set())
    assert [(d["_id"], d["v"]) for d in stored] == [("a", 1), ("b", 1), ("c", 2)]
