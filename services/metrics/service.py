"""The metrics service's work, apart from HTTP: load, consume status events, move the clock, render.

Order of writes: a batch's status events go to MongoDB before the figures change and before the
offsets are committed, so a restart (figures loaded from MongoDB, then the topic from the committed
offset) neither loses nor double-counts anything. A clock event is published, then marked sent:
a crash between the two publishes it again with the same id, which consumers deduplicate.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.metrics.exposition import render
from services.metrics.figures import Figures
from services.metrics.settings import MetricsSettings
from services.metrics.store import FiguresStore
from shared.status import METRICS_SOURCE, TYPE, clock_event

SIGNATURE_TYPE = "dossier.signature_verified"  # published by the signature service

log = structlog.get_logger()

Publish = Callable[[list[tuple[str, bytes]]], Awaitable[None]]  # (key, CloudEvent JSON)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.status_events = Counter(
            "metrics_status_events", "Status events consumed, by outcome: applied, older, clock, signature, other, undecodable",
            ["outcome"], registry=registry,
        )
        self.clock_published = Counter(
            "metrics_clock_events_published", "dossier.status_changed events published because time moved",
            registry=registry,
        )
        self.lag = Gauge("metrics_consumer_lag", "Status events not yet consumed on the assigned partitions",
                         registry=registry)
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
        self._snapshot_at: float | None = None

    async def load(self) -> None:
        """The figures as MongoDB has them: every replica and every restart starts from there."""
        started = time.perf_counter()
        now = self.clock()
        async for doc in self.store.statuses():
            self.figures.apply(doc, now)
        async for doc in self.store.signatures():
            self.figures.apply_signature(doc["data"], doc["time"])
        self._sent = await self.store.sent()
        self.loaded = True
        log.info("figures loaded", dossiers=len(self.figures.dossiers), clock_events_sent=len(self._sent),
                 seconds=round(time.perf_counter() - started, 2))

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        statuses, signatures = [], []
        for record in records:
            try:
                event = orjson.loads(record.value or b"")
                data = event["data"]
                if event["type"] == SIGNATURE_TYPE:
                    signatures.append(event)
                    continue
                if event["type"] != TYPE:
                    self.metrics.status_events.labels("other").inc()
                    continue
                if event["source"] != METRICS_SOURCE and not {"events", "timeline"} <= data.keys():
                    raise ValueError("a status event without its timeline (from a processing older than metrics)")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                # Our own topic: a record that does not decode is a bug upstream, said loudly, counted, skipped.
                log.error("undecodable status event", origin=f"{record.topic}/{record.partition}/{record.offset}",
                          error=str(exc))
                self.metrics.status_events.labels("undecodable").inc()
                continue
            if event["source"] == METRICS_SOURCE:
                self._sent.add(event["id"])  # another replica's clock event
                self.metrics.status_events.labels("clock").inc()
            else:
                statuses.append(data)
        await self.store.save(statuses)
        await self.store.save_signatures(signatures)
        for event in signatures:
            self.figures.apply_signature(event["data"], event["time"])
            self.metrics.status_events.labels("signature").inc()
        now = self.clock()
        for data in statuses:
            outcome = "applied" if self.figures.apply(data, now) else "older"
            self.metrics.status_events.labels(outcome).inc()

    async def move_clock(self, publish: Publish) -> int:
        """Announce the open dossiers that turned due soon or overdue since the last tick."""
        events = []
        for t in self.figures.tick(self.clock()):
            event = clock_event(t.dossier.code, t.info(), t.status(t.old), t.at, t.new, t.dossier.events)
            if event["id"] not in self._sent:
                events.append(event)
        if events:
            await publish([(e["subject"], orjson.dumps(e)) for e in events])
            ids = [e["id"] for e in events]
            await self.store.mark_sent(ids)
            self._sent.update(ids)
            self.metrics.clock_published.inc(len(events))
        return len(events)

    async def refresh_snapshot(self) -> None:
        """Render the business metrics off the event loop, from a copy of the counts."""
        started = time.perf_counter()
        counts = self.figures.counts.copy()
        self._snapshot = await asyncio.to_thread(render, counts, self.settings.metrics_sector_label)
        self._snapshot_at = time.monotonic()
        self.metrics.render_seconds.set(time.perf_counter() - started)

    @property
    def snapshot(self) -> bytes:
        return self._snapshot

    def _snapshot_age(self) -> float:
        return time.monotonic() - self._snapshot_at if self._snapshot_at is not None else float("inf")

    def timed(self, kind: str, compute: Callable[[], Any]) -> Any:
        with self.metrics.report_seconds.labels(kind).time():
            return compute()
