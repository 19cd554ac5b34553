"""Two replicas racing on one dossier, on the real FerretDB: the insert of each link decides."""

import asyncio
from datetime import datetime

import orjson
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from tests.fixtures.sample import VN, event
from services.processing.history import Outgoing
from services.processing.processor import ProcessingMetrics, Processor
from services.processing.settings import ProcessingSettings
from services.processing.store import DossierStore
from shared.calendar import WorkingCalendar
from shared.dossier import fold
from shared.events import parse_event_json
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
        await b.handle([record(2, "dossier.digitized", "2025-07-07T10:05:00")])  # b thinks it is new
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
