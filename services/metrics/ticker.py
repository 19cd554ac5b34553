"""Time alone moves open dossiers to due soon or overdue: the replica announces each move once
(`dossier.status_changed` from the metrics service). A clock record is published, then marked sent:
a crash between the two publishes it again with the same id, which consumers deduplicate."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from services.metrics.replica import Replica
from shared.contracts import ClockChanged, clock_changed, clock_record_id

Publish = Callable[[list[ClockChanged]], Awaitable[None]]
# Dossiers moved, their records made and published, between two turns of the event loop: at most a thousand
# records (a dossier moves at most twice: due soon, then overdue).
AT_ONCE = 500


async def move_clock(replica: Replica, now: datetime, publish: Publish) -> list[ClockChanged]:
    """Announce the open dossiers that turned due soon or overdue since the last tick, AT_ONCE at a time (the
    consumer, reports and /readyz go on in between: the tick after a restart may move every open dossier); returns
    what was published."""
    published: list[ClockChanged] = []
    figures = replica.figures
    while figures.due_by(now):
        # The tick marks the dossiers announced before their records are published: `replica.writing` is held until
        # they are, so that no row is written with them marked meanwhile (services/metrics/store.py `rewrite`).
        async with replica.writing:
            # After a restart the tick moves again every dossier since its last change of facts: those already
            # announced are told by their id alone, before any record is made.
            fresh = [(t, clock_changed(t.receipt, t.status(t.old), t.at, t.new, t.receipt.events))
                     for t in figures.tick(now, AT_ONCE)
                     if clock_record_id(t.receipt.dossier_code, t.facts.due_at, t.new) not in replica.sent]
            events = [event for _, event in fresh]
            if events:
                try:
                    await publish(events)
                except BaseException:  # marked announced: Kafka down lost them until a restart before
                    figures.unannounced([t for t, _ in fresh])
                    raise
                await replica.store.save(replica.batch_of(clock=[(e.id, t.received_date) for t, e in fresh]))
                replica.sent.update(e.id for e in events)
                published += events
        await asyncio.sleep(0)
    return published
