"""The figures as a replica's store has them: every start of the metrics service begins here."""

import gc
import time
from datetime import datetime
from typing import Any

import structlog

from services.metrics.figures import held, verdict_of
from services.metrics.replica import Replica
from services.metrics.store import Batch, from_verdict_doc, held_of, quarter, verdict_doc
from shared.contracts import SignatureData

log = structlog.get_logger()


async def load(replica: Replica, now: datetime) -> None:
    """Read the carried dossiers and the logs from the horizon on into the figures, as read (the
    store's entries are never all in memory at once). A dossier is taken as stored, its timeline left packed,
    and not settled: each report judges it until the service, once consuming, settles it
    (`MetricsCore.settle_loaded`).

    The cyclic garbage collector is paused meanwhile, then what was loaded is frozen out of its reach
    (`gc.freeze`): a province-year is millions of objects that live on, and the collector scanned them all
    again and again while they were read (half the load's time, bench-metrics). Nothing held is in a
    reference cycle: what leaves memory is freed by its reference count all the same."""
    started = time.perf_counter()
    state = await replica.store.state()
    gc.disable()
    try:
        async for kind, entries in replica.store.entries(state.horizon):
            _apply_stored(replica, kind, entries, now)
    finally:
        gc.enable()
    gc.freeze()
    # What the archive counted of a dossier back in memory leaves the archived counts; of one noted but not loaded
    # (its row never stored: a crash between the two, or its record dead-lettered), it stays: the record consumed
    # again notes it anew (a review found that subtracting every note lost those counts for good).
    back = {code: counts for code, counts in state.returned.items() if code in replica.figures.dossiers}
    counts = state.archived_counts.copy()
    for counted in back.values():
        counts.subtract(counted)
    replica.archived_counts, replica.returned = +counts, set(back)
    replica.figures.counts.update(replica.archived_counts)
    replica.horizon = state.horizon
    log.info("figures loaded", dossiers=len(replica.figures.dossiers), horizon=replica.horizon,
             clock_events_sent=len(replica.sent), seconds=round(time.perf_counter() - started, 2))


def _apply_stored(replica: Replica, kind: str, entries: list[Any], now: datetime) -> None:
    owns, figures = replica.shard.owns_commune, replica.figures
    if kind == "held":
        for row in entries:  # the code, the events, the commune: an older announcement is skipped unread
            if not owns(row[2]):
                replica.foreign_rows = True
            elif figures.is_newer(row[0], row[1]):
                figures.apply(held_of(row), now, settle=False)
    elif kind == "statuses":  # written before v1.4
        for counted in entries:
            if owns(counted.commune_code) and figures.is_newer(counted.dossier_code, counted.events):
                figures.apply(counted, now, settle=False)
    elif kind == "verdicts":
        for verdict in map(from_verdict_doc, entries):
            if owns(verdict.commune_code):
                figures.apply_verdict(verdict, settle=False)
            else:
                replica.foreign_rows = True
    else:
        replica.sent.update(entries)


async def move_legacy(replica: Replica, now: datetime) -> bool:
    """Once, with the service stopped (`python -m services.metrics migrate`): what a version before
    the archive stored (`metrics_status`, `_signatures`, `_clock_sent`) into the quarters' logs, then
    dropped. False when there was nothing to move."""
    moved = False
    calendar = replica.figures.calendar
    async for kind, entries in replica.store.legacy():
        batch, moved = Batch(), True
        for entry in entries:
            if kind == "statuses":
                batch.statuses.setdefault(quarter(calendar.local(entry.received_at).date()), []).append(held(entry))
            elif kind == "signatures" and (v := verdict_of(SignatureData.model_validate(entry["data"]),
                                                            datetime.fromisoformat(entry["time"]))):
                batch.verdicts.setdefault(quarter(calendar.local(v.at).date()), []).append(verdict_doc(v))
            elif kind == "clock":
                batch.clock.setdefault(quarter(calendar.local(now).date()), []).append(entry)
        await replica.store.save(batch)
    if moved:
        await replica.store.drop_legacy()
        log.info("stored figures moved to the quarters' logs")
    return moved
