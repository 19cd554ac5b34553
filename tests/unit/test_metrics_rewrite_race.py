"""The rewrite of a live-written store's logs (services/metrics/compaction.py `consolidate`) beside the consumer, on a
store whose database is a dictionary: the real FiguresStore and MetricsCore, each write a turn of the event loop. A
review found that a batch stored while the rewrite ran lost its blob: consumed and committed, then gone after a
restart."""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

import services.metrics.store as store_module
from services.metrics.core import MetricsCore
from services.metrics.figures import Figures
from services.metrics.settings import MetricsSettings
from shared.calendar import WorkingCalendar
from shared.consumer_app import Record
from shared.contracts import StatusRecord, status_changed, status_of
from shared.dossier import fold
from shared.events import parse_event
from tests.fixtures.sample import VN, dossier_code, event

CAL = WorkingCalendar.load()
RECORDS = TypeAdapter(StatusRecord)
Q3, Q4 = datetime(2025, 7, 7, 10, tzinfo=VN), datetime(2025, 10, 6, 10, tzinfo=VN)


class Cursor:
    def __init__(self, docs: list[dict]):
        self.docs = docs

    async def to_list(self, length: int | None = None) -> list[dict]:
        taken, self.docs = self.docs[:length or len(self.docs)], self.docs[length or len(self.docs):]
        return taken

    async def __aiter__(self) -> Any:
        for doc in list(self.docs):
            yield doc


class Collection:
    def __init__(self, name: str):
        self.name, self.docs = name, {}

    def find(self, *_: Any, **__: Any) -> Cursor:
        return Cursor(list(self.docs.values()))

    async def find_one(self, query: dict) -> Any:
        return self.docs.get(query["_id"])


class Database(dict):
    def __missing__(self, name: str) -> Collection:
        self[name] = Collection(name)
        return self[name]

    async def list_collection_names(self) -> list[str]:
        return [name for name, collection in self.items() if collection.docs]


class Client(dict):
    def __missing__(self, name: str) -> Database:
        self[name] = Database()
        return self[name]


async def insert_new(collection: Collection, docs: list[dict]) -> set:
    await asyncio.sleep(0.001)  # a round trip
    new = {d["_id"] for d in docs if d["_id"] not in collection.docs}
    for doc in docs:
        collection.docs.setdefault(doc["_id"], doc | {"blob": bytes(doc["blob"])})
    return new


async def delete_all(collection: Collection, ids: list[str]) -> None:
    await asyncio.sleep(0.001)
    for i in ids:
        collection.docs.pop(i, None)


def record(n: int, received: datetime) -> Record:
    code = dossier_code(received, n)
    folded = fold([parse_event(event("dossier.received", code, received, commune_code="14923",
                                     processing_time={"value": 2, "unit": "working_days"}))], CAL)
    raw = status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, 1).to_bytes()
    return Record(RECORDS.validate_json(raw), raw, code.encode(), "dossier-status", 0, n, 0)


def replica(client: Client) -> MetricsCore:
    settings = MetricsSettings.model_construct(metrics_provinces=["38"], metrics_owners={})
    return MetricsCore(settings, Figures(CAL), store_module.FiguresStore(client, "db"), CollectorRegistry(),  # type: ignore[arg-type]
                       clock=lambda: Q4 + timedelta(hours=1))


@pytest.mark.parametrize("wait", [0.0005, 0.002, 0.004, 0.008])
def test_a_batch_consumed_while_the_logs_are_rewritten_is_still_there_after_a_restart(monkeypatch, wait: float):
    monkeypatch.setattr(store_module, "insert_new", insert_new)
    monkeypatch.setattr(store_module, "delete_all", delete_all)

    async def run() -> tuple[set[str], set[str]]:
        client = Client()
        first = replica(client)
        for n in range(1, 13):  # a blob a batch: both quarters' logs spread
            await first.handle([record(n, Q3)])
            await first.handle([record(n, Q4)])

        async def consumer() -> None:
            await asyncio.sleep(wait)  # while a log is rewritten
            await first.handle([record(99, Q4), record(98, Q3)])

        deleted, _ = await asyncio.gather(first.consolidate(), consumer())
        assert deleted >= 24
        again = replica(client)
        await again.load(compact=False)
        return set(first.figures.dossiers), set(again.figures.dossiers)

    before, after = asyncio.run(run())
    assert len(before) == 26 and after == before
