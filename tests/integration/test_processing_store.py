"""Two replicas racing on one dossier, on the real FerretDB: the insert of each link decides."""

import asyncio
from dataclasses import replace
from datetime import datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from tests.fixtures.sample import VN, event
from tests.unit import test_processing_summaries as summaries
from services.intake.held import HeldDossiers
from services.processing.history import Outgoing, StoredDossier
from services.processing.processor import ProcessingMetrics, Processor
from services.processing.settings import ProcessingSettings
from services.processing.history import integrate
from services.processing.store import DossierStore, history_doc, link_to
from shared.calendar import WorkingCalendar
from shared.dossier import fold
from shared.dvcqg_lookup import Held
from shared.events import parse_event_json
from shared.mongo import unpack
from shared.consumer_app import Record
from tests.integration.conftest import namespace

CODE = "000.00.38.H56-250707-7001"


def record(offset: int, type_: str, time: str, **data) -> Record:
    value = orjson.dumps(event(type_, CODE, datetime.fromisoformat(time).replace(tzinfo=VN), id_=f"e{offset}", **data))
    return Record(parse_event_json(value), value, CODE.encode(), "t", 0, offset, 0)


def test_replicas_racing_on_a_dossier_lose_nothing_and_apply_nothing_twice(stack):
    settings = ProcessingSettings(**namespace(stack).model_dump())
    calendar = WorkingCalendar.load()

    async def scenario() -> tuple[list, list[Outgoing]]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
        published: list[Outgoing] = []

        async def publish(outgoing: list[Outgoing]) -> None:
            published.extend(outgoing)

        def replica() -> Processor:  # its own cache, as another process would have
            return Processor(settings, DossierStore(client, settings.mongo_database), calendar, publish,
                             ProcessingMetrics(CollectorRegistry()))

        a, b = replica(), replica()
        await a.handle([record(1, "dossier.received", "2025-07-07T10:00:00")])
        await b.handle([record(2, "dossier.digitized", "2025-07-07T10:05:00")])  # b reads it first: no receipt
        await a.handle([record(3, "dossier.resolved", "2025-07-08T09:00:00")])  # a's cache is stale
        await b.handle([record(2, "dossier.digitized", "2025-07-07T10:05:00"),  # redelivered to b
                        record(4, "dossier.returned", "2025-07-08T10:00:00")])
        stored = await DossierStore(client, settings.mongo_database).read(CODE)
        await client.close()
        return stored.parsed(), published

    stored, published = asyncio.run(scenario())

    assert sorted(e.id for e in stored) == ["e1", "e2", "e3", "e4"]  # every event, once
    reference = [parse_event_json(r.raw) for r in (
        record(1, "dossier.received", "2025-07-07T10:00:00"), record(2, "dossier.digitized", "2025-07-07T10:05:00"),
        record(3, "dossier.resolved", "2025-07-08T09:00:00"), record(4, "dossier.returned", "2025-07-08T10:00:00"),
    )]
    assert fold(stored, calendar).dossier == fold(reference, calendar).dossier
    states = [orjson.loads(o.value)["data"]["new"]["state"] for o in published if o.kind == "status"]
    assert states[0] == "processing" and states[-1] == "returned"
    assert "resolved" in states


def test_a_replica_that_never_saw_a_dossier_reads_it_first_when_its_events_bring_no_receipt(stack):
    """After a restart or a rebalance: taken for new, its link's insert would fail (FerretDB then inserts the batch's
    links one at a time) and the dossier be read anyway. A receipt is taken for new: most dossiers it opens are."""
    settings = ProcessingSettings(**namespace(stack).model_dump())

    async def scenario() -> tuple[float, float, list[str]]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)

        async def publish(outgoing: list[Outgoing]) -> None:
            pass

        def replica() -> Processor:
            return Processor(settings, DossierStore(client, settings.mongo_database), WorkingCalendar.load(), publish,
                             ProcessingMetrics(CollectorRegistry()))

        await replica().handle([record(11, "dossier.received", "2025-07-07T10:00:00")])
        restarted = replica()
        await restarted.handle([record(12, "dossier.digitized", "2025-07-07T10:05:00")])
        read_first = restarted._metrics.reloaded._value.get()
        again = replica()
        await again.handle([record(11, "dossier.received", "2025-07-07T10:00:00")])  # a receipt redelivered
        taken_for_new = again._metrics.reloaded._value.get()
        stored = await DossierStore(client, settings.mongo_database).read(CODE)
        await client.close()
        return read_first, taken_for_new, sorted(e.id for e in stored.parsed())

    read_first, taken_for_new, events = asyncio.run(scenario())
    assert read_first == 0 and taken_for_new == 1
    assert events == ["e11", "e12"]


# -- the history, the summary and the links (services/processing/store.py) -----------------------------


def lived(events: int) -> list[tuple[StoredDossier, StoredDossier]]:
    """(before, after) of each event of a dossier, each event its own batch (tests/unit/test_processing_summaries)."""
    kept = summaries.lived(events)
    return list(zip([StoredDossier(summaries.CODE), *(replace(k, outbox=[]) for k in kept)],
                    [replace(k, version=k.version - 1) for k in kept], strict=False))


def test_a_dossier_read_back_is_the_one_written_whatever_link_its_history_stopped_at(stack):
    settings = ProcessingSettings(**namespace(stack).model_dump())

    async def scenario() -> tuple[list[tuple[int, StoredDossier, StoredDossier | None]], int]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
        store, seen = DossierStore(client, settings.mongo_database), []
        for before, after in lived(14):
            [written], lost = await store.save([(before, after)])
            assert not lost
            await store.mark_sent([written])
            fresh = DossierStore(client, settings.mongo_database)  # a replica that never saw it
            seen.append((written.version, replace(written, outbox=[]), await fresh.read(summaries.CODE)))
        histories = await client[settings.mongo_database]["dossier_histories"].find_one({"_id": summaries.CODE})
        await client.close()
        return seen, unpack(histories["blob"])["version"]

    seen, history = asyncio.run(scenario())
    assert history == 8  # the last checkpoint: versions 9 to 14 are read from their links
    for version, written, read in seen:
        assert read == written, version
        assert (read.view, read.phone4, read.summary_behind) == (written.view, written.phone4, False), version


@pytest.mark.parametrize("records_as_json", [False, True])
def test_a_write_whose_outbox_was_not_published_is_read_with_it_and_one_published_without(stack, records_as_json):
    settings = ProcessingSettings(**namespace(stack).model_dump())

    async def scenario() -> tuple[StoredDossier, StoredDossier]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
        store = DossierStore(client, settings.mongo_database, records_as_json=records_as_json)
        changes = lived(6)
        for before, after in changes[:5]:
            [written], _ = await store.save([(before, after)])
            await store.mark_sent([written])
        before, after = changes[5]
        after = replace(after, outbox=[Outgoing("status", summaries.CODE, b'{"a":"record"}')])  # compact, as records are
        await store.save([(before, after)])  # stopped before its outbox was published
        unpublished = await DossierStore(client, settings.mongo_database).read(summaries.CODE)
        await store.mark_sent([replace(after, version=after.version + 1)])
        published = await DossierStore(client, settings.mongo_database).read(summaries.CODE)
        await client.close()
        return unpublished, published

    unpublished, published = asyncio.run(scenario())
    assert unpublished.version == published.version == 6
    assert unpublished.outbox == [Outgoing("status", summaries.CODE, b'{"a":"record"}')]  # to publish again
    assert unpublished.summary_behind  # links keep no view: the next batch folds it, even one of duplicates
    assert published.outbox == [] and not published.summary_behind


def test_a_first_links_summary_and_history_are_inserted_or_replace_what_is_there(stack):
    """After a dossier's first link, its summary and history are inserted (store.py `_written`); one there after
    all (another replica's, written since) is replaced, as every later write replaces them."""
    settings = ProcessingSettings(**namespace(stack).model_dump())

    async def scenario() -> tuple[dict, dict, StoredDossier | None]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
        store, database = DossierStore(client, settings.mongo_database), client[settings.mongo_database]
        (before, after), _ = lived(2)
        [written], _ = await store.save([(before, after)])
        assert written.version == 1
        planted = {"_id": summaries.CODE, "blob": b"another replica's"}
        await database["dossiers"].insert_one(planted)
        await store.mark_sent([written])
        summary = await database["dossiers"].find_one({"_id": summaries.CODE})
        history = await database["dossier_histories"].find_one({"_id": summaries.CODE})
        read = await DossierStore(client, settings.mongo_database).read(summaries.CODE)
        await client.close()
        return unpack(summary["blob"]), unpack(history["blob"]), read

    summary, history, read = asyncio.run(scenario())
    assert summary["version"] == history["version"] == 1
    assert read is not None and read.version == 1 and read.outbox == []


def test_a_store_written_before_histories_is_read_and_looked_up_as_before(stack):
    """Its summaries hold the whole history (no `dossier_histories`): processing and intake read them, and
    the next write of such a dossier writes its history, whatever its version."""
    settings = ProcessingSettings(**namespace(stack).model_dump())
    changes = lived(6)
    _, last = changes[4]
    last = replace(last, version=5, outbox=[])

    async def scenario() -> tuple[StoredDossier | None, Held, Held, int | None, StoredDossier | None]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
        database = client[settings.mongo_database]
        await database["dossier_links"].insert_many([link_to(b, replace(a, version=n)).to_doc()
                                                     for n, (b, a) in enumerate(changes[:5])])
        await database["dossiers"].insert_one(history_doc(last))  # the summary as it was written then
        store = DossierStore(client, settings.mongo_database)
        old = await store.read(summaries.CODE)
        [held_before] = (await HeldDossiers(database).read([summaries.CODE])).values()
        [loaded] = (await store.load([summaries.CODE], from_database=True)).values()
        after = integrate(loaded, [(parse_event_json(raw), raw) for raw in [orjson.dumps(summaries.digitized(7)[-1])]],
                          WorkingCalendar.load(), datetime(2025, 7, 8, tzinfo=VN)).stored
        [written], _ = await store.save([(loaded, after)])
        await store.mark_sent([written])  # version 6: no checkpoint, but the history was in the old summary
        [held_now] = (await HeldDossiers(database).read([summaries.CODE])).values()
        history = await database["dossier_histories"].find_one({"_id": summaries.CODE})
        again = await DossierStore(client, settings.mongo_database).read(summaries.CODE)
        await client.close()
        return old, held_before, held_now, history and unpack(history["blob"])["version"], again

    old, held_before, held_now, history, again = asyncio.run(scenario())
    assert old == last
    assert held_before.receipt == held_now.receipt and held_now.receipt is not None
    assert history == 6 and again is not None and again.version == 6 and len(again.events) == 6


def test_a_review_of_abandoned_dossiers_reads_the_steps_of_those_still_open_which_a_foreign_sender_cannot_add_to(
        stack):
    """What the retention's review compares (shared/personal.py `Retention`, DossierStore.open_steps): the steps
    an open dossier's summary shows. An event of another source is dead-lettered and adds none (else any sender
    could keep an abandoned dossier's applicant readable for ever); an event applied adds one; an ended dossier
    is not open."""
    settings = ProcessingSettings(**namespace(stack).model_dump())

    async def scenario() -> list[dict[str, int]]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
        store = DossierStore(client, settings.mongo_database)
        processor = Processor(settings, store, WorkingCalendar.load(), lambda _: asyncio.sleep(0),
                              ProcessingMetrics(CollectorRegistry()))
        seen = [await store.open_steps([CODE])]
        await processor.handle([record(1, "dossier.received", "2025-07-07T10:00:00")])
        seen.append(await store.open_steps([CODE, "000.00.38.H56-250707-7999"]))
        foreign = record(2, "dossier.digitized", "2025-07-07T10:05:00")
        value = orjson.loads(foreign.raw) | {"source": "urn:motcua:40"}
        await processor.handle([replace(foreign, value=parse_event_json(orjson.dumps(value)), raw=orjson.dumps(value))])
        seen.append(await store.open_steps([CODE]))
        summaries = client[settings.mongo_database]["dossiers"]
        late = await summaries.find_one({"_id": CODE})
        await processor.handle([record(3, "dossier.digitized", "2025-07-07T10:10:00")])
        seen.append(await store.open_steps([CODE]))
        # A summary written late by a replica that had lost its partitions: the state of one step before, when the
        # review may have been scheduled. It told the review the dossier was unchanged, and its key was erased.
        await summaries.replace_one({"_id": CODE}, late)
        seen += [await store.open_steps([CODE]), await store.open_steps([CODE])]
        await processor.handle([record(4, "dossier.transferred", "2025-07-07T11:00:00")])
        seen.append(await store.open_steps([CODE]))
        await processor.handle([record(5, "dossier.resolved", "2025-07-08T09:00:00")])
        seen.append(await store.open_steps([CODE]))
        await client.close()
        return seen

    assert asyncio.run(scenario()) == [{}, {CODE: 1}, {CODE: 1}, {CODE: 2}, {CODE: -3}, {CODE: -3}, {CODE: 3}, {}]
