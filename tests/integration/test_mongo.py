"""shared.mongo on the real FerretDB."""

import asyncio
import statistics
import time

from pymongo import AsyncMongoClient, ReplaceOne, monitoring

from shared.mongo import Chain, KeyReads, delete_all, get_many, insert_new, inserted, read_ahead
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


def test_inserted_tells_each_document_and_of_two_with_one_id_only_the_first_is_inserted(stack):
    settings = namespace(stack)

    async def run() -> tuple[list[bool], list]:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            collection = client[settings.mongo_database]["inserted"]
            await collection.insert_one({"_id": "there", "v": 0})
            done = await inserted(collection, [{"_id": "a", "v": 1}, {"_id": "there", "v": 2}, {"_id": "a", "v": 3},
                                               {"_id": "b", "v": 4}])
            return done, await collection.find().sort("_id", 1).to_list()
        finally:
            await client.close()

    done, stored = asyncio.run(run())
    assert done == [True, False, False, True]
    assert [(d["_id"], d["v"]) for d in stored] == [("a", 1), ("b", 4), ("there", 0)]


class Commands(monitoring.CommandListener):
    """The commands a client sent, by name."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_reads_of_many_keys_at_once_are_one_query_and_a_read_never_asks_for_more(stack):
    """The citizens' lookups read a summary and a key each (services/processing/app.py): read one query each,
    50 clients' lookups cost 100 round trips where a few serve them (KeyReads). And get_many's cursor stayed
    open after its only batch: a getMore followed to learn it was over, twice a read's CPU for one key."""
    settings = namespace(stack)
    commands = Commands()

    async def run() -> tuple[dict, list, list[str], list[str]]:
        client = AsyncMongoClient(settings.mongo_url, event_listeners=[commands])
        try:
            collection = client[settings.mongo_database]["key_reads"]
            await collection.insert_many([{"_id": f"d{n}", "n": n} for n in range(40)])
            commands.sent.clear()
            one = await get_many(collection, ["d1"])
            alone = list(commands.sent)
            reads = KeyReads(collection)
            commands.sent.clear()
            together = await asyncio.gather(*(reads(f"d{n}") for n in range(0, 60, 2)))
            return one, together, alone, list(commands.sent)
        finally:
            await client.close()

    one, together, alone, sent = asyncio.run(run())
    assert [d["n"] for d in one.values()] == [1] and alone == ["find"]
    assert [d and d["n"] for d in together] == [*range(0, 40, 2), *[None] * 10]
    assert sent.count("find") <= 2 and "getMore" not in sent, sent


class Deletes(Commands):
    """The delete statements a client sent, counted."""

    def __init__(self) -> None:
        super().__init__()
        self.statements = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        super().started(event)
        if event.command_name == "delete":
            self.statements += len(event.command["deletes"])


def test_deleting_many_keys_is_one_statement_per_thousand_and_leaves_the_others(stack):
    """delete_all sent a DeleteOne per key: our FerretDB runs each as a query and a transaction of its own,
    ~90 µs of its CPU a document deleted (30 µs a key not there) against ~30 (3) for `{_id: {$in: [...]}}`,
    which it answers from the `_id` index (id-in.patch). The notifications' pending list loses a key per
    message sent, and again at its delivery report."""
    settings = namespace(stack)
    deletes = Deletes()

    async def run() -> list[str]:
        client = AsyncMongoClient(settings.mongo_url, event_listeners=[deletes])
        try:
            collection = client[settings.mongo_database]["delete_all"]
            await collection.insert_many([{"_id": f"d{n:04d}"} for n in range(1_300)])
            await delete_all(collection, [f"d{n:04d}" for n in range(100, 2_600)])  # 1,200 there, 1,300 not
            await delete_all(collection, [])
            return [d["_id"] for d in await collection.find().sort("_id", 1).to_list()]
        finally:
            await client.close()

    assert asyncio.run(run()) == [f"d{n:04d}" for n in range(100)]
    assert deletes.statements == 3


def test_reading_ahead_gives_every_document_once_in_order_and_stops_when_the_reader_does(stack):
    settings = namespace(stack)

    async def run() -> tuple[list, list, list]:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            collection = client[settings.mongo_database]["read_ahead"]
            await collection.insert_many([{"_id": f"d{n:03d}"} for n in range(23)])
            whole = [d["_id"] async for d in read_ahead(collection.find({}, batch_size=4).sort("_id", 1), 4)]
            some = []
            async for doc in read_ahead(collection.find({}, batch_size=4).sort("_id", 1), 4):
                some.append(doc["_id"])
                if len(some) == 6:  # the batch asked for ahead is given up
                    break
            await delete_all(collection, [f"d{n:03d}" for n in range(20)])
            return whole, some, await collection.find().to_list()
        finally:
            await client.close()

    whole, some, left = asyncio.run(run())
    assert whole == [f"d{n:03d}" for n in range(23)]
    assert some == whole[:6]
    assert [d["_id"] for d in left] == ["d020", "d021", "d022"]


def test_a_lookup_by_id_or_of_many_ids_costs_the_same_in_a_hundred_times_larger_collection(stack):
    """Our FerretDB build answers `_id` equality, and `$in` of up to 1,000 ids (shared.mongo.get_many),
    from the `_id` index (deploy/local/ferretdb/): a scan would take ~100 times longer on 100,000
    documents than on 1,000."""
    settings = namespace(stack)

    async def median_lookups(collection, size: int) -> tuple[float, float]:
        pad = "x" * 500
        for start in range(0, size, 10_000):
            await collection.insert_many([{"_id": f"d{n}", "pad": pad} for n in range(start, min(size, start + 10_000))])
        one, many = [], []
        for n in range(200):
            began = time.perf_counter()
            assert await collection.find_one({"_id": f"d{(n * 7919) % size}"}) is not None
            one.append(time.perf_counter() - began)
            began = time.perf_counter()
            assert len(await get_many(collection, [f"d{(n * 7919 + k * 31) % size}" for k in range(20)])) == 20
            many.append(time.perf_counter() - began)
        return statistics.median(one), statistics.median(many)

    async def run() -> tuple[tuple[float, float], tuple[float, float]]:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            db = client[settings.mongo_database]
            return await median_lookups(db["small"], 1_000), await median_lookups(db["large"], 100_000)
        finally:
            await client.close()

    (small, small_many), (large, large_many) = asyncio.run(run())
    assert large < 5 * small, f"{large * 1000:.2f} ms on 100,000 documents vs {small * 1000:.2f} ms on 1,000"
    assert large_many < 5 * small_many, f"20 ids: {large_many * 1000:.2f} ms vs {small_many * 1000:.2f} ms"


def test_get_many_gives_the_documents_there_in_the_order_asked_however_many(stack):
    settings = namespace(stack)

    async def run() -> tuple[list, dict]:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            collection = client[settings.mongo_database]["get_many"]
            await collection.insert_many([{"_id": f"d{n}", "n": n} for n in range(3_000)])
            asked = [f"d{n}" for n in range(2_999, -1, -2)] + ["missing", "d1", '{"$gt": ""}']  # > GET_MANY
            return asked, await get_many(collection, asked)
        finally:
            await client.close()

    asked, found = asyncio.run(run())
    assert list(found) == [key for key in dict.fromkeys(asked) if key.startswith("d")]
    assert all(found[f"d{n}"]["n"] == n for n in range(1, 3_000, 2))


def test_writers_appending_to_one_chain_side_by_side_lose_nothing_and_readers_resume_from_the_summary(stack):
    settings = namespace(stack)

    async def run() -> tuple[list[int], list[dict], list[dict], int]:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            db = client[settings.mongo_database]
            chain = Chain(db["chain"], summaries=db["chain_summaries"])
            # Three writers, each believing the chain empty (hint 0): every entry gets a link of its own.
            numbers = await asyncio.gather(*(chain.append("k", {"v": v}) for v in range(12)))
            first = await chain.entries("k")
            await chain.append("k", {"v": 12}, hint=5)
            second = await chain.entries("k")
            summary = await db["chain_summaries"].find_one({"_id": "k"})
            return sorted(numbers), first, second, summary["upto"]
        finally:
            await client.close()

    numbers, first, second, upto = asyncio.run(run())
    assert numbers == list(range(12))
    assert sorted(e["v"] for e in first) == list(range(12))
    assert [e["v"] for e in second[:12]] == [e["v"] for e in first] and second[12] == {"v": 12}
    assert upto == 13


def test_readers_of_a_chain_without_a_summary_side_by_side_all_get_its_entries(stack):
    """Each of them writes the first summary: one insert wins, the others' are dropped, none fails
    (the citizen's SMS lookup beside the notifications service's own read, seen in `make demo`)."""
    settings = namespace(stack)

    async def run() -> list[list[dict]]:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            db = client[settings.mongo_database]
            chain = Chain(db["first_readers"], summaries=db["first_readers_summaries"])
            for n in range(40):
                await chain.append(f"k{n}", {"v": n})
            answers = []
            for n in range(40):  # a fresh key each round: every round races for its first summary
                answers += await asyncio.gather(*(chain.entries(f"k{n}") for _ in range(16)))
            return answers
        finally:
            await client.close()

    answers = asyncio.run(run())
    assert answers == [[{"v": n}] for n in range(40) for _ in range(16)]


def test_an_update_of_many_statements_and_many_updates_at_once_complete(stack):
    """FerretDB as released kept every update statement's query open until the command ended, each
    holding one of its 100 SQLite connections while its write waited for another: 300 statements in
    one command, or 200 single updates at once, stopped every write for good. Our build closes each
    query before writing (deploy/local/ferretdb/update-close-query.patch)."""
    settings = namespace(stack)

    async def run() -> tuple[int, list[dict]]:
        client = AsyncMongoClient(settings.mongo_url, timeoutMS=60_000)
        try:
            collection = client[settings.mongo_database]["updates"]
            await collection.insert_many([{"_id": f"d{n}", "v": 0} for n in range(300)])
            many = await collection.bulk_write(
                [ReplaceOne({"_id": f"d{n}"}, {"v": 1}, upsert=True) for n in range(300)], ordered=False)
            await asyncio.gather(*(collection.update_one({"_id": f"d{n}"}, {"$inc": {"v": 1}}) for n in range(200)))
            return many.modified_count, await collection.find().to_list()
        finally:
            await client.close()

    modified, stored = asyncio.run(asyncio.wait_for(run(), 120))
    assert modified == 300
    assert sorted(d["v"] for d in stored) == [1] * 100 + [2] * 200
