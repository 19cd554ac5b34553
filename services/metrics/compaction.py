"""The dossiers and the PAKN that ended before the horizon leave memory for the archive (docs/domain.md §5,
services/metrics/store.py, services/metrics/feedback.py); what they counted stays counted."""

from datetime import datetime
from datetime import time as dt_time

import structlog

from services.metrics.replica import Replica
from services.metrics.store import first_day, quarter
from shared.calendar import quarters_before

log = structlog.get_logger()


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
