"""One batch of `dossier-events`: integrate into the stored histories, write, publish.

Writes come first and the offsets are committed last (by the subscriber, after this returns), so
a crash anywhere repeats the batch: duplicates change nothing, and the outbox written with the
state is published again.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.processing.history import (Integrated, Outgoing, StoredDossier, give_up_waiting, integrate,
                                         left_open_at)
from services.processing.settings import ProcessingSettings
from services.processing.store import DossierStore
from shared.clock import Clock
from shared.calendar import WorkingCalendar
from shared.events import DossierEvent, ReceivedEvent
from shared.personal import Retention
from shared.consumer_app import Record

log = structlog.get_logger()

Publish = Callable[[list[Outgoing]], Awaitable[None]]


class ProcessingMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.events = Counter(
            "processing_events",
            "Events consumed, by outcome: applied, duplicate, dead_lettered, waiting",
            ["outcome"],
            registry=registry,
        )
        self.status_published = Counter(
            "processing_status_published", "dossier.status_changed events published", registry=registry
        )
        self.batch_seconds = Histogram(
            "processing_batch_duration_seconds", "Time to apply one batch", registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.apply_latency = Histogram(
            "processing_apply_latency_seconds", "From the event's arrival in Kafka to its state being written",
            registry=registry, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.foreign = Counter(
            "processing_foreign_events", "Events of a dossier or a PAKN from a source that did not receive it, "
            "dead-lettered (docs/security.md)", registry=registry)
        self.reloaded = Counter(
            "processing_dossiers_reloaded", "Dossiers read again because their next link was there already: "
            "another replica wrote it, or this one took the dossier for new", registry=registry)
        self.assigned = Gauge("processing_assigned_partitions", "Partitions this replica consumes now",
                              registry=registry)
        self.waiting = Gauge("processing_waiting_dossiers", "Dossiers whose events wait for their receipt",
                             registry=registry)


class Processor:
    def __init__(
        self,
        settings: ProcessingSettings,
        store: DossierStore,
        calendar: WorkingCalendar,
        publish: Publish,
        metrics: ProcessingMetrics,
        clock: Callable[[], datetime] = Clock(),
        retention: Retention | None = None,
    ):
        self._settings = settings
        self.store = store
        self._calendar = calendar
        self._publish = publish
        self._metrics = metrics
        self._clock = clock
        self._retention = retention

    async def handle(self, records: list[Record[DossierEvent]]) -> None:
        """Folds a batch's events into the stored histories, writes them, publishes the outboxes."""
        started = time.perf_counter()
        await self._handle(records)
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        now_ms = time.time() * 1000
        for record in records:
            self._metrics.apply_latency.observe(max(0.0, (now_ms - record.timestamp) / 1000))

    async def _handle(self, records: list[Record[DossierEvent]]) -> None:
        grouped: dict[str, list[tuple[DossierEvent, bytes]]] = {}
        for record in records:
            grouped.setdefault(record.value.subject, []).append((record.value, record.raw))

        done, written = await self._integrate_all(grouped)
        for result in done:
            self._count(result)
        # What changed, and what a stopped replica left unpublished (an outbox, a summary behind its chain).
        await self._publish_outboxes([r.stored for r in done
                                      if r.stored.code in written or r.stored.outbox or r.stored.summary_behind])

    async def _integrate_all(
        self, grouped: dict[str, list[tuple[DossierEvent, bytes]]]
    ) -> tuple[list[Integrated], set[str]]:
        """Integrate every dossier and write those that changed; a dossier another replica wrote
        meanwhile is reloaded and integrated again. Returns the results with their stored versions,
        and the codes written."""
        done: list[Integrated] = []
        written_codes: set[str] = set()
        pending = grouped
        first_attempt = True
        unseen = [code for code, events in grouped.items() if not any(isinstance(e, ReceivedEvent) for e, _ in events)]
        while pending:
            loaded = await self.store.load(list(pending), from_database=not first_attempt, read_unseen=unseen)
            first_attempt = False
            now = self._clock()
            cap = self._settings.processing_max_events_per_dossier
            results = {code: integrate(loaded[code], events, self._calendar, now, cap)
                       for code, events in pending.items()}
            changed = [(loaded[code], r.stored) for code, r in results.items() if r.stored != loaded[code]]
            await self._schedule_erasure(changed)
            written, lost = await self.store.save(changed)
            as_written = {stored.code: stored for stored in written}
            written_codes |= as_written.keys()
            done += [
                replace(r, stored=as_written.get(code, r.stored)) for code, r in results.items() if code not in lost
            ]
            pending = {code: pending[code] for code in lost}
            self._metrics.reloaded.inc(len(lost))
            if lost:
                log.debug("dossiers written elsewhere or not cached here, reading them", count=len(lost))
        return done, written_codes

    async def _schedule_erasure(self, changed: list[tuple[StoredDossier, StoredDossier]]) -> None:
        """Dossiers that end or are withdrawn in this batch get their personal data's erase day, those received
        open a review for when they may have been abandoned (shared/personal.py `Retention`), before they are
        written: a crash repeats the batch, which schedules them again."""
        if self._retention is None:
            return
        ended = {after.code: at for before, after in changed
                 if (at := left_open_at(after.view)) and not left_open_at(before.view)}
        if ended:
            await self._retention.schedule(ended)
        # Each with its steps so far (what a foreign or refused event does not change: DossierStore.open_steps).
        await self._retention.review({after.code: len(after.view["history"]) for before, after in changed
                                      if after.view and not before.view and after.code not in ended})

    async def _publish_outboxes(self, dossiers: list[StoredDossier]) -> None:
        await self._send([o for d in dossiers for o in d.outbox])
        await self.store.mark_sent(dossiers)

    async def _send(self, outgoing: list[Outgoing]) -> None:
        if outgoing:
            await self._publish(outgoing)
        self._metrics.status_published.inc(sum(o.kind == "status" for o in outgoing))
        for o in outgoing:
            if o.kind == "dlq":
                log.warning("event sent to the dead-letter topic", dossier=o.key, reason=o.reason)

    def _count(self, result: Integrated) -> None:
        for outcome in ("applied", "waiting", "dead_lettered", "duplicates"):
            self._metrics.events.labels(outcome.removesuffix("s")).inc(getattr(result, outcome))
        if result.foreign:
            self._metrics.foreign.inc(result.foreign)
            log.warning("events from a source that did not receive the dossier", dossier=result.stored.code,
                        events=result.foreign)

    async def sweep_waiting(self) -> int:
        """Dead-letter the events of dossiers whose receipt has not come within the limit."""
        limit = timedelta(hours=self._settings.processing_waiting_limit_hours)
        codes = await self.store.waiting_before(self._clock() - limit)
        stored = [s for s in (await self.store.load(codes, from_database=True)).values() if s.waiting_since]
        changes = [(s, give_up_waiting(s, f"{limit.total_seconds() / 3600:g} hours")) for s in stored]
        written, _ = await self.store.save(changes)  # a dossier written elsewhere meanwhile waits for the next sweep
        await self._publish_outboxes(written)
        self._metrics.events.labels("dead_lettered").inc(sum(len(s.outbox) for s in written))
        self._metrics.waiting.set(await self.store.count_waiting())
        return len(written)
