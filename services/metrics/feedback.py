"""The PAKN a metrics replica keeps (phản ánh, kiến nghị, docs/domain.md §9), from processing's
`FeedbackChanged` records: each PAKN's latest record (the one with the most events), in memory by
commune and by the dossier it names, and in the replica's `<prefix>_feedback` collection (`_id` = the
PAKN's code), written before the offsets are committed and read back whole at start.

A report folds each PAKN's steps as of its cut (shared/feedback.py): 5.2, 5.3 and the complaints
(`FeedbackBook.counts`), and, for the operators, the open PAKN with their due and the late ones
(`FeedbackBook.listing`). A PAKN is indexed under every commune its steps name (it received it, or a
unit of it was forwarded it), since as of an earlier instant it may have been held there.

PAKN published or rejected before the horizon leave memory and the collection for an archive, as ended
dossiers do (services/metrics/compaction.py); a report whose period reaches before the horizon reads the
archive of its communes back (`FeedbackBook.including`). A commune's counts depend on its own PAKN only
(shared/feedback.py:feedback_counts), so its archive is all such a report needs.
"""

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from bson import Binary
from pydantic import TypeAdapter
from pymongo import ReplaceOne

from services.metrics.shard import Shard
from shared.mongo import Chain, archived_entries
from shared.calendar import WorkingCalendar
from shared.contracts import FeedbackChanged, FeedbackData
from shared.feedback import Feedback, FeedbackCounts, Period, Step, as_of, feedback_counts, judged
from shared.consumer_app import Record

DATA: TypeAdapter[FeedbackData] = TypeAdapter(FeedbackData)
ENDED = ("published", "rejected")
ARCHIVE_CHUNK = 500  # PAKN a link of the archive holds


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

    def ended_before(self, instant: datetime) -> list[FeedbackData]:
        """The PAKN published or rejected before `instant` (their last step before it), by code."""
        return [data for code, data in sorted(self.kept.items()) if data.state in ENDED and data.steps
                and max(step.time for step in data.steps) < instant]

    def forget(self, codes: set[str]) -> None:
        """These PAKN leave the book (for the archive: services/metrics/compaction.py)."""
        for code in codes:
            data = self.kept.pop(code, None)
            if data is None:
                continue
            for commune_code in communes_of(data):
                self._by_commune.get(commune_code, set()).discard(code)
            if data.dossier_code:
                self._by_dossier.get(data.dossier_code, set()).discard(code)
        self.changes += 1

    def including(self, archived: Iterable[FeedbackData]) -> "FeedbackBook":
        """This book for one report, with PAKN read back from the archive (a PAKN in both counts once, as the
        record with more events); the book itself stays as it is."""
        view = FeedbackBook()
        view.kept = dict(self.kept)
        view._by_commune = {c: set(codes) for c, codes in self._by_commune.items()}
        view._by_dossier = {d: set(codes) for d, codes in self._by_dossier.items()}
        for data in archived:
            view.apply(data)
        view.changes = self.changes
        return view

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
    (its own consumer group and collection), so a replace is safe. Those that ended before the horizon
    move to `<prefix>_feedback_archive`, a chain per commune they name (a commune's PAKN are few)."""

    def __init__(self, database: Any, prefix: str):
        self.collection = database[f"{prefix}_feedback"]
        self._archive = Chain(database[f"{prefix}_feedback_archive"])

    async def archive(self, ended: list[FeedbackData]) -> None:
        """Append these PAKN to the archive of each commune they name, then delete their records (a crash
        between leaves a PAKN in both: read back, it counts once)."""
        by_commune: dict[str, list[Any]] = {}
        for data in ended:
            for commune_code in sorted(communes_of(data)):
                by_commune.setdefault(commune_code, []).append(DATA.dump_python(data, mode="json"))
        for commune_code, docs in by_commune.items():
            for start in range(0, len(docs), ARCHIVE_CHUNK):
                await self._archive.append(commune_code, {"feedback": docs[start:start + ARCHIVE_CHUNK]})
        for data in ended:
            await self.collection.delete_one({"_id": data.feedback_code})

    async def archived(self, communes: Iterable[str]) -> list[FeedbackData]:
        """The archived PAKN these communes name, each once (the record with the most events)."""
        found: dict[str, FeedbackData] = {}
        async for doc in archived_entries(self._archive, communes, "feedback"):
            data = DATA.validate_python(doc)
            if data.feedback_code not in found or found[data.feedback_code].events < data.events:
                found[data.feedback_code] = data
        return list(found.values())

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

