"""The metrics service's parts wired together, apart from HTTP: what a replica holds
(services/metrics/replica.py), its loader, consumer, ticker, compaction and snapshot, and the
figures a report reads (the archive's with memory's when the period reaches before the horizon).

A replica keeps only the provinces it owns (services/metrics/shard.py).
"""

import asyncio
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.metrics import compaction, loader, ticker
from services.metrics.consumer import StatusConsumer
from services.metrics.feedback import FeedbackKeeper
from services.metrics.figures import Figures, Tracked
from services.metrics.replica import Replica
from services.metrics.settings import MetricsSettings
from services.metrics.snapshot import Snapshot
from services.metrics.store import FiguresStore, archive_key, first_day, quarter
from shared.clock import Clock
from shared.contracts import FeedbackChanged, StatusRecord
from shared.consumer_app import Record

log = structlog.get_logger()
SETTLED_AT_ONCE = 1000  # dossiers settled between two turns of the event loop (~30 ms)
# A start serves the points at risk stored this long ago at most, until it has worked them out again: they move as
# dossiers change and time goes on, so after a longer stop it works them out before it is ready.
AT_RISK_SERVED_FOR = timedelta(hours=1)


class FiguresLoading(Exception):
    """A report asked before the store is loaded: it would count only what is loaded so far (answered 503)."""


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.status_events = Counter(
            "metrics_status_events",
            "Status records consumed, by outcome: applied, older, clock, signature, not_owned (another replica's province), "
            "feedback (PAKN records kept)",
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
        self.unsettled = Gauge("metrics_dossiers_unsettled",
                               "Dossiers the start loaded that reports still judge one by one (settled in the "
                               "background once consuming)", registry=registry)
        self.store_blobs = Gauge("metrics_store_blobs",
                                 "Blobs of rows and verdicts in the quarters' logs (a store written a few records at "
                                 "a time holds many: rewritten in full blobs after a start and at each compaction)",
                                 registry=registry)
        self.report_seconds = Histogram(
            "metrics_report_duration_seconds", "Time to compute a report", ["kind"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class MetricsCore:
    def __init__(self, settings: MetricsSettings, figures: Figures, store: FiguresStore, registry: CollectorRegistry,
                 clock: Callable[[], datetime] = Clock()):
        self.replica = Replica.of(settings, figures, store)
        self.figures, self.store, self.shard = figures, store, self.replica.shard
        self.clock = clock
        self.metrics = ServiceMetrics(registry)
        self.consumer = StatusConsumer(self.replica, self.metrics.status_events, clock)
        self.feedback = FeedbackKeeper(figures.feedback_book, store.feedback_store(), self.shard)
        self.snapshot = Snapshot(settings, figures, clock, self.figures_for)
        self.metrics.dossiers.set_function(lambda: len(figures.dossiers))
        self.metrics.snapshot_age.set_function(self.snapshot.age)
        self.metrics.render_seconds.set_function(lambda: self.snapshot.render_seconds)
        self.loaded = False  # ready: the figures, the points at risk and the snapshot all there
        self.readable = False  # the store loaded: reports may read the figures
        self.unsettled: list[Tracked] = []  # loaded, not settled yet (`settle_loaded`)
        self.store_read = False  # the start read the store (`load`)
        self.at_risk_worked_out = False  # by the start, which then leaves the loop's first turn (`refresh_at_risk`)
        self.metrics.unsettled.set_function(lambda: len(self.unsettled))
        self.metrics.store_blobs.set_function(
            lambda: sum(len(ids) for logs in store.blobs.values() for ids in logs.values()))

    async def load(self, compact: bool = True) -> None:
        """The figures as this replica's store has them, then (unless `compact` is False: a reader
        beside the running service must not write) the dossiers ended before the horizon leave memory.

        Tried again (MongoDB went away: `until_done`), it goes on from the step that failed: the store is read once. Read
        again after a compaction had written its state, it counted the archive beside the same dossiers still in memory
        (a review found it); a compaction tried again is one more compaction, as each periodic one."""
        if not self.store_read:
            await loader.load(self.replica, self.clock())
            self.store_read = True
        await self.feedback.load()
        if compact:
            async with self.replica.compacting:
                await compaction.compact(self.replica, self.clock())
        self.unsettled = list(self.figures.dossiers.values())
        self.readable = True

    async def start(self) -> None:
        """Everything /readyz waits for: the figures, the points at risk (as stored, or worked out), the first
        snapshot."""
        await self.load()
        if not await self._serve_stored_at_risk():
            await self._work_out_at_risk()
            self.at_risk_worked_out = True
        await self.snapshot.refresh()
        self.loaded = True

    async def refresh_at_risk(self) -> None:
        """The loop's turn, once consuming: the points at risk worked out, served and stored; at once after a start that
        served them as stored, one interval after a start that worked them out."""
        if self.at_risk_worked_out:
            self.at_risk_worked_out = False
            return
        await self._work_out_at_risk()
        await self.snapshot.refresh()

    async def _work_out_at_risk(self) -> None:
        at = await self.snapshot.refresh_at_risk()
        await self.store.save_at_risk(at, self.snapshot.at_risk)

    async def _serve_stored_at_risk(self) -> bool:
        """Serve the points at risk as the service last stored them, if worked out in this quarter and within the
        hour (the loop works them out again at once: `refresh_at_risk`); False if not. Working them out judges each
        dossier of the quarter not settled yet, which a start has not: a fifth of a province-year's start."""
        stored, now = await self.store.at_risk(), self.clock()
        local = self.figures.calendar.local
        if stored is None or not now - AT_RISK_SERVED_FOR <= stored[0] <= now or (
                quarter(local(stored[0]).date()) != quarter(local(now).date())):
            return False
        self.snapshot.at_risk = {code: points for code, points in stored[1].items() if self.shard.owns_commune(code)}
        return True

    async def settle_loaded(self) -> None:
        """What the start loaded, settled (services/metrics/queries.py `settle`) once consuming, a thousand dossiers at
        a time, the consumer and reports going on in between: a start is ready without judging each dossier, and
        until its dossier is settled a report judges it (the same figures, computed one by one)."""
        started = time.perf_counter()
        loaded = len(self.unsettled)
        while self.unsettled:
            for tracked in self.unsettled[-SETTLED_AT_ONCE:]:
                if tracked.quiet_since is None:  # not settled since by a newer announcement (or never settleable)
                    self.figures.settle(tracked)
            del self.unsettled[-SETTLED_AT_ONCE:]
            await asyncio.sleep(0)
        log.info("figures settled", dossiers=loaded, seconds=round(time.perf_counter() - started, 2))
        await self.consolidate()  # the next start reads full blobs, not the last run's small ones

    async def handle(self, records: list[Record[StatusRecord]]) -> None:
        """PAKN records to the feedback keeper, the others to the dossiers' consumer."""
        pakn = [r for r in records if isinstance(r.value, FeedbackChanged)]
        if pakn:
            self.metrics.status_events.labels("feedback").inc(await self.feedback.handle(pakn))
        await self.consumer.handle([r for r in records if not isinstance(r.value, FeedbackChanged)])

    async def compact(self) -> int:
        """Ended dossiers to the archive, then the logs written a few rows at a time rewritten (`compaction.py`)."""
        async with self.replica.compacting:
            moved = await compaction.compact(self.replica, self.clock())
            await compaction.consolidate(self.replica)
        return moved

    async def consolidate(self) -> int:
        async with self.replica.compacting:
            return await compaction.consolidate(self.replica)

    async def move_clock(self, publish: ticker.Publish) -> int:
        published = await ticker.move_clock(self.replica, self.clock(), publish)
        self.metrics.clock_published.inc(len(published))
        return len(published)

    async def figures_for(self, communes: list[str], start: date, end: date) -> Figures:
        """The figures a report of these communes' dossiers received in [start, end] reads: those in
        memory, with the archive's (dossiers and PAKN) when the period reaches before the horizon;
        FiguresLoading until the store is loaded."""
        if not self.readable:
            raise FiguresLoading("the figures are loading")
        horizon = self.replica.horizon
        if horizon is None or quarter(start) >= horizon:
            return self.figures
        last = min(end, first_day(horizon) - timedelta(days=1))
        months = sorted({(start + timedelta(days=n)).replace(day=1) for n in range((last - start).days + 1)})
        archived = await self.store.archived([archive_key(c, m) for c in communes for m in months])
        feedback = await self.store.feedback_store().archived(communes)
        return self.figures.including(((a.counted, a.verdicts) for a in archived), feedback)

    def timed(self, kind: str, compute: Callable[[], Any]) -> Any:
        with self.metrics.report_seconds.labels(kind).time():
            return compute()
