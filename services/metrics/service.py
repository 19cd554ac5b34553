"""The metrics service's work, apart from HTTP: load, consume status events, move the clock, move
ended dossiers out of memory, render.

Order of writes: a batch's status events go to MongoDB before the figures change and before the
offsets are committed, so a restart (figures loaded from MongoDB, then the topic from the committed
offset) neither loses nor double-counts anything. A clock event is published, then marked sent:
a crash between the two publishes it again with the same id, which consumers deduplicate.
A replica keeps only the provinces it owns (services/metrics/shard.py); the dossiers that ended
before its horizon leave memory for the archive (services/metrics/store.py), which reports reaching
before the horizon read back.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from collections import Counter as Tally
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.metrics.exposition import render, render_urgent
from services.metrics.figures import Counted, Figures, Key, Verdict, verdict_of
from services.metrics.settings import MetricsSettings
from services.metrics.shard import Shard
from services.metrics.store import Batch, FiguresStore, archive_key, first_day, from_verdict_doc, quarter, verdict_doc
from shared.clock import Clock
from shared.calendar import quarter_of, quarters_before
from shared.contracts import ClockChanged, SignatureData, SignatureVerified, StatusChanged, StatusRecord, clock_changed
from shared.service import Record

log = structlog.get_logger()

Publish = Callable[[list[ClockChanged]], Awaitable[None]]


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.status_events = Counter(
            "metrics_status_events",
            "Status records consumed, by outcome: applied, older, clock, signature, not_owned (another replica's province)",
            ["outcome"], registry=registry,
        )
        self.clock_published = Counter(
            "metrics_clock_events_published", "dossier.status_changed events published because time moved",
            registry=registry,
        )
        self.snapshot_age = Gauge("metrics_snapshot_age_seconds", "Age of the business figures /metrics serves",
                                  registry=registry)
        self.render_seconds = Gauge("metrics_snapshot_render_seconds", "Time the last snapshot took to render",
                                    registry=registry)
        self.dossiers = Gauge("metrics_dossiers", "Dossiers the figures count", registry=registry)
        self.report_seconds = Histogram(
            "metrics_report_duration_seconds", "Time to compute a report", ["kind"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class MetricsService:
    def __init__(self, settings: MetricsSettings, figures: Figures, store: FiguresStore, registry: CollectorRegistry,
                 clock: Callable[[], datetime] = Clock()):
        self.settings = settings
        self.figures = figures
        self.store = store
        self.shard = Shard(frozenset(settings.metrics_provinces), settings.metrics_owners)
        self.metrics = ServiceMetrics(registry)
        self.metrics.dossiers.set_function(lambda: len(figures.dossiers))
        self.metrics.snapshot_age.set_function(self._snapshot_age)
        self.clock = clock
        self.loaded = False  # ready: the figures, the points at risk and the snapshot all there
        self.horizon: str | None = None  # the quarter of the last compaction (store.py)
        self._archived_counts: Tally[Key] = Tally()  # what the archived dossiers counted
        self._writing = asyncio.Lock()  # a batch's writes and a compaction's, one at a time
        self._sent: set[str] = set()
        self._snapshot = b""
        self.urgent = b""  # the urgent dossiers' codes: served to Prometheus' scrape token only
        self.at_risk: dict[str, float] = {}  # commune -> points at risk in the current quarter
        self._snapshot_at: float | None = None

    async def load(self, compact: bool = True) -> None:
        """The figures as this replica's store has them: every restart starts from there. Then the
        dossiers ended before the horizon leave memory (unless `compact` is False: a reader beside
        the running service must not write)."""
        started = time.perf_counter()
        state = await self.store.state()
        if state.horizon is None and await self._move_legacy():
            state = await self.store.state()
        now = self.clock()
        async for kind, entries in self.store.entries(state.horizon):
            self._apply_stored(kind, entries, now)  # as read: the store's entries are never all in memory
        self._archived_counts = state.archived_counts
        self.figures.counts.update(state.archived_counts)
        self.horizon = state.horizon
        archived = await self.compact() if compact else 0
        log.info("figures loaded", dossiers=len(self.figures.dossiers), archived_now=archived,
                 horizon=self.horizon, clock_events_sent=len(self._sent),
                 seconds=round(time.perf_counter() - started, 2))

    def _apply_stored(self, kind: str, entries: list[Any], now: datetime) -> None:
        owns = self.shard.owns_commune
        if kind == "statuses":
            for counted in entries:
                if owns(counted.commune_code) and self.figures.is_newer(counted.dossier_code, counted.events):
                    self.figures.apply(counted, now)
        elif kind == "verdicts":
            for verdict in map(from_verdict_doc, entries):
                if owns(verdict.commune_code):
                    self.figures.apply_verdict(verdict)
        else:
            self._sent.update(entries)

    async def _move_legacy(self) -> bool:
        """Once, what a version before the archive stored, into the quarters' logs."""
        moved = False
        calendar = self.figures.calendar
        async for kind, entries in self.store.legacy():
            batch, moved = Batch(), True
            for entry in entries:
                if kind == "statuses":
                    where = quarter(calendar.local(entry.received_at).date())
                    batch.statuses.setdefault(where, []).append(entry)
                elif kind == "signatures" and (v := verdict_of(SignatureData.model_validate(entry["data"]),
                                                                datetime.fromisoformat(entry["time"]))):
                    batch.verdicts.setdefault(quarter(calendar.local(v.at).date()), []).append(verdict_doc(v))
                elif kind == "clock":
                    batch.clock.setdefault(quarter(calendar.local(self.clock()).date()), []).append(entry)
            await self.store.save(batch)
        if moved:
            await self.store.drop_legacy()
            log.info("stored figures moved to the quarters' logs")
        return moved

    def horizon_of(self, now: datetime) -> str:
        """The quarter `metrics_horizon_quarters` before the current one."""
        return quarter(quarters_before(self.figures.calendar.local(now).date(), self.settings.metrics_horizon_quarters))

    def _start_of(self, horizon: str) -> datetime:
        return datetime.combine(first_day(horizon), dt_time(), self.figures.calendar.timezone)

    async def compact(self) -> int:
        """Move the dossiers that ended before the horizon to the archive (services/metrics/store.py);
        returns how many left memory."""
        horizon = self.horizon_of(self.clock())
        start = self._start_of(horizon)
        async with self._writing:
            ended = self.figures.ended_before(start)
            if not ended and self.horizon == horizon:
                return 0
            gone = {t.code for t in ended}
            carried = [t for t in self.figures.received_before(start) if t.code not in gone]
            verdicts = {t.code: self.figures.verdicts_of(t.code) for t in ended + carried}
            counts = self._archived_counts + self.figures.counted_by((t, verdicts[t.code]) for t in ended)
            await self.store.compact(horizon, ended, verdicts, carried, counts)
            self.figures.forget(gone)
            self._archived_counts, self.horizon = counts, horizon
        log.info("ended dossiers moved to the archive", dossiers=len(gone), carried=len(carried), horizon=horizon)
        return len(gone)

    def _where(self, day: date) -> str:
        """Where what came for a dossier received on `day` is stored: its quarter's log, or with the
        carried dossiers when that quarter is before the horizon."""
        return "carried" if self.horizon is not None and quarter(day) < self.horizon else quarter(day)

    def batch_of(self, statuses: list[Counted] = (), verdicts: list[Verdict] = (),  # type: ignore[assignment]
                 clock: list[tuple[str, date]] = ()) -> Batch:  # type: ignore[assignment]
        """Where each record is stored: by its dossier's quarter of receipt (`_where`); a verdict of a
        dossier not in memory, by its own date."""
        local = self.figures.calendar.local
        batch = Batch()
        for counted in statuses:
            batch.statuses.setdefault(self._where(local(counted.received_at).date()), []).append(counted)
        for v in verdicts:
            batch.verdicts.setdefault(self._where(self._received_date(v.dossier_code, v.at)), []).append(verdict_doc(v))
        for clock_id, received in clock:
            batch.clock.setdefault(self._where(received), []).append(clock_id)
        return batch

    def _received_date(self, code: str, otherwise: datetime) -> date:
        tracked = self.figures.dossiers.get(code)
        return tracked.received_date if tracked else self.figures.calendar.local(otherwise).date()

    def sorted_out(self, values: Iterable[StatusRecord]
                   ) -> tuple[list[StatusChanged], list[Verdict], list[ClockChanged], int]:
        """The status changes, verdicts and clock records of the provinces this replica owns, and how
        many records were another shard's."""
        statuses: list[StatusChanged] = []
        verdicts: list[Verdict] = []
        clocks: list[ClockChanged] = []
        others = 0
        for value in values:
            if not self.shard.owns_commune(value.data.commune_code):
                others += 1
                continue
            match value:
                case StatusChanged() as status:
                    statuses.append(status)
                case SignatureVerified() as verified:
                    if (verdict := verdict_of(verified.data, verified.time)) is not None:
                        verdicts.append(verdict)
                case ClockChanged() as clock:
                    clocks.append(clock)
        return statuses, verdicts, clocks, others

    async def handle(self, records: list[Record[StatusRecord]]) -> None:
        """Stores processing's status records and signature verdicts of the provinces this replica
        owns, then counts them; notes the clock records another replica published."""
        statuses, verdicts, clocks, others = self.sorted_out(record.value for record in records)
        if others:
            self.metrics.status_events.labels("not_owned").inc(others)
        for clock in clocks:
            self._sent.add(clock.id)  # another replica's clock record
            self.metrics.status_events.labels("clock").inc()
        calendar = self.figures.calendar
        counted = [Counted.of(status.data) for status in statuses]
        async with self._writing:  # where a record goes depends on the horizon, which a compaction moves
            await self.store.save(self.batch_of(counted, verdicts))
            await self._returning([c for c in counted if c.dossier_code not in self.figures.dossiers
                                   and self._where(calendar.local(c.received_at).date()) == "carried"])
            for verdict in verdicts:
                self.figures.apply_verdict(verdict)
                self.metrics.status_events.labels("signature").inc()
            now = self.clock()
            for one in counted:
                outcome = "applied" if self.figures.apply(one, now) else "older"
                self.metrics.status_events.labels(outcome).inc()

    async def _returning(self, counted: list[Counted]) -> None:
        """Archived dossiers that changed again count from memory again: what the archive counted of
        them leaves the archived counts (they go back to the archive at a later compaction)."""
        if not counted:
            return
        calendar = self.figures.calendar
        keys = {archive_key(c.commune_code, calendar.local(c.received_at)) for c in counted}
        codes = {c.dossier_code for c in counted}
        back = [(self.figures.tracked_of(a.counted), a.verdicts) for a in await self.store.archived(keys)
                if a.counted.dossier_code in codes]
        old = self.figures.counted_by(back)
        self._archived_counts -= old
        self.figures.counts.subtract(old)

    async def figures_for(self, communes: list[str], start: date, end: date) -> Figures:
        """The figures a report of these communes' dossiers received in [start, end] reads: those in
        memory, with the archive's when the period reaches before the horizon."""
        if self.horizon is None or quarter(start) >= self.horizon:
            return self.figures
        last = min(end, first_day(self.horizon) - timedelta(days=1))
        months = sorted({(start + timedelta(days=n)).replace(day=1) for n in range((last - start).days + 1)})
        archived = await self.store.archived([archive_key(c, m) for c in communes for m in months])
        return self.figures.including((a.counted, a.verdicts) for a in archived)

    async def move_clock(self, publish: Publish) -> int:
        """Announce the open dossiers that turned due soon or overdue since the last tick."""
        moved = [(t, event) for t in self.figures.tick(self.clock())
                 if (event := clock_changed(t.dossier.counted, t.status(t.old), t.at, t.new,
                                            t.dossier.counted.events)).id not in self._sent]
        events = [event for _, event in moved]
        if events:
            await publish(events)
            async with self._writing:
                await self.store.save(self.batch_of(clock=[(e.id, t.dossier.received_date)
                                                           for t, e in moved]))
            self._sent.update(e.id for e in events)
            self.metrics.clock_published.inc(len(events))
        return len(events)

    async def refresh_snapshot(self) -> None:
        """Render the business metrics off the event loop, from a copy of the counts."""
        started = time.perf_counter()
        counts = self.figures.counts.copy()
        self._snapshot = await asyncio.to_thread(render, counts, self.settings.metrics_sector_label,
                                                 dict(self.at_risk))
        self.urgent = await asyncio.to_thread(render_urgent, counts)
        self._snapshot_at = time.monotonic()
        self.metrics.render_seconds.set(time.perf_counter() - started)

    async def refresh_at_risk(self) -> None:
        """The points each commune is about to lose in the current quarter (the gauge): its score if
        every open dossier ends in time, minus its score if those due by the quarter's end turn late."""
        now = self.clock()
        calendar = self.figures.calendar
        first, last = quarter_of(calendar.local(now).date())
        horizon = calendar.end_of_day(last)
        not_applicable = frozenset(self.settings.metrics_not_applicable)
        found = {}
        for code in self.figures.communes():
            found[code] = self.figures.at_risk(code, first, last, now, horizon, not_applicable)["points_at_risk"]
            await asyncio.sleep(0)  # a province's communes, one at a time: the consumer goes on meanwhile
        self.at_risk = found

    @property
    def snapshot(self) -> bytes:
        return self._snapshot

    def _snapshot_age(self) -> float:
        return time.monotonic() - self._snapshot_at if self._snapshot_at is not None else float("inf")

    def timed(self, kind: str, compute: Callable[[], Any]) -> Any:
        with self.metrics.report_seconds.labels(kind).time():
            return compute()
