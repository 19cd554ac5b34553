"""Time alone moves open dossiers to due soon or overdue: the replica announces each move once
(`dossier.status_changed` from the metrics service). A clock record is published, then marked sent:
a crash between the two publishes it again with the same id, which consumers deduplicate."""

from collections.abc import Awaitable, Callable
from datetime import datetime

from services.metrics.replica import Replica
from shared.contracts import ClockChanged, clock_changed

Publish = Callable[[list[ClockChanged]], Awaitable[None]]


async def move_clock(replica: Replica, now: datetime, publish: Publish) -> list[ClockChanged]:
    """Announce the open dossiers that turned due soon or overdue since the last tick; returns what
    was published."""
    moved = [(t, event) for t in replica.figures.tick(now)
             if (event := clock_changed(t.dossier.receipt, t.status(t.old), t.at, t.new,
                                        t.dossier.receipt.events)).id not in replica.sent]
    events = [event for _, event in moved]
    if events:
        await publish(events)
        async with replica.writing:
            await replica.store.save(replica.batch_of(clock=[(e.id, t.dossier.received_date) for t, e in moved]))
        replica.sent.update(e.id for e in events)
    return events
