"""The metrics service's core without Kafka or FerretDB (issue 22, item 7): status records consumed
(`StatusConsumer`), figures loaded back at a restart (`loader`), the clock's records (`ticker`), on
an in-memory store; the integration tests run the same parts on the real Kafka and FerretDB."""

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError
from pymongo.errors import AutoReconnect
from pydantic import TypeAdapter
from prometheus_client import CollectorRegistry

from services.metrics import compaction
from services.metrics.settings import MetricsSettings
from services.metrics.figures import Figures
from services.metrics.core import FiguresLoading, MetricsCore
from services.metrics.store import State, stored_at_risk
from shared.calendar import WorkingCalendar
from shared.contracts import ClockChanged, StatusRecord, status_changed, status_of
from shared.dossier import fold
from shared.events import parse_event
from shared.consumer_app import Record, until_done
from tests.fixtures.memory_figures import MemoryFiguresStore
from tests.fixtures.sample import VN, dossier_code, event

CAL = WorkingCalendar.load()
RECEIVED = datetime(2025, 7, 7, 10, 0, tzinfo=VN)  # Monday; 2 working days: due Wednesday 10:00
RECORDS = TypeAdapter(StatusRecord)


def statuses(count: int, commune: str = "14923", resolved: bool = False) -> list[Record]:
    """Processing's record of `count` dossiers of a commune, each open (or resolved)."""
    out = []
    for n in range(count):
        code = dossier_code(RECEIVED, n + 1)
        events = [event("dossier.received", code, RECEIVED, commune_code=commune,
                        processing_time={"value": 2, "unit": "working_days"})]
        if resolved:
            events.append(event("dossier.resolved", code, RECEIVED + timedelta(hours=3)))
        folded = fold([parse_event(e) for e in events], CAL)
        record = status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(events))
        raw = record.to_bytes()
        out.append(Record(RECORDS.validate_json(raw), raw, code.encode(), "dossier-status", 0, n, 0))
    return out


def replica(store: MemoryFiguresStore, now: list[datetime]) -> MetricsCore:
    settings = MetricsSettings.model_construct(metrics_provinces=["38"], metrics_owners={})
    return MetricsCore(settings, Figures(CAL), store, CollectorRegistry(), clock=lambda: now[0])


def counted(service: MetricsCore) -> dict[tuple, int]:
    return {k: v for k, v in service.figures.counts.items() if v and k[0] != "urgent"}


def test_what_a_replica_consumed_is_what_the_next_one_loads():
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    first = replica(store, now)
    asyncio.run(first.handle(statuses(3) + statuses(2, resolved=True)[:1]))
    assert counted(first)[(("received", "14923", "HT", "online", "full"))] == 3
    assert counted(first)[("completed", "14923", "HT", "early")] == 1
    restarted = replica(store, now)
    asyncio.run(restarted.load(compact=False))
    assert counted(restarted) == counted(first)


def test_records_of_a_province_another_replica_owns_are_neither_stored_nor_counted():
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    service = replica(store, now)
    asyncio.run(service.handle(statuses(2, commune="07900")))  # Phú Thọ (25), not this replica's 38
    assert counted(service) == {} and store.logs == {}


def test_time_alone_announces_due_soon_then_overdue_once_even_after_a_restart():
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    published: list[ClockChanged] = []

    async def publish(records: list[ClockChanged]) -> None:
        published.extend(records)

    service = replica(store, now)
    asyncio.run(service.handle(statuses(1)))
    now[0] = datetime(2025, 7, 10, 8, 0, tzinfo=VN)  # Thursday: due Wednesday 10:00 passed
    assert asyncio.run(service.move_clock(publish)) == 2
    assert [r.data.new.open_state for r in published] == ["due_soon", "overdue"]
    restarted = replica(store, now)
    asyncio.run(restarted.load(compact=False))
    assert asyncio.run(restarted.move_clock(publish)) == 0  # the ids it stored say they were sent
    assert orjson.loads(published[-1].to_bytes())["data"]["cause"]["type"] == "clock"


def test_a_start_takes_out_of_the_archived_counts_only_the_returned_dossiers_it_loads():
    """A dossier noted back from the archive whose row was never stored (a crash between the two, or its record
    dead-lettered) is not in memory: what the archive counted of it stays counted (it was lost for good before)."""
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    asyncio.run(replica(store, now).handle(statuses(1, resolved=True)))  # the first dossier's row, stored
    received = ("received", "14923", "HT", "online", "full")
    archived = Counter({received: 10, ("completed", "14923", "HT", "early"): 10})
    one = Counter({received: 1, ("completed", "14923", "HT", "early"): 1})
    loaded, not_loaded = dossier_code(RECEIVED, 1), dossier_code(RECEIVED, 2)
    store.kept_state = State("2025q3", archived, {loaded: one, not_loaded: one})
    restarted = replica(store, now)
    asyncio.run(restarted.load(compact=False))
    assert restarted.replica.returned == {loaded}
    assert restarted.replica.archived_counts == Counter({received: 9, ("completed", "14923", "HT", "early"): 9})
    assert counted(restarted)[received] == 10  # nine archived, one in memory


def test_a_clock_move_kafka_refused_is_published_at_the_next_tick():
    """The tick marked the dossiers announced before publishing: a publish that failed (Kafka down) lost the moves
    until a restart (found by reading the ticker)."""
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    published: list[ClockChanged] = []

    async def refused(records: list[ClockChanged]) -> None:
        raise KafkaConnectionError("the broker is down")

    async def publish(records: list[ClockChanged]) -> None:
        published.extend(records)

    service = replica(store, now)
    asyncio.run(service.handle(statuses(3)))
    now[0] = datetime(2025, 7, 10, 8, 0, tzinfo=VN)
    with pytest.raises(KafkaConnectionError):
        asyncio.run(service.move_clock(refused))
    assert asyncio.run(service.move_clock(publish)) == 6
    assert sorted(r.data.new.open_state for r in published) == ["due_soon"] * 3 + ["overdue"] * 3
    assert asyncio.run(service.move_clock(publish)) == 0


def test_a_report_asked_while_the_figures_load_is_refused_not_answered_from_what_is_loaded_so_far():
    """A restart takes a minute for a province-year: a report meanwhile would count part of its dossiers."""
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    first = replica(store, now)
    asyncio.run(first.handle(statuses(3)))
    second = replica(store, now)
    day = RECEIVED.date()
    try:
        asyncio.run(second.figures_for(["14923"], day, day))
    except FiguresLoading:
        pass
    else:
        raise AssertionError("a report before the load was answered")
    asyncio.run(second.load(compact=False))
    figures = asyncio.run(second.figures_for(["14923"], day, day))
    assert figures.report("14923", day, day, now[0])["received"] == 3


def test_a_start_is_ready_before_it_settles_what_it_loaded_and_answers_the_same_before_and_after():
    """A start leaves each dossier it loads to be judged by each report until it settles them, once consuming."""
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(days=3)]
    first = replica(store, now)
    asyncio.run(first.handle(statuses(3) + statuses(5, resolved=True)[3:]))
    day, as_of = RECEIVED.date(), now[0]

    def answers(service: MetricsCore) -> tuple:
        return (service.figures.counts_of("14923", day, day, as_of)[1], service.figures.on_time_views("14923", day, day, as_of),
                service.figures.report("14923", day, day, as_of))

    restarted = replica(store, now)
    asyncio.run(restarted.load(compact=False))
    assert len(restarted.unsettled) == 5
    assert all(t.quiet_since is None for t in restarted.figures.dossiers.values())
    assert answers(restarted) == answers(first)
    asyncio.run(restarted.settle_loaded())
    assert restarted.unsettled == []
    assert [t.quiet_since is not None for t in restarted.figures.dossiers.values()] == [
        t.quiet_since is not None for t in first.figures.dossiers.values()]
    assert any(t.quiet_since is not None for t in restarted.figures.dossiers.values())
    assert answers(restarted) == answers(first)


def test_a_restart_serves_the_points_at_risk_last_worked_out_and_works_them_out_again_once_consuming():
    """Working out the points at risk judges each dossier of the quarter not settled yet, which a start has not: a
    fifth of a province-year's start (docs/benchmarks.md). A restart within the hour and the quarter serves what the
    service stored when it last worked them out, and works them out again once consuming; a first start, a start in
    another quarter or more than an hour later works them out before it is ready."""
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    first = replica(store, now)
    store.kept_state = State(compaction.horizon_of(first.replica, now[0]), Counter())  # nothing to compact
    asyncio.run(first.handle(statuses(3)))
    asyncio.run(first.start())
    worked_out = first.snapshot.at_risk
    assert worked_out["14923"] > 0 and store.points_at_risk == (now[0], worked_out)
    stored, now[0] = store.points_at_risk, now[0] + timedelta(minutes=1)
    asyncio.run(first.refresh_at_risk())
    assert store.points_at_risk == stored, "the loop's first turn after a start that worked them out: nothing"
    asyncio.run(first.refresh_at_risk())
    assert store.points_at_risk == (now[0], worked_out), "the next: worked out again"

    def restarted_at(instant: datetime) -> MetricsCore:
        now[0] = instant
        store.points_at_risk = RECEIVED + timedelta(hours=1), {"14923": 99.0, "08152": 1.0}  # 08152: Phú Thọ's
        service = replica(store, now)
        asyncio.run(service.start())
        return service

    served = restarted_at(RECEIVED + timedelta(hours=1, minutes=59))
    assert served.snapshot.at_risk == {"14923": 99.0}, "as stored, for the communes it owns"
    assert 'dossier_points_at_risk{commune="14923"} 99.0' in served.snapshot.text.decode()
    asyncio.run(served.refresh_at_risk())  # the loop's first turn, at once
    assert served.snapshot.at_risk == worked_out and store.points_at_risk == (now[0], worked_out)
    assert f'dossier_points_at_risk{{commune="14923"}} {worked_out["14923"]}' in served.snapshot.text.decode()

    quarter_end = datetime(2025, 9, 30, 23, 30, tzinfo=VN)
    for late, why in ((RECEIVED + timedelta(hours=2, minutes=1), "an hour later"),
                      (RECEIVED - timedelta(minutes=1), "stored after now: the clock went back")):
        assert restarted_at(late).snapshot.at_risk["14923"] != 99.0, why
    store.kept_state = State(compaction.horizon_of(first.replica, quarter_end + timedelta(hours=1)), Counter())
    now[0] = quarter_end + timedelta(minutes=40)
    store.points_at_risk = quarter_end, {"14923": 99.0}
    next_quarter = replica(store, now)
    asyncio.run(next_quarter.start())
    assert next_quarter.snapshot.at_risk.get("14923") != 99.0, "another quarter"


def test_a_start_tried_again_after_the_database_went_away_counts_the_archived_figures_once():
    """A start is tried again from its beginning while MongoDB is away (`until_done`): one that went away after the
    figures were loaded (here as the stored points at risk are read) counted the archived dossiers twice until the
    next restart (found by re-reading the start)."""
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    first = replica(store, now)
    asyncio.run(first.handle(statuses(2)))
    received = ("received", "14923", "HT", "online", "full")
    store.kept_state = State(compaction.horizon_of(first.replica, now[0]), Counter({received: 10}))
    reads = []

    async def away_once() -> None:
        reads.append(now[0])
        if len(reads) == 1:
            raise AutoReconnect("FerretDB restarting")

    store.at_risk = away_once
    restarted = replica(store, now)
    asyncio.run(until_done(restarted.start, "loading the figures"))
    assert len(reads) == 2 and counted(restarted)[received] == 12


@pytest.mark.parametrize("doc", [
    None, {}, {"at": "2025-07-07T11:00:00+07:00"}, {"points": {"14923": 1.0}},
    {"at": "2025-07-07T11:00:00", "points": {"14923": 1.0}},  # no offset: which instant?
    {"at": "yesterday", "points": {"14923": 1.0}}, {"at": 1751860800, "points": {"14923": 1.0}},
    {"at": "2025-07-07T11:00:00+07:00", "points": {"14923": "many"}},
    {"at": "2025-07-07T11:00:00+07:00", "points": {"14923": float("nan")}},
    {"at": "2025-07-07T11:00:00+07:00", "points": {"14923": float("inf")}},
    {"at": "2025-07-07T11:00:00+07:00", "points": ["14923", 1.0]},
    {"at": "2025-07-07T11:00:00+07:00", "points": {"14923": None}},
])
def test_stored_points_at_risk_a_start_cannot_read_are_worked_out_again(doc):
    """A review found a malformed stored document kept the service from ever being ready (TypeError, KeyError and
    ValueError are not the database going away: the start was not tried again)."""
    assert stored_at_risk(doc) is None


def test_stored_points_at_risk_read_back():
    assert stored_at_risk({"at": "2025-07-07T11:00:00+07:00", "points": {"14923": 72.5, "14924": 0}}) == (
        datetime(2025, 7, 7, 11, tzinfo=VN), {"14923": 72.5, "14924": 0.0})


class StoreAwayMidCompaction(MemoryFiguresStore):
    """A store whose first compaction writes its new state, then MongoDB goes away (before the stale collections are
    dropped)."""

    away = True

    async def compact(self, horizon, ended, verdicts, carried, counts, loose=()) -> None:  # noqa: ANN001
        self.kept_state = State(horizon, Counter(counts))
        for where in [w for w in self.logs if w < horizon]:
            del self.logs[where]
        if self.away:
            self.away = False
            raise AutoReconnect("FerretDB restarting")


def test_a_start_tried_again_after_the_database_went_away_mid_compaction_counts_each_dossier_once():
    """The start's compaction wrote the state (the ended dossiers now in its archived counts), then MongoDB went away:
    the start tried again from its beginning loaded those counts beside the same dossiers still in memory, served 6 for
    3 and stored 6 (a second review found it). A start tried again now goes on from the step that failed."""
    store, now = StoreAwayMidCompaction(), [RECEIVED + timedelta(hours=1)]
    asyncio.run(replica(store, now).handle(statuses(3, resolved=True)))
    now[0] = datetime(2027, 11, 1, 9, 0, tzinfo=VN)  # the horizon after 2025q3: its dossiers leave memory
    restarted = replica(store, now)
    asyncio.run(until_done(restarted.start, "loading the figures"))
    received = ("received", "14923", "HT", "online", "full")
    assert not store.away and counted(restarted)[received] == 3 and restarted.figures.dossiers == {}
    assert store.kept_state.archived_counts[received] == 3


def test_a_tick_that_moves_thousands_of_dossiers_lets_the_consumer_and_reports_run_in_between():
    """The tick after a restart may move every open dossier: its records go a thousand at a time."""
    store, now = MemoryFiguresStore(), [RECEIVED + timedelta(hours=1)]
    service = replica(store, now)
    asyncio.run(service.handle(statuses(2500)))
    now[0] = datetime(2025, 7, 10, 8, 0, tzinfo=VN)
    batches: list[int] = []
    turns: list[int] = []

    async def publish(records: list[ClockChanged]) -> None:
        batches.append(len(records))

    async def meanwhile() -> None:
        while True:
            turns.append(len(batches))
            await asyncio.sleep(0)

    async def tick() -> int:
        other = asyncio.create_task(meanwhile())
        moved = await service.move_clock(publish)
        other.cancel()
        return moved

    assert asyncio.run(tick()) == 5000  # due soon, then overdue
    assert max(batches) <= 1000 and sum(batches) == 5000
    assert len(set(turns)) >= 5  # the other task ran between the batches
