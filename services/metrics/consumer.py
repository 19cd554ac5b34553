"""`dossier-status` into a replica: processing's status records and signature verdicts of the provinces
it owns are stored, then counted; clock records another replica published are noted.

Order of writes: a batch goes to MongoDB before the figures change and before the offsets are
committed, so a restart (figures loaded from MongoDB, then the topic from the committed offset)
neither loses nor double-counts anything.
"""

from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import Counter

from services.metrics.figures import Counted, Verdict, held_from, verdict_of
from services.metrics.replica import Replica
from services.metrics.store import archive_key
from shared.contracts import ClockChanged, SignatureVerified, StatusChanged, StatusRecord
from shared.consumer_app import Record


def sorted_out(replica: Replica, values: Iterable[StatusRecord]
               ) -> tuple[list[StatusChanged], list[Verdict], list[ClockChanged], int]:
    """The status changes, verdicts and clock records of the provinces this replica owns, and how
    many records were another shard's."""
    statuses: list[StatusChanged] = []
    verdicts: list[Verdict] = []
    clocks: list[ClockChanged] = []
    others = 0
    for value in values:
        if not replica.shard.owns_commune(value.data.commune_code):
            others += 1
            continue
        match value:
            case StatusChanged() as status:
                statuses.append(status)
            case SignatureVerified() as verified:
                if (verdict := verdict_of(verified.data, verified.time)) is not None:
                    verdicts.append(verdict)
            case ClockChanged() as clock:
                clocks.append(clock)
    return statuses, verdicts, clocks, others


class StatusConsumer:
    def __init__(self, replica: Replica, outcomes: Counter, clock: Callable[[], datetime]):
        self.replica = replica
        self.outcomes = outcomes  # metrics_status_events, by outcome
        self.clock = clock

    async def handle(self, records: list[Record[StatusRecord]]) -> None:
        """Store, then count, what this replica owns of a batch."""
        replica = self.replica
        statuses, verdicts, clocks, others = sorted_out(replica, (record.value for record in records))
        if others:
            self.outcomes.labels("not_owned").inc(others)
        for clock in clocks:
            replica.sent.add(clock.id)  # another replica's clock record
            self.outcomes.labels("clock").inc()
        local = replica.figures.calendar.local
        announced = [held_from(status.data) for status in statuses]  # packed once, stored and applied
        async with replica.writing:  # where a record goes depends on the horizon, which a compaction moves
            await replica.store.save(replica.batch_of(announced, verdicts))
            await self._returning([h.receipt for h in announced if h.receipt.dossier_code not in replica.figures.dossiers
                                   and replica.where(local(h.receipt.received_at).date()) == "carried"])
            for verdict in verdicts:
                replica.figures.apply_verdict(verdict)
                self.outcomes.labels("signature").inc()
            now = self.clock()
            for one in announced:
                self.outcomes.labels("applied" if replica.figures.apply(one, now) else "older").inc()

    async def _returning(self, counted: list[Counted]) -> None:
        """Archived dossiers that changed again count from memory again: what the archive counted of
        them leaves the archived counts (they go back to the archive at a later compaction)."""
        if not counted:
            return
        replica, local = self.replica, self.replica.figures.calendar.local
        keys = {archive_key(c.commune_code, local(c.received_at)) for c in counted}
        codes = {c.dossier_code for c in counted}
        back = [(replica.figures.tracked_of(a.counted), a.verdicts) for a in await replica.store.archived(keys)
                if a.counted.dossier_code in codes]
        old = replica.figures.counted_by(back)
        replica.archived_counts -= old
        replica.figures.counts.subtract(old)
