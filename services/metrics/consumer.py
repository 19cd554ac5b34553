"""`dossier-status` into a replica: processing's status records and signature verdicts of the provinces
it owns are stored, then counted; clock records another replica published are noted.

Order of writes: a batch goes to MongoDB before the figures change and before the offsets are
committed, so a restart (figures loaded from MongoDB, then the topic from the committed offset)
neither loses nor double-counts anything. An archived dossier that changes again is noted as returned before its
new row is stored (`StatusConsumer._returning`).
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import prometheus_client

from services.metrics.figures import Held, Key, Verdict, held_from, verdict_of
from services.metrics.replica import Replica
from services.metrics.store import archive_key, verdict_doc
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


@dataclass
class Returning:
    """What `_returning` found of a batch: the dossiers taken out of the archived counts now, what they counted there,
    the verdicts of every archived dossier back, and the dossiers whose records are older than the archive's."""

    codes: set[str] = field(default_factory=set)
    counted: Counter[Key] = field(default_factory=Counter)
    verdicts: list[Verdict] = field(default_factory=list)
    older: set[str] = field(default_factory=set)


class StatusConsumer:
    def __init__(self, replica: Replica, outcomes: prometheus_client.Counter, clock: Callable[[], datetime]):
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
        announced = [held_from(status.data) for status in statuses]  # packed once, stored and applied
        async with replica.writing:  # where a record goes depends on the horizon, which a compaction moves
            back = await self._returning(announced)
            if back.older:
                kept = [h for h in announced if h.receipt.dossier_code not in back.older]
                self.outcomes.labels("older").inc(len(announced) - len(kept))
                announced = kept
            batch = replica.batch_of(announced, verdicts)
            if back.verdicts:  # a dossier back from the archive is carried: so are its verdicts
                batch.verdicts.setdefault("carried", []).extend(map(verdict_doc, back.verdicts))
            await replica.store.save(batch)
            replica.returned |= back.codes
            replica.archived_counts -= back.counted
            replica.figures.counts.subtract(back.counted)
            for verdict in back.verdicts + verdicts:
                replica.figures.apply_verdict(verdict)
            self.outcomes.labels("signature").inc(len(verdicts))
            now = self.clock()
            for one in announced:
                self.outcomes.labels("applied" if replica.figures.apply(one, now) else "older").inc()

    async def _returning(self, announced: list[Held]) -> Returning:
        """Archived dossiers that changed again count from memory again: what the archive counted of them leaves
        the archived counts, noted in the store first (services/metrics/store.py `note_returned`; a dossier back
        since the last compaction, as a start before its row was stored leaves it, is not taken out twice), and
        their archived verdicts come back with them (they go back to the archive at a later compaction). A status
        record older than what the archive holds is left out: it replaced the archived dossier before."""
        replica = self.replica
        figures, local = replica.figures, replica.figures.calendar.local
        latest: dict[str, Held] = {}
        for h in announced:
            code = h.receipt.dossier_code
            if code not in figures.dossiers and replica.where(local(h.receipt.received_at).date()) == "carried" and (
                    code not in latest or h.receipt.events > latest[code].receipt.events):
                latest[code] = h
        if not latest:
            return Returning()
        keys = {archive_key(h.receipt.commune_code, local(h.receipt.received_at)) for h in latest.values()}
        found = [a for a in await replica.store.archived(keys) if a.counted.dossier_code in latest]
        older = {a.counted.dossier_code for a in found if a.counted.events >= latest[a.counted.dossier_code].receipt.events}
        back = [a for a in found if a.counted.dossier_code not in older]
        counted = {a.counted.dossier_code: figures.counted_by([(figures.tracked_of(a.counted), a.verdicts)])
                   for a in back if a.counted.dossier_code not in replica.returned}
        await replica.store.note_returned(counted)
        return Returning(set(counted), sum(counted.values(), Counter()), [v for a in back for v in a.verdicts], older)

