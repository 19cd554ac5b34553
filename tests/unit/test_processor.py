"""Processing's core without Kafka or FerretDB (issue 22, item 7): `Processor.handle` driven with
parsed records and an in-memory store, so its logic is checked in milliseconds; the integration
tests drive the same core through the real Kafka and FerretDB."""

import asyncio
import random
from datetime import datetime, timedelta

import orjson
import pytest
from pydantic import TypeAdapter
from prometheus_client import CollectorRegistry

from services.processing import history
from services.processing.history import Outgoing, view
from services.processing.processor import ProcessingMetrics, Processor
from services.processing.settings import ProcessingSettings
from shared.calendar import WorkingCalendar
from shared.contracts import StatusChanged, StatusRecord
from shared.dossier import fold
from shared.events import parse_event
from shared.consumer_app import Record
from tests.fixtures.memory_dossiers import MemoryDossiers
from tests.fixtures.sample import VN, dossier_code, event

CAL = WorkingCalendar.load()
NOW = datetime(2025, 7, 20, 9, 0, tzinfo=VN)
RECORDS = TypeAdapter(StatusRecord)


def life(code: str, start: datetime) -> list[dict]:
    steps = [("dossier.received", 0, {"processing_time": {"value": 2, "unit": "working_days"}}),
             ("dossier.digitized", 0.1, {}), ("dossier.supplement_requested", 2, {}),
             ("dossier.supplement_received", 26, {}), ("dossier.resolved", 40, {}),
             ("dossier.payment_completed", 41, {}), ("dossier.returned", 42, {})]
    return [event(t, code, start + timedelta(hours=h), id_=f"{code}-{n}", **data)
            for n, (t, h, data) in enumerate(steps)]


def records(events: list[dict], first_offset: int = 0) -> list[Record]:
    return [Record(parse_event(e), orjson.dumps(e), e["subject"].encode(), "dossier-events", 0, first_offset + n,
                   int(NOW.timestamp() * 1000)) for n, e in enumerate(events)]


class Replica:
    """One processing replica on the shared in-memory database, with what it published."""

    def __init__(self, database: MemoryDossiers, fail_publishing: int = 0):
        self.published: list[Outgoing] = []
        self.fail_publishing = fail_publishing
        self.store = database.replica()
        self.processor = Processor(ProcessingSettings.model_construct(), self.store, CAL, self.publish,
                                   ProcessingMetrics(CollectorRegistry()), clock=lambda: NOW)

    async def publish(self, outgoing: list[Outgoing]) -> None:
        if self.fail_publishing:
            self.fail_publishing -= 1
            raise ConnectionError("Kafka away")
        self.published += outgoing

    def statuses(self) -> list[StatusChanged]:
        return [RECORDS.validate_json(o.value) for o in self.published if o.kind == "status"]


def run(replica: Replica, events: list[dict]) -> None:
    asyncio.run(replica.processor.handle(records(events)))


@pytest.mark.parametrize("seed", range(5))
def test_a_life_in_shuffled_batches_is_stored_as_the_fold_says_and_announced_once_per_change(seed):
    code = dossier_code(NOW, 1)
    events = life(code, datetime(2025, 7, 7, 8, tzinfo=VN))
    shuffled = random.Random(seed).sample(events, len(events))
    replica = Replica(MemoryDossiers())
    for n in range(0, len(shuffled), 3):
        run(replica, shuffled[n:n + 3])
    folded = fold([parse_event(e) for e in events], CAL)
    assert asyncio.run(replica.store.view(code))[0] == view(folded.dossier)
    last = replica.statuses()[-1]
    assert (last.data.events, last.data.timeline, last.data.new.state) == (len(events), folded.timeline, "returned")
    ids = [s.id for s in replica.statuses()]
    assert len(ids) == len(set(ids))  # each change announced once


def test_a_batch_delivered_again_stores_and_publishes_nothing_more():
    code = dossier_code(NOW, 2)
    database = MemoryDossiers()
    replica = Replica(database)
    events = life(code, datetime(2025, 7, 7, 8, tzinfo=VN))
    run(replica, events)
    published, links = len(replica.published), len(database.links[code])
    run(replica, events)  # the offsets were not committed: Kafka delivers the batch again
    assert (len(replica.published), len(database.links[code])) == (published, links)


def test_a_dossier_another_replica_wrote_meanwhile_is_read_again_and_nothing_is_lost():
    code = dossier_code(NOW, 3)
    database = MemoryDossiers()
    first, second = Replica(database), Replica(database)
    events = life(code, datetime(2025, 7, 7, 8, tzinfo=VN))
    run(first, events[:3])
    run(second, events[3:5])  # a rebalance: the second has not cached the dossier, its first write loses
    run(first, events[5:])  # the first's cache is a link behind: it loses, reads, integrates again
    stored = asyncio.run(first.store.read(code))
    assert len(stored.events) == len(events) and stored.version == len(database.links[code]) == 3
    assert first.statuses()[-1].data.new.state == "returned"


def test_an_outbox_a_failed_publish_left_is_published_by_the_next_batch():
    code = dossier_code(NOW, 4)
    database = MemoryDossiers()
    crashed = Replica(database, fail_publishing=1)
    events = life(code, datetime(2025, 7, 7, 8, tzinfo=VN))
    with pytest.raises(ConnectionError):
        run(crashed, events[:2])  # written, not published: the offsets are not committed
    restarted = Replica(database)
    run(restarted, events[:2])  # redelivered: duplicates, but the stored outbox goes out
    never_crashed = Replica(MemoryDossiers())
    run(never_crashed, events[:2])
    assert [o.value for o in restarted.published] == [o.value for o in never_crashed.published] != []
    # The links keep no view: the restarted replica's batch adds no event, yet the lookup shows what they fold to.
    assert asyncio.run(restarted.store.view(code)) == asyncio.run(never_crashed.store.view(code)) != None


@pytest.mark.parametrize("last", ["dossier.signed", "dossier.resolved"])
def test_a_summary_a_stopped_replica_left_behind_is_written_again_by_the_next_batch_and_folded_once(monkeypatch, last):
    """Killed between its link and its summary: the next replica, given the same events again (duplicates), writes
    the summary the events fold to, whether the link announced something (resolved) or not (signed: a step, no
    change of status), and folds the dossier once, not at every batch of duplicates (found in review, 2026-12-06)."""
    code = dossier_code(NOW, 5)
    start = datetime(2025, 7, 7, 8, tzinfo=VN)
    events = life(code, start)[:2] + [event(last, code, start + timedelta(hours=3), id_=f"{code}-last")]
    database = MemoryDossiers()
    stopped = Replica(database)
    run(stopped, events[:2])

    async def killed(published: list) -> None:
        raise ConnectionError("stopped before its summary")

    monkeypatch.setattr(stopped.store, "mark_sent", killed)
    with pytest.raises(ConnectionError):
        run(stopped, events[2:])
    folds = []
    monkeypatch.setattr(history, "fold", lambda *args: folds.append(args) or fold(*args))
    restarted = Replica(database)
    for _ in range(3):  # redelivered, then sent again by a portal re-sending its snapshots
        run(restarted, events[2:])
    assert len(folds) == 1
    never_stopped = Replica(MemoryDossiers())
    run(never_stopped, events)
    assert asyncio.run(restarted.store.view(code)) == asyncio.run(never_stopped.store.view(code))


def test_events_whose_receipt_never_comes_are_dead_lettered_after_the_waiting_limit():
    code = dossier_code(NOW, 5)
    replica = Replica(MemoryDossiers())
    run(replica, life(code, datetime(2025, 7, 7, 8, tzinfo=VN))[1:3])  # no receipt
    assert replica.published == [] and asyncio.run(replica.store.count_waiting()) == 1
    replica.processor._clock = lambda: NOW + timedelta(hours=169)  # the limit is 168 hours
    assert asyncio.run(replica.processor.sweep_waiting()) == 1
    assert [o.kind for o in replica.published] == ["dlq", "dlq"]
    assert all(o.reason.startswith(f"no dossier.received for {code}") for o in replica.published)


def test_a_dossier_that_ends_or_is_withdrawn_is_scheduled_for_erasure_once_and_one_received_open_for_a_review():
    """Its personal data's keys go at its end + the retention days (docs/security.md, finding 6); a
    withdrawn dossier has no `ended_at`, but leaves the open states all the same. One received and left open is
    reviewed once (shared/personal.py `Retention`: an abandoned dossier's key goes too), with the steps its view
    shows then."""
    scheduled: dict[str, datetime] = {}
    reviewed: dict[str, int] = {}

    class Retention:
        async def schedule(self, ended: dict[str, datetime]) -> None:
            assert not scheduled.keys() & ended.keys()  # once each
            scheduled.update(ended)

        async def review(self, opened: dict[str, int]) -> None:
            assert not reviewed.keys() & opened.keys()
            reviewed.update(opened)

    replica = Replica(MemoryDossiers())
    replica.processor._retention = Retention()
    start = datetime(2025, 7, 7, 8, tzinfo=VN)
    resolved, withdrawn = dossier_code(NOW, 6), dossier_code(NOW, 7)
    run(replica, life(resolved, start))
    run(replica, [event("dossier.received", withdrawn, start, id_="w-0"),
                  event("dossier.withdrawn", withdrawn, start + timedelta(hours=5), id_="w-1")])
    run(replica, [event("dossier.rated", resolved, start + timedelta(hours=50), id_="r-9", rating="satisfied")])
    assert scheduled == {resolved: start + timedelta(hours=40), withdrawn: start + timedelta(hours=5)}
    left_open = dossier_code(NOW, 8)
    run(replica, [event("dossier.digitized", left_open, start, id_="o-0")])  # before its receipt: nothing yet
    assert reviewed == {}
    run(replica, [event("dossier.received", left_open, start, id_="o-1")])
    run(replica, [event("dossier.digitized", left_open, start + timedelta(hours=1), id_="o-2")])
    assert reviewed == {left_open: 2} and left_open not in scheduled  # digitized, then received
