"""The metrics service's work, apart from HTTP: load, consume status events, move the clock, render.

Order of writes: a batch's status events go to MongoDB before the figures change and before the
offsets are committed, so a restart (figures loaded from MongoDB, then the topic from the committed
offset) neither loses nor double-counts anything. A clock event is published, then marked sent:
a crash between the two publishes it again with the same id, which consumers deduplicate.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from datetime import time as dt_time
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.metrics.exposition import render
from services.metrics.figures import Figures
from services.metrics.settings import MetricsSettings
from services.metrics.store import FiguresStore, from_kept, from_status, kept
from shared.calendar import quarter_of
from shared.contracts import ClockChanged, SignatureVerified, StatusChanged, StatusRecord, clock_changed
from shared.service import Record

log = structlog.get_logger()

Publish = Callable[[list[ClockChanged]], Awaitable[None]]


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.status_events = Counter(
            "metrics_status_events", "Status records consumed, by outcome: applied, older, clock, signature",
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
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.settings = settings
        self.figures = figures
        self.store = store
        self.metrics = ServiceMetrics(registry)
        self.metrics.dossiers.set_function(lambda: len(figures.dossiers))
        self.metrics.snapshot_age.set_function(self._snapshot_age)
        self.clock = clock
        self.loaded = False
        self._sent: set[str] = set()
        self._snapshot = b""
        self.at_risk: dict[str, float] = {}  # commune -> points at risk in the current quarter
        self._snapshot_at: float | None = None

    async def load(self) -> None:
        """The figures as MongoDB has them: every replica and every restart starts from there."""
        started = time.perf_counter()
        now = self.clock()
        calendar = self.figures.calendar
        async for doc in self.store.statuses():
            if self.figures.is_newer(doc["dossier_code"], doc["events"]):
                self.figures.apply(from_kept(doc, calendar), now)
        async for data, at in self.store.signatures():
            self.figures.apply_signature(data, at)
        self._sent = await self.store.sent()
        self.loaded = True
        log.info("figures loaded", dossiers=len(self.figures.dossiers), clock_events_sent=len(self._sent),
                 seconds=round(time.perf_counter() - started, 2))

    async def handle(self, records: list[Record[StatusRecord]]) -> None:
        """Stores processing's status records and signature verdicts, then counts them; notes the
        clock records another replica published."""
        statuses: list[StatusChanged] = []
        signatures: list[SignatureVerified] = []
        for record in records:
            match record.value:
                case StatusChanged() as status:
                    statuses.append(status)
                case SignatureVerified() as verified:
                    signatures.append(verified)
                case ClockChanged() as clock:
                    self._sent.add(clock.id)  # another replica's clock record
                    self.metrics.status_events.labels("clock").inc()
        await self.store.save([kept(s) for s in statuses])
        await self.store.save_signatures(signatures)
        for verified in signatures:
            self.figures.apply_signature(verified.data, verified.time)
            self.metrics.status_events.labels("signature").inc()
        now = self.clock()
        for status in statuses:
            outcome = "applied" if self.figures.apply(from_status(status, self.figures.calendar), now) else "older"
            self.metrics.status_events.labels(outcome).inc()

    async def move_clock(self, publish: Publish) -> int:
        """Announce the open dossiers that turned due soon or overdue since the last tick."""
        events = []
        for t in self.figures.tick(self.clock()):
            event = clock_changed(t.info(), t.status(t.old), t.at, t.new, t.dossier.events)
            if event.id not in self._sent:
                events.append(event)
        if events:
            await publish(events)
            ids = [e.id for e in events]
            await self.store.mark_sent(ids)
            self._sent.update(ids)
            self.metrics.clock_published.inc(len(events))
        return len(events)

    async def refresh_snapshot(self) -> None:
        """Render the business metrics off the event loop, from a copy of the counts."""
        started = time.perf_counter()
        counts = self.figures.counts.copy()
        self._snapshot = await asyncio.to_thread(render, counts, self.settings.metrics_sector_label,
                                                 dict(self.at_risk))
        self._snapshot_at = time.monotonic()
        self.metrics.render_seconds.set(time.perf_counter() - started)

    async def refresh_at_risk(self) -> None:
        """The points each commune is about to lose in the current quarter (the gauge): its score if
        every open dossier ends in time, minus its score if those due by the quarter's end turn late."""
        now = self.clock()
        calendar = self.figures.calendar
        first, last = quarter_of(calendar.local(now).date())
        horizon = datetime.combine(last, dt_time.max, calendar.local(now).tzinfo)
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
