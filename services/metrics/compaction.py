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
    """The quarter `metrics_horizon_quarters` before the current one, or the replica's horizon when that is later:
    a horizon never goes back. What a compaction archived stays in the archive, where reports read the periods
    before the horizon; a horizon moved back (the setting raised, or a clock back from a jump ahead) made reports
    read those periods from memory, without the archived dossiers."""
    local = replica.figures.calendar.local(now).date()
    return max(quarter(quarters_before(local, replica.settings.metrics_horizon_quarters)), replica.horizon or "")


async def compact(replica: Replica, now: datetime) -> int:
    """Move the dossiers and the PAKN that ended before the horizon to the archive; returns how many
    dossiers left memory."""
    figures = replica.figures
    horizon = horizon_of(replica, now)
    start = datetime.combine(first_day(horizon), dt_time(), figures.calendar.timezone)
    async with replica.writing:
        ended, ended_feedback = figures.ended_before(start), figures.feedback_book.ended_before(start)
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
        await replica.store.compact(horizon, ended, verdicts, carried, counts)
        figures.forget(gone)
        replica.archived_counts, replica.horizon = counts, horizon
    log.info("ended dossiers moved to the archive", dossiers=len(gone), carried=len(carried), horizon=horizon)
    return len(gone)
