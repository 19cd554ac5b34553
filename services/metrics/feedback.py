"""The PAKN a metrics replica keeps (phản ánh, kiến nghị, docs/domain.md §9), from processing's
`FeedbackChanged` records: each PAKN's latest record (the one with the most events), in memory by
commune and by the dossier it names, and in the replica's `<prefix>_feedback` collection (`_id` = the
PAKN's code), written before the offsets are committed and read back whole at start.

A report folds each PAKN's steps as of its cut (shared/feedback.py): 5.2, 5.3 and the complaints
(`FeedbackBook.counts`), and, for the operators, the open PAKN with their due and the late ones
(`FeedbackBook.listing`). A PAKN is indexed under every commune its steps name (it received it, or a
unit of it was forwarded it), since as of an earlier instant it may have been held there.
"""

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from bson import Binary
from pydantic import TypeAdapter
from pymongo import ReplaceOne

from services.metrics.shard import Shard
from shared.calendar import WorkingCalendar
from shared.contracts import FeedbackChanged, FeedbackData
from shared.feedback import Feedback, FeedbackCounts, Period, Step, as_of, feedback_counts, judged
from shared.consumer_app import Record

DATA: TypeAdapter[FeedbackData] = TypeAdapter(FeedbackData)


class FeedbackBook:
    """Every PAKN this replica owns, as last announced: pure, no I/O."""

    def __init__(self) -> None:
        self.kept: dict[str, FeedbackData] = {}
        self._by_commune: dict[str, set[str]] = {}
        self._by_dossier: dict[str, set[str]] = {}
        self.changes = 0  # how many records were taken: a report computed before one is stale

    def apply(self, data: FeedbackData) -> bool:
        """Take a PAKN's record; False when one with as many events is kept already."""
        before = self.kept.get(data.feedback_code)
        if before is not None and before.events >= data.events:
            return False
        self.kept[data.feedback_code] = data
        self.changes += 1
        for commune_code in communes_of(data):
            self._by_commune.setdefault(commune_code, set()).add(data.feedback_code)
        if data.dossier_code:
            self._by_dossier.setdefault(data.dossier_code, set()).add(data.feedback_code)
        return True

    def _relevant(self, commune_code: str) -> list[tuple[str, list[Step]]]:
        """The commune's PAKN and every PAKN naming a dossier one of them names (a follow-up)."""
        mine = self._by_commune.get(commune_code, set())
        named = {d for code in mine if (d := self.kept[code].dossier_code)}
        codes = mine | {code for d in named for code in self._by_dossier.get(d, ())}
        return [(code, self.kept[code].steps) for code in sorted(codes)]

    def counts(self, commune_code: str, start: date, end: date, as_of: datetime,
               calendar: WorkingCalendar) -> FeedbackCounts:
        """5.2, 5.3 and the complaints of a commune's PAKN in [start, end] as of `as_of`."""
        return feedback_counts(self._relevant(commune_code), commune_code, Period.of(start, end, as_of, calendar),
                               calendar)

    def listing(self, commune_code: str, start: date, end: date, at: datetime,
                calendar: WorkingCalendar) -> dict[str, list[dict[str, Any]]]:
        """For the operators (codes, units, dues: no personal data): the PAKN the commune's units hold open
        at the cut, each with its due (the answer's, once answered the publication's), soonest first; and
        the period's PAKN that are late, each with the limit it missed."""
        period = Period.of(start, end, at, calendar)
        opened, late = [], []
        for code in sorted(self._by_commune.get(commune_code, ())):
            f = as_of(self.kept[code].steps, code, period.cut)
            if f is None or f.commune_code != commune_code:
                continue
            verdict = judged(f, period.cut, calendar)
            if f.state not in ("rejected", "published"):
                due = due_of(f, calendar)
                opened.append(row(f, due) | {"late": due < period.cut})
            taken = period.holds(f.clock_from) or period.holds(f.handled_at())
            if taken and verdict == "late":
                late.append(row(f, f.judged_against(calendar)) | {"handled_at": iso(f.handled_at())})
        return {"open": sorted(opened, key=lambda r: (r["due_at"], r["feedback_code"])),
                "late": sorted(late, key=lambda r: (r["due_at"], r["feedback_code"]))}


def communes_of(data: FeedbackData) -> set[str]:
    return {data.receiving_commune} | {s.commune_code for s in data.steps if s.commune_code}


def due_of(f: Feedback, calendar: WorkingCalendar) -> datetime:
    """The limit in force: the answer's (15 working days), once answered the publication's (2 more)."""
    return f.due("publish" if f.answered_at else "answer", calendar)  # type: ignore[return-value]


def iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def row(f: Feedback, due: datetime) -> dict[str, Any]:
    return {"feedback_code": f.code, "unit": f.unit, "state": f.state, "received_at": iso(f.received_at),
            "clock_from": iso(f.clock_from), "due_at": iso(due), "dossier_code": f.dossier_code}


class FeedbackStore:
    """A replica's PAKN records, one document per PAKN (`_id` = its code): written by this replica alone
    (its own consumer group and collection), so a replace is safe."""

    def __init__(self, database: Any, prefix: str):
        self.collection = database[f"{prefix}_feedback"]

    async def save(self, records: Iterable[FeedbackData]) -> None:
        docs = [{"_id": r.feedback_code, "events": r.events, "blob": Binary(DATA.dump_json(r))} for r in records]
        if docs:
            await self.collection.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs],
                                             ordered=False)

    async def load(self) -> list[FeedbackData]:
        """Every record (at start: the collection holds one small document per PAKN)."""
        return [DATA.validate_json(doc["blob"]) async for doc in self.collection.find({}, batch_size=500)]


class FeedbackKeeper:
    """What a replica does with PAKN records: those of its provinces stored, then kept in the book."""

    def __init__(self, book: FeedbackBook, store: FeedbackStore, shard: Shard):
        self.book, self.store, self.shard = book, store, shard

    def owned(self, records: Iterable[FeedbackData]) -> list[FeedbackData]:
        latest: dict[str, FeedbackData] = {}
        for data in records:
            if any(self.shard.owns_commune(c) for c in communes_of(data)):
                if data.feedback_code not in latest or latest[data.feedback_code].events <= data.events:
                    latest[data.feedback_code] = data
        return [d for d in latest.values() if (k := self.book.kept.get(d.feedback_code)) is None or k.events < d.events]

    async def handle(self, records: list[Record[Any]]) -> int:
        """The batch's PAKN records; returns how many changed what is kept."""
        newer = self.owned(r.value.data for r in records if isinstance(r.value, FeedbackChanged))
        await self.store.save(newer)
        return sum(self.book.apply(d) for d in newer)

    async def load(self) -> int:
        return sum(self.book.apply(d) for d in self.owned(await self.store.load()))

