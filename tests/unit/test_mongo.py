"""shared.mongo's writes on a collection of dicts (tests/fixtures/sms.py); on FerretDB: tests/integration/test_mongo.py."""

import asyncio

from shared.mongo import delete_all, written
from tests.fixtures.sms import MemoryCollection


def test_written_inserts_the_firsts_and_replaces_the_rest_and_a_first_already_there():
    """A document the caller believed new (its dossier's first status record, delivered again) is there: its
    insert is refused, and it is replaced all the same, never left as it was."""
    collection = MemoryCollection()
    collection.docs = {"there": {"_id": "there", "v": 0}, "known": {"_id": "known", "v": 0}}
    asyncio.run(written(collection, [{"_id": "new", "v": 1}, {"_id": "there", "v": 1}, {"_id": "known", "v": 1}],
                        firsts={"new", "there"}))
    assert {k: d["v"] for k, d in collection.docs.items()} == {"there": 1, "known": 1, "new": 1}
    assert collection.calls["insert_many"] == 1 and collection.calls["bulk_write"] == 1


def test_delete_all_sends_plain_strings_never_what_the_database_would_read_as_an_operator():
    collection = MemoryCollection()
    collection.docs = {"7": {"_id": "7"}, "a": {"_id": "a"}}
    asyncio.run(delete_all(collection, [7, "a", "a"]))
    assert collection.docs == {} and collection.calls["delete_many"] == 1
