"""What a metrics replica keeps in MongoDB: what it consumed, by quarter, and an archive of the
dossiers that ended before its horizon (docs/domain.md §5, README "Decisions").

Each replica has a store of its own (collections named `metrics_*`, or `metrics_<replica>_*`): two
replicas of the same provinces never write the same documents, and a replica of a few provinces
stores only theirs.

- `…_log_<yyyy>q<n>`: what came for the dossiers received in that quarter (local date): what the
  figures take of processing's status records (`Counted`, without the applicant), as the figures hold it
  (`row_of`: the receipt's values, the timeline packed by services/metrics/compact.py), signature verdicts,
  the ids of the clock events published. Insert-only, a blob per batch of CHUNK, `_id` the blob's SHA-256 (a
  batch stored again after a crash is stored once). A store written before v1.4 has blobs of kind `statuses`
  instead (the whole `Counted`, in shared.facts' codec: `KEPT`), which a start still reads.
- `…_carried_<n>`: the same for the dossiers received before the horizon that had not ended before
  it, written by the n-th compaction from memory.
- `…_archive`: the dossiers that ended before the horizon, as a chain of links per commune and month
  of receipt (`14923:2025-07`), each link a batch of kept statuses with their verdicts. A report
  reaching before the horizon reads the months it covers, by key.
- `…_state`: the document `horizon`: the horizon quarter, the carried collection in use, and the
  counts of the archived dossiers (Prometheus' counters must not go back when they leave memory); the document
  `at_risk`: the points at risk as last worked out, with the instant, which a start serves until it has worked
  them out again.
- `…_returned`: the archived dossiers that changed again since the last compaction, each with what the archive
  counted of it (`_id` the dossier's code, and the compaction's generation): a start takes them out of the archived
  counts for the dossiers it loads, until the next compaction writes the counts net. Written before the dossier's
  new row, so that a start never counts a dossier both in the archive's counts and from memory (a review found it
  did); a note whose row was never stored is left alone (services/metrics/loader.py).

Load reads the state (with what returned), the carried collection, and the logs of the quarters from the horizon on: a
replica's start reads about `horizon` quarters of dossiers, however long it has run. Compaction writes
the archive, then the new carried collection, then switches the state, then drops what the switch
left behind: a crash at any point loads the old state, whose collections are still there, and the
next compaction does it again (a link written twice is read once: `archived` keeps one status per
dossier).

FerretDB's SQLite backend reads a document field by field, ~2,000 small documents a second, but a
blob of a thousand statuses as fast as the bytes come: hence the blobs. A live service stores a blob per consumed
batch, often of a few records (a verdict comes alone): a quarter's log then holds many small blobs, and its
dossiers' older rows beside the newest. The store knows which blobs of rows and of verdicts each log holds (read at
a start, written since), and `rewrite` writes them anew as full blobs, as memory holds them, then deletes the old
(services/metrics/compaction.py `consolidate` says when). A start reads a blob of held dossiers
without pydantic and without packing their timelines again: ~300 bytes a dossier instead of ~2.4 KB.
"""

import asyncio
import hashlib
import math
import re
from base64 import b64decode, b64encode
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from sys import intern
from typing import Any

import orjson
from bson import Binary
from pydantic import TypeAdapter
from pymongo import AsyncMongoClient

from services.metrics import compact
from services.metrics.feedback import FeedbackStore
from services.metrics.figures import Counted, Held, Key, Tracked, Verdict, held, shared_fees
from shared.instants import shared_zone
from shared.mongo import Chain, archived_entries, delete_all, insert_new, read_ahead, replace_all

# What the figures take of a status record (shared.contracts.StatusData), as stored: the applicant and
# the rest stay on the topic. The same dataclasses as in memory, through pydantic's codec.
COUNTED: TypeAdapter[Counted] = TypeAdapter(Counted)
KEPT: TypeAdapter[list[Counted]] = TypeAdapter(list[Counted])
CHUNK = 1000  # entries per document: ~1.5 MB of statuses, far below MongoDB's 16 MB
REWRITTEN = ("held", "verdicts")  # the kinds of blobs `rewrite` writes anew (the clock's ids are few)


def quarter(day: date) -> str:
    """A quarter as the collections name it: `2025q3`."""
    return f"{day.year}q{(day.month - 1) // 3 + 1}"


def first_day(name: str) -> date:
    return date(int(name[:4]), 3 * int(name[5]) - 2, 1)


def kept_of(tracked: Tracked) -> Counted:
    """A dossier in memory as the store keeps it, with how far the clock announced it."""
    return replace(tracked.receipt, timeline=tracked.timeline, announced_until=tracked.announced_until)


# A held dossier as a stored row (a JSON array): the receipt's values in this order, then how far the clock
# announced it, its last Facts packed alone and its whole timeline packed (base64; services/metrics/compact.py).
# The code and the events come first: a start skips an older announcement before reading the rest; it reads the
# last Facts, what the dossier counts as now, and leaves the timeline packed.
ROW = ("dossier_code", "events", "commune_code", "sector", "procedure_code", "channel", "online_level",
       "received_at", "received_by_unit", "flags", "fees_total", "receipt_due_at", "appointment_at", "arrivals",
       "arrivals_synced", "announced_until", "now", "steps")
FLAGS = ("component_digitized", "component_reused", "component_from_personal_store", "vneid_authenticated",
         "population_data")  # one bit each in `flags`
_FLAGGED = [{name: bool(flags >> i & 1) for i, name in enumerate(FLAGS)} for flags in range(1 << len(FLAGS))]


def row_of(dossier: Held | Tracked) -> list[Any]:
    """A dossier as the figures hold it (an announcement taken, or a dossier in memory), as stored."""
    r = dossier.receipt
    return [r.dossier_code, r.events, r.commune_code, r.sector, r.procedure_code, r.channel, r.online_level,
            r.received_at.isoformat(), r.received_by_unit, sum(getattr(r, name) << i for i, name in enumerate(FLAGS)),
            r.fees_total, _iso(r.receipt_due_at), _iso(r.appointment_at), r.arrivals, r.arrivals_synced,
            _iso(dossier.announced_until), b64encode(compact.pack((dossier.now,))).decode(),
            b64encode(dossier.steps).decode()]


def held_of(row: list[Any]) -> Held:
    """A stored row as `Figures.apply` takes it: what `row_of` was given, strings and time zones shared as
    `receipt_of` shares them."""
    (code, events, commune_code, sector, procedure, channel, level, received_at, unit, flags, fees, due, appointment,
     arrivals, synced, until, now, steps) = row
    due_at = _instant(due)
    receipt = Counted(
        dossier_code=code, commune_code=intern(commune_code), sector=intern(sector), procedure_code=intern(procedure),
        channel=intern(channel), online_level=level and intern(level), received_at=_instant(received_at),
        received_by_unit=unit and intern(unit), fees_total=shared_fees(fees), receipt_due_at=due_at, events=events,
        timeline=(), appointment_at=due_at if appointment == due else _instant(appointment), arrivals=arrivals,
        arrivals_synced=synced, **_FLAGGED[flags])
    [last] = compact.unpack(b64decode(now), due_at)  # as `last_of` keeps it: zones shared, units interned
    return Held(receipt, last, b64decode(steps), None, _instant(until))


def stored_at_risk(doc: dict[str, Any] | None) -> tuple[datetime, dict[str, float]] | None:
    """The points at risk as `save_at_risk` stored them, with the instant; None when there are none, or none this
    version reads (an instant without its offset, a point that is not a finite number): they only save a start the
    working out, which it then does (a review found a malformed document kept the service from ever being ready)."""
    try:
        at = datetime.fromisoformat(doc["at"])  # type: ignore[index]
        points = {str(code): float(value) for code, value in doc["points"].items()}  # type: ignore[index]
    except (TypeError, KeyError, ValueError, AttributeError):
        return None
    if at.tzinfo is None or not all(math.isfinite(value) for value in points.values()):
        return None
    return at, points


def _packed(counts: Counter[Key]) -> Binary:
    return Binary(orjson.dumps([[list(k), v] for k, v in counts.items() if v]))


def _unpacked(blob: bytes) -> Counter[Key]:
    return Counter({tuple(k): v for k, v in orjson.loads(blob)})


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat()


def _instant(written: str | None) -> datetime | None:
    return None if written is None else shared_zone(datetime.fromisoformat(written))


def verdict_doc(verdict: Verdict) -> dict[str, Any]:
    return {"dossier_code": verdict.dossier_code, "document_id": verdict.document_id, "at": verdict.at.isoformat(),
            "commune_code": verdict.commune_code, "sector": verdict.sector, "verdict": verdict.verdict,
            "signed_at": verdict.signed_at.isoformat()}


def from_verdict_doc(doc: dict[str, Any]) -> Verdict:
    return Verdict(doc["dossier_code"], doc["document_id"], datetime.fromisoformat(doc["at"]), doc["commune_code"],
                   doc["sector"], doc["verdict"], datetime.fromisoformat(doc["signed_at"]))


@dataclass
class Batch:
    """What one consumed batch stores, by where it goes: a quarter's log (`2025q3`) or `carried`."""

    statuses: dict[str, list[Held]] = field(default_factory=dict)
    verdicts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    clock: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class State:
    horizon: str | None  # the horizon quarter of the last compaction; None before the first
    archived_counts: Counter[Key]  # what the archived dossiers counted
    # The archived dossiers noted back in memory since the last compaction, with what the archive counted of each
    returned: dict[str, Counter[Key]] = field(default_factory=dict)


@dataclass
class Archived:
    """A dossier that ended before the horizon, as a report reads it back."""

    counted: Counted
    verdicts: list[Verdict]


def archive_key(commune_code: str, received: date) -> str:
    """The archive's chain of one commune's dossiers received in one month (local date)."""
    return f"{commune_code}:{received:%Y-%m}"


@dataclass(frozen=True)
class Collections:
    """A replica's collections: `<prefix>_` and one of the names the module's docstring lists. Replicas may share a
    database, and a prefix may begin another's (`metrics` and `metrics_north`): a name is a replica's only when
    what follows its prefix is one of its own names. Before, `rebuild` of the replica without a name dropped every
    named replica's store in its database, and a replica named `log…` had its logs read by it."""

    prefix: str

    @classmethod
    def of(cls, replica: str) -> "Collections":
        return cls("metrics" if not replica else "metrics_" + re.sub(r"[^A-Za-z0-9_]", "_", replica))

    def owns(self, name: str) -> bool:
        return name in {f"{self.prefix}_{own}" for own in ("state", "returned", "archive", "feedback",
                                                           "feedback_archive")} or (
            self.is_log(name) or self.is_carried(name))

    def is_log(self, name: str) -> bool:
        return re.fullmatch(rf"{self.prefix}_log_\d{{4}}q[1-4]", name) is not None

    def is_carried(self, name: str) -> bool:
        return re.fullmatch(rf"{self.prefix}_carried_\d+", name) is not None


class FiguresStore:
    def __init__(self, client: AsyncMongoClient, database: str, replica: str = ""):
        self._db = client[database]
        self.names = Collections.of(replica)
        self.prefix = self.names.prefix
        self._state = self._db[f"{self.prefix}_state"]
        self._returned = self._db[f"{self.prefix}_returned"]
        self._archive = Chain(self._db[f"{self.prefix}_archive"])
        self._carried: str | None = None  # the carried collection in use
        self._generation = 0  # the compaction that wrote it
        # Per kind (REWRITTEN) and quarter's log (`2025q3`), the `_id`s of the blobs it holds (read at a start, written since)
        self.blobs: dict[str, dict[str, set[str]]] = {kind: {} for kind in REWRITTEN}

    def feedback_store(self) -> FeedbackStore:
        """This replica's PAKN records, beside its figures (services/metrics/feedback.py)."""
        return FeedbackStore(self._db, self.prefix)

    # -- writing what comes ------------------------------------------------------------------------

    async def save(self, batch: Batch) -> None:
        """The verdicts first: a dossier back from the archive is counted from memory once its row is stored, and its
        archived verdicts, written with it, must be there by then."""
        for where, entries in batch.verdicts.items():
            await self._insert(where, "verdicts", entries)
        for where, entries in batch.statuses.items():
            await self._insert(where, "held", [row_of(h) for h in entries])
        for where, ids in batch.clock.items():
            await self._insert(where, "clock", ids)

    async def _insert(self, where: str, kind: str, entries: list[Any]) -> None:
        if not entries:
            return
        await self._write(self._name(where), kind, entries)

    def _name(self, where: str) -> str:
        """The collection of a quarter's log (`2025q3`) or of the carried dossiers (`carried`)."""
        name = self._carried if where == "carried" else f"{self.prefix}_log_{where}"
        assert name is not None, "nothing is carried before the first compaction"
        return name

    def _where(self, name: str) -> str | None:
        """`_name`'s inverse for the logs and the carried collection in use (REWRITTEN's blobs are kept by it)."""
        return name[-6:] if self.names.is_log(name) else "carried" if name == self._carried else None

    async def _write(self, name: str, kind: str, entries: list[Any]) -> set[str]:
        """Entries into a collection as blobs of CHUNK each; their `_id`s (some may have been there)."""
        blobs = [self.blob(kind, entries[i:i + CHUNK]) for i in range(0, len(entries), CHUNK)]
        await insert_new(self._db[name], blobs)
        ids = {blob["_id"] for blob in blobs}
        if kind in REWRITTEN and (where := self._where(name)):
            self.blobs[kind].setdefault(where, set()).update(ids)
        return ids

    @staticmethod
    def blob(kind: str, entries: list[Any]) -> dict[str, Any]:
        """A blob of entries as the store writes it, its `_id` its content's."""
        blob = orjson.dumps(entries)
        return {"_id": hashlib.sha256(kind.encode() + blob).hexdigest(), "kind": kind, "blob": Binary(blob)}

    # -- loading -------------------------------------------------------------------------------------

    async def note_returned(self, counted: dict[str, Counter[Key]]) -> None:
        """These archived dossiers are back in memory: what the archive counted of each (the module's docstring)."""
        await replace_all(self._returned, [{"_id": code, "generation": self._generation, "counts": _packed(counts)}
                                           for code, counts in counted.items()])

    async def save_at_risk(self, at: datetime, points: dict[str, float]) -> None:
        """The points at risk as worked out as of `at`, which the next start serves until it has worked them out
        again (services/metrics/core.py `start`)."""
        await self._state.replace_one({"_id": "at_risk"}, {"at": at.isoformat(), "points": points}, upsert=True)

    async def at_risk(self) -> tuple[datetime, dict[str, float]] | None:
        return stored_at_risk(await self._state.find_one({"_id": "at_risk"}))

    async def state(self) -> State:
        """Where the last compaction left the store (nothing before the first), with the dossiers noted returned
        since. The returned collection holds a few dossiers: read whole (those of an earlier generation are what a
        compaction that stopped before dropping them left)."""
        state = await self._state.find_one({"_id": "horizon"})
        self._carried = state["carried"] if state else None
        self._generation = state["generation"] if state else 0
        if state is None:
            return State(None, Counter())
        returned = {doc["_id"]: _unpacked(doc["counts"]) async for doc in self._returned.find({})
                    if doc["generation"] == self._generation}
        return State(state["quarter"], _unpacked(state["counts"]), returned)

    async def entries(self, horizon: str | None) -> AsyncIterator[tuple[str, list[Any]]]:
        """What the carried collection and the logs from the horizon on hold, a blob at a time, as
        (kind, entries): held dossiers' rows (`row_of`) or, written before v1.4, statuses, latest first (the older
        are then skipped at once), verdicts, clock ids."""
        names = [self._carried] if self._carried else []
        names += sorted(n for n in await self.logs() if horizon is None or n[-6:] >= horizon)
        for name in names:
            # A few blobs (up to ~3 MB each) a reply: FerretDB does not cut replies at 16 MB as
            # MongoDB does, and the driver refuses one over 48 MB.
            where = self._where(name)
            async for doc in read_ahead(self._db[name].find({}, batch_size=4), 4):
                if doc["kind"] in REWRITTEN:
                    self.blobs[doc["kind"]].setdefault(where, set()).add(doc["_id"])  # type: ignore[arg-type]
                if doc["kind"] == "statuses":
                    yield "statuses", KEPT.validate_json(doc["blob"])[::-1]
                elif doc["kind"] == "held":
                    yield "held", orjson.loads(doc["blob"])[::-1]
                else:
                    yield doc["kind"], orjson.loads(doc["blob"])

    async def logs(self) -> list[str]:
        return [n for n in await self._db.list_collection_names() if self.names.is_log(n)]

    # -- compaction ------------------------------------------------------------------------------

    async def compact(self, horizon: str, archived: list[Tracked], verdicts: dict[str, list[Verdict]],
                      carried: list[Tracked], counts: Counter[Key], loose: Iterable[Verdict] = ()) -> None:
        """Archive the dossiers ended before `horizon`, carry those received before it that are still
        in memory, with the `loose` verdicts (of dossiers not in memory), and switch the state to them (the module's
        docstring gives the order)."""
        months: dict[str, list[dict[str, Any]]] = {}
        for tracked in archived:
            key = archive_key(tracked.receipt.commune_code, tracked.received_date)
            doc = COUNTED.dump_python(kept_of(tracked), mode="json") | {
                "verdicts": [verdict_doc(v) for v in verdicts.get(tracked.code, ())]}
            months.setdefault(key, []).append(doc)
        for key, docs in months.items():
            for i in range(0, len(docs), CHUNK):
                await self._archive.append(key, {"statuses": docs[i:i + CHUNK]})
        state = await self._state.find_one({"_id": "horizon"})
        generation = (state["generation"] + 1) if state else 1
        name = f"{self.prefix}_carried_{generation}"
        await self._db.drop_collection(name)  # what a compaction that crashed began
        written = {"held": await self._write(name, "held", [row_of(t) for t in carried]),
                   "verdicts": await self._write(name, "verdicts", [verdict_doc(v) for t in carried
                                                                    for v in verdicts.get(t.code, ())]
                                                 + [verdict_doc(v) for v in loose])}
        await self._state.replace_one({"_id": "horizon"}, {
            "quarter": horizon, "generation": generation, "carried": name, "counts": _packed(counts)}, upsert=True)
        self._carried, self._generation = name, generation
        for kind, ids in written.items():
            self.blobs[kind]["carried"] = ids
        await self._db.drop_collection(self._returned.name)  # the counts just written are net of them
        logs = await self.logs()
        for old in await self._db.list_collection_names():
            stale_log = old in logs and old[-6:] < horizon
            stale_carried = self.names.is_carried(old) and old != name
            if stale_log or stale_carried:
                await self._db.drop_collection(old)
                if stale_log:
                    for blobs in self.blobs.values():
                        blobs.pop(old[-6:], None)

    async def rewrite(self, kind: str, homes: dict[str, list[Any]], entry: Callable[[Any], Any],
                      before: dict[str, set[str]], between: asyncio.Lock) -> int:
        """Entries of a kind written anew where they belong (`homes`: a quarter's log or `carried`, each with its
        objects, made entries by `entry` CHUNK at a time holding `between`, the replica's lock of batches and clock
        ticks: an entry is what they left, not what one of them is midway through), then the blobs of that kind
        `before` names (by log or `carried`: what held them when `homes` was taken) deleted; how many. New blobs
        the consumer writes meanwhile stay, and so does a blob written anew as it was (the same bytes, the same `_id`).
        A crash between leaves both: a start reads an entry twice and takes it once."""
        written: set[str] = set()
        for where, objects in homes.items():
            for i in range(0, len(objects), CHUNK):
                async with between:
                    entries = [entry(o) for o in objects[i:i + CHUNK]]
                written |= await self._write(self._name(where), kind, entries)
        deleted = 0
        for where, ids in before.items():
            stale = sorted(ids - written)
            await delete_all(self._db[self._name(where)], stale)
            self.blobs[kind][where] -= set(stale)
            deleted += len(stale)
        return deleted

    async def archived(self, keys: Iterable[str]) -> list[Archived]:
        """The archived dossiers of these commune-months (`14923:2025-07`), one status per dossier."""
        found: dict[str, Archived] = {}
        async for doc in archived_entries(self._archive, keys, "statuses"):
            counted = COUNTED.validate_python(doc)
            code = counted.dossier_code
            if code not in found or counted.events > found[code].counted.events:
                found[code] = Archived(counted, [from_verdict_doc(v) for v in doc["verdicts"]])
        return list(found.values())

    async def drop(self) -> None:
        for name in await self._db.list_collection_names():
            if self.names.owns(name):
                await self._db.drop_collection(name)
        self._carried = None

    async def rewrite_statuses(self) -> int:
        """The blobs of whole statuses a store before v1.4 wrote in the logs and the carried collection, each
        rewritten as a blob of rows (`row_of`), the new written before the old is deleted (a crash between leaves
        both: a start reads the announcements twice and takes each once); how many statuses were rewritten."""
        rewritten = 0
        carried = [n for n in await self._db.list_collection_names() if self.names.is_carried(n)]
        for name in await self.logs() + carried:
            collection = self._db[name]
            for key in [doc["_id"] async for doc in collection.find({"kind": "statuses"}, {"_id": 1})]:
                doc = await collection.find_one({"_id": key})
                rows = [row_of(held(counted)) for counted in KEPT.validate_json(doc["blob"])]
                await insert_new(collection, [self.blob("held", rows)])
                await collection.delete_one({"_id": key})
                rewritten += len(rows)
        return rewritten

    async def legacy(self) -> AsyncIterator[tuple[str, list[Any]]]:
        """What a version before the archive stored (`metrics_status`, `metrics_signatures`,
        `metrics_clock_sent`), as (kind, entries), for the one-time move into the logs."""
        names = set(await self._db.list_collection_names())
        if "metrics_status" in names:
            async for doc in self._db["metrics_status"].find({}, batch_size=4):
                yield "statuses", KEPT.validate_json(doc["statuses"])
        if "metrics_signatures" in names:
            async for doc in self._db["metrics_signatures"].find({}, batch_size=5000):
                yield "signatures", [doc]
        if "metrics_clock_sent" in names:
            yield "clock", [doc["_id"] async for doc in self._db["metrics_clock_sent"].find({}, batch_size=10000)]

    async def drop_legacy(self) -> None:
        for name in ("metrics_status", "metrics_signatures", "metrics_clock_sent"):
            await self._db.drop_collection(name)

