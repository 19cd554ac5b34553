"""What one metrics replica holds, shared by its parts: the figures, their store, its provinces, the
horizon, and the lock that keeps a batch's writes and a compaction's apart (docs/architecture.md §2).

The parts, each in its module: `loader` (the figures from the store at start), `consumer` (status
records stored, then counted), `ticker` (time alone moves open dossiers; the clock's records),
`compaction` (ended dossiers to the archive), `snapshot` (what /metrics serves), and `reading`
(the figures a report reads, with the archive's).
"""

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from services.metrics.figures import Figures, Held, Key, Verdict
from services.metrics.settings import MetricsSettings
from services.metrics.shard import Shard
from services.metrics.store import Batch, FiguresStore, quarter, verdict_doc


@dataclass
class Replica:
    settings: MetricsSettings
    figures: Figures
    store: FiguresStore
    shard: Shard
    horizon: str | None = None  # the quarter of the last compaction (services/metrics/store.py)
    archived_counts: Counter[Key] = field(default_factory=Counter)  # what the archived dossiers counted
    returned: set[str] = field(default_factory=set)  # archived dossiers back in memory since the last compaction
    foreign_rows: bool = False  # a start found rows of provinces it does not own (services/metrics/compaction.py)
    compacting: asyncio.Lock = field(default_factory=asyncio.Lock)  # a compaction and a consolidation, one at a time
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)  # a batch's writes and a compaction's, one at a time
    sent: set[str] = field(default_factory=set)  # the ids of the clock records published (by any replica)

    @classmethod
    def of(cls, settings: MetricsSettings, figures: Figures, store: FiguresStore) -> "Replica":
        return cls(settings, figures, store, Shard(frozenset(settings.metrics_provinces), settings.metrics_owners))

    def where(self, day: date) -> str:
        """Where what came for a dossier received on `day` is stored: its quarter's log, or with the
        carried dossiers when that quarter is before the horizon."""
        return "carried" if self.horizon is not None and quarter(day) < self.horizon else quarter(day)

    def batch_of(self, statuses: Iterable[Held] = (), verdicts: Iterable[Verdict] = (),
                 clock: Iterable[tuple[str, date]] = ()) -> Batch:
        """Where each record is stored: by its dossier's quarter of receipt (`where`); a verdict of a
        dossier not in memory, by its own date."""
        local = self.figures.calendar.local
        batch = Batch()
        for announced in statuses:
            batch.statuses.setdefault(self.where(local(announced.receipt.received_at).date()), []).append(announced)
        for v in verdicts:
            batch.verdicts.setdefault(self.where(self.received_date(v.dossier_code, v.at)), []).append(verdict_doc(v))
        for clock_id, received in clock:
            batch.clock.setdefault(self.where(received), []).append(clock_id)
        return batch

    def received_date(self, code: str, otherwise: datetime) -> date:
        tracked = self.figures.dossiers.get(code)
        return tracked.received_date if tracked else self.figures.calendar.local(otherwise).date()
