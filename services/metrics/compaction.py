"""The dossiers and the PAKN that ended before the horizon leave memory for the archive (docs/domain.md §5,
services/metrics/store.py, services/metrics/feedback.py); what they counted stays counted. The quarters' logs a
live service wrote a few rows at a time are rewritten in full blobs (`consolidate`)."""

import math
import time
from collections.abc import Callable
from datetime import datetime
from datetime import time as dt_time
from typing import Any

import structlog

from services.metrics.figures import Tracked, Verdict
from services.metrics.replica import Replica
from services.metrics.store import CHUNK, first_day, quarter, row_of, verdict_doc
from shared.calendar import quarters_before

log = structlog.get_logger()
SPREAD, SLACK = 2, 8  # a log is rewritten past SPREAD times the blobs its dossiers need, and SLACK more


def horizon_of(replica: Replica, now: datetime) -> str:
    """The quarter `metrics_horizon_quarters` before the current one: what ended before it leaves memory."""
    local = replica.figures.calendar.local(now).date()
    return quarter(quarters_before(local, replica.settings.metrics_horizon_quarters))


async def compact(replica: Replica, now: datetime) -> int:
    """Move the dossiers and the PAKN that ended before the horizon to the archive; returns how many
    dossiers left memory.

    The store's horizon never goes back (the setting raised, a clock back from a jump ahead): what was archived
    stays in the archive, where reports read the periods before the store's horizon, and the dossiers received
    before it stay carried. It went back before, and reports read those periods from memory alone, without the
    archived dossiers; the carried collection then left out those received between the two horizons, whose
    quarters' logs an earlier compaction had dropped, and a restart lost them. What leaves memory follows the
    clock all the same: only what ended before the horizon the clock gives."""
    figures, zone = replica.figures, replica.figures.calendar.timezone
    wanted = horizon_of(replica, now)
    horizon = max(wanted, replica.horizon or "")
    if horizon != wanted:
        log.info("the horizon stays where the archive begins", horizon=horizon, by_the_clock=wanted)
    leaving = datetime.combine(first_day(wanted), dt_time(), zone)
    start = datetime.combine(first_day(horizon), dt_time(), zone)
    async with replica.writing:
        ended, ended_feedback = figures.ended_before(leaving), figures.feedback_book.ended_before(leaving)
        if ended_feedback:
            await replica.store.feedback_store().archive(ended_feedback)
            figures.feedback_book.forget({d.feedback_code for d in ended_feedback})
            log.info("ended PAKN moved to the archive", feedback=len(ended_feedback), horizon=horizon)
        if not ended and replica.horizon == horizon:
            return 0
        gone = {t.code for t in ended}
        carried = [t for t in figures.received_before(start) if t.code not in gone]
        verdicts = {t.code: figures.verdicts_of(t.code) for t in ended + carried}
        counts = replica.archived_counts + figures.counted_by((t, verdicts[t.code]) for t in ended)
        # Verdicts of dossiers not in memory (given after their dossier was archived) are carried too: they were
        # lost with their quarter's log before.
        await replica.store.compact(horizon, ended, verdicts, carried, counts, figures.loose_verdicts())
        figures.forget(gone)
        replica.archived_counts, replica.horizon, replica.returned = counts, horizon, set()
    log.info("ended dossiers moved to the archive", dossiers=len(gone), carried=len(carried), horizon=horizon)
    return len(gone)


async def consolidate(replica: Replica) -> int:
    """The quarters' logs (and the carried collection) written anew from memory where their blobs are more than SPREAD
    times what they hold needs (services/metrics/store.py `rewrite`): a live service stores a blob per batch, and a
    start read the demo's 35,294 dossiers from 14,498 small blobs (11,088 of them of verdicts, given one by one) in
    6.2-7.9 s, ~200 µs a dossier against 28 from full blobs. Rows by quarter, each log whose rows are spread; the
    verdicts of every log at once, each written where the consumer would store it now (a verdict given before its
    dossier came may have its home elsewhere since). What memory holds and which blobs hold it are taken together,
    between two batches (`replica.writing`): a batch stored and not yet counted would have lost its blobs (a review
    found it). Not when a start found entries of provinces the replica does not own (its provinces changed: memory
    does not hold them). Returns how many blobs were deleted."""
    if replica.foreign_rows:
        return 0
    store, figures = replica.store, replica.figures
    async with replica.writing:
        dossiers: dict[str, list[Tracked]] = {}
        for tracked in figures.dossiers.values():
            dossiers.setdefault(replica.where(tracked.received_date), []).append(tracked)
        rows = [({where: dossiers.get(where, [])}, {where: set(blobs)}) for where, blobs in store.blobs["held"].items()
                if _spread(len(blobs), len(dossiers.get(where, ())))]
        verdicts: dict[str, list[Verdict]] = {}
        if _spread(sum(map(len, store.blobs["verdicts"].values())), len(figures.all_verdicts())):
            for verdict in figures.all_verdicts():
                home = replica.where(replica.received_date(verdict.dossier_code, verdict.at))
                verdicts.setdefault(home, []).append(verdict)
        stored_verdicts = {where: set(blobs) for where, blobs in store.blobs["verdicts"].items()}
    deleted = 0
    for homes, before in rows:
        deleted += await _rewrite(replica, "held", homes, row_of, before)
    if verdicts:
        for home in verdicts.values():  # in a fixed order: written again unchanged, a blob is stored once
            home.sort(key=lambda v: (v.dossier_code, v.document_id))
        deleted += await _rewrite(replica, "verdicts", verdicts, verdict_doc, stored_verdicts)
    return deleted


def _spread(blobs: int, entries: int) -> bool:
    return blobs > SPREAD * math.ceil(entries / CHUNK) + SLACK


async def _rewrite(replica: Replica, kind: str, homes: dict[str, list[Any]], entry: Callable[[Any], Any],
                   before: dict[str, set[str]]) -> int:
    started = time.perf_counter()
    deleted = await replica.store.rewrite(kind, homes, entry, before, replica.writing)
    log.info("the quarters' logs rewritten in full blobs", kind=kind, quarters=sorted(before),
             entries=sum(map(len, homes.values())), blobs_deleted=deleted, seconds=round(time.perf_counter() - started, 2))
    return deleted
