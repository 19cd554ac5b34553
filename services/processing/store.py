"""Dossier histories in MongoDB: a chain of insert-only links per dossier, its history now and then, and
a summary of where it stands.

- `dossier_links`: `code`, `code#1`, `code#2`, ... (shared.mongo.Chain). Each link holds what one
  batch added to the dossier (events, events newly dead-lettered with their reasons, the status, the outbox to
  publish). The chain is the truth. Inserting link n is the concurrency check between replicas: if
  another replica wrote it first, the insert fails with a duplicate key, and this replica reloads
  the dossier and integrates again.
- `dossier_histories`: the whole history as of link `version - 1` (`history_doc`), written (replaced) at
  versions 1, 8, 16, 32, ... only (`is_checkpoint`), so that the bytes written for an event are the
  change's, not the history's (histories written at doubling versions cost about twice the history once
  over a dossier's life; a reader follows at most half the links, 6 below version 8).
- `dossiers`: one summary per dossier (`_id` = code, `summary_doc`), replaced after each link's outbox is
  published: where it stands (status, timeline, the lookup's `view` and factor), the version published,
  and for intake's TraCuuHoSo (docs/dvcqg.md) its receipt as sent, the sources of its records and its
  `rejections` (each dead-lettered event's source, id, type, time, reason); no event else. A store written
  before histories existed has the whole history in its summaries: read as a history.
- `dossiers_waiting`: the dossiers whose events wait for their receipt (a few: read whole by the sweep).

A reader takes the history, follows the links written after it, and republishes the last link's outbox
unless the summary says it was published (a replica stopped between its write and its summary; consumers
deduplicate by event id). Every read is by `_id`: a lookup is one key read, however long the dossier's life.
"""

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, InsertOne
from pymongo.errors import BulkWriteError

from services.processing.history import Outgoing, StoredDossier, left_open_at
from shared.events import ReceivedEvent
from shared.mongo import DUPLICATE_KEY, Chain, KeyReads, get_many, insert_new, link_id, pack, unpack, written


@dataclass(frozen=True)
class Link:
    """What one write adds to a dossier: link number `n` of its chain."""

    code: str
    n: int
    events: list[str]
    dead_lettered: list[str]
    rejections: list[dict[str, str]]
    outbox: list[Outgoing]
    status: dict[str, Any] | None
    timeline: list[dict[str, Any]] | None
    waiting_since: datetime | None

    def to_doc(self, records_as_json: bool = False) -> dict[str, Any]:
        return Chain.link(self.code, self.n, {
            "events": self.events,
            "dead_lettered": self.dead_lettered,
            "rejections": self.rejections,
            "outbox": [o.to_doc(records_as_json) for o in self.outbox],
            "status": self.status,
            "timeline": self.timeline,
            "waiting_since": self.waiting_since,
        })


def link_to(before: StoredDossier, after: StoredDossier) -> Link:
    """The link that turns the stored chain `before` into `after`."""
    return Link(
        code=after.code,
        n=before.version,
        events=after.events[len(before.events) :],
        dead_lettered=after.dead_lettered[len(before.dead_lettered) :],
        rejections=after.rejections[len(before.rejections) :],
        outbox=after.outbox,
        status=after.status,
        timeline=after.timeline,
        waiting_since=after.waiting_since,
    )


def history_doc(stored: StoredDossier) -> dict[str, Any]:
    """The dossier's whole history as of its version (`dossier_histories`)."""
    return {"_id": stored.code, "blob": pack({
        "version": stored.version, "events": stored.events, "dead_lettered": stored.dead_lettered,
        "rejections": stored.rejections, "status": stored.status, "timeline": stored.timeline,
        "waiting_since": stored.waiting_since, "view": stored.view, "phone4": stored.phone4})}


def summary_doc(stored: StoredDossier) -> dict[str, Any]:
    """Where the dossier stands once its version's outbox is published (`dossiers`): no event but its
    receipt, so its size follows its state, not its history."""
    parsed = stored.parsed()
    receipt = next((raw for event, raw in zip(parsed, stored.events, strict=True) if isinstance(event, ReceivedEvent)), None)
    return {"_id": stored.code, "blob": pack({
        "version": stored.version, "rejections": stored.rejections, "status": stored.status,
        "timeline": stored.timeline, "waiting_since": stored.waiting_since, "view": stored.view,
        "phone4": stored.phone4, "receipt": receipt, "sources": sorted({e.source for e in parsed})})}


def _open_view(summary: dict[str, Any]) -> dict[str, Any] | None:
    """A summary's view (docs/contract.md §6, its blob unpacked) when its dossier is received and still open."""
    view = summary["view"]
    return view if view and not left_open_at(view) else None


def is_checkpoint(version: int) -> bool:
    """Whether the history is written at this version: 1, then the powers of two from 8 (8, 16, 32, ...)."""
    return version == 1 or (version >= 8 and version & (version - 1) == 0)


def published_docs(stored: StoredDossier) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """What the store writes once a version's outbox is published: its history at a checkpoint (else
    None), and its summary."""
    written = is_checkpoint(stored.version) or stored.history_missing
    return (history_doc(stored) if written else None), summary_doc(stored)


def from_history(code: str, doc: dict[str, Any]) -> StoredDossier:
    """A dossier from its history document (or a summary written before histories existed)."""
    summary = unpack(doc["blob"])
    return StoredDossier(code=code, version=summary["version"], events=summary["events"],
                         dead_lettered=summary["dead_lettered"], rejections=summary.get("rejections", []),
                         status=summary["status"],
                         timeline=summary["timeline"], waiting_since=_instant(summary["waiting_since"]),
                         view=summary["view"], phone4=summary.get("phone4"))


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def follow(stored: StoredDossier, links: list[dict[str, Any]]) -> StoredDossier:
    """A history with the links written after it; the last link's outbox may not be published, and its view is
    the history's (links keep none) until its summary says more (`published_as`)."""
    if not links:
        return stored
    last = links[-1]
    return replace(
        stored,
        version=stored.version + len(links),
        events=[*stored.events, *(e for d in links for e in d["events"])],
        dead_lettered=[*stored.dead_lettered, *(k for d in links for k in d.get("dead_lettered", []))],
        rejections=[*stored.rejections, *(r for d in links for r in d.get("rejections", []))],
        outbox=[Outgoing.from_doc(o) for o in last.get("outbox", [])],
        status=last.get("status"),
        timeline=last.get("timeline"),
        waiting_since=_instant(last.get("waiting_since")),
    )


def published_as(stored: StoredDossier, summary: dict[str, Any] | None) -> StoredDossier:
    """A dossier read back, with its summary (unpacked): one at its version says its last outbox is published, and
    holds its view; one behind it (a replica stopped between its link and its summary) says neither: the dossier is
    folded at its next batch and its summary written again."""
    if summary is None or summary["version"] < stored.version:
        return replace(stored, summary_behind=True)
    return replace(stored, outbox=[], view=summary["view"], phone4=summary.get("phone4"), summary_behind=False)


def cached_once_published(cached: StoredDossier | None, published: StoredDossier) -> StoredDossier | None:
    """What a replica's cache keeps of a dossier once its outbox and summary are written (`mark_sent`): the dossier
    as published, nothing left to publish, its summary no longer behind; None when the cache holds no dossier of
    that version."""
    if cached is None or cached.version != published.version:
        return None
    return replace(published, outbox=[], history_missing=False, summary_behind=False)


# What a cached dossier holds, about: its events parsed beside their JSON, its timeline and view as Python
# objects; 14 bytes a byte of its events' JSON (a seven-step dossier: 2.1 KB of JSON, 32 KB cached).
CACHED_BASE, CACHED_PER_JSON_BYTE = 2048, 14


def cached_bytes(stored: StoredDossier) -> int:
    """About the memory a dossier holds in a replica's cache (tests/unit/test_processing_summaries.py)."""
    return CACHED_BASE + CACHED_PER_JSON_BYTE * sum(len(raw) for raw in stored.events)


class DossierStore:
    def __init__(self, client: AsyncMongoClient, database: str, cache_mib: float = 128, records_as_json: bool = False):
        db = client[database]
        self._records_as_json = records_as_json  # how links keep their status records (history.Outgoing.to_doc)
        self._links = Chain(db["dossier_links"])
        self._summaries = db["dossiers"]
        self._summary_of = KeyReads(self._summaries)  # the lookups': many at once are read together
        self._histories = db["dossier_histories"]
        self._waiting = db["dossiers_waiting"]
        self._cache: OrderedDict[str, StoredDossier] = OrderedDict()  # the dossiers last used, last at the end
        self._cache_budget, self._cache_bytes = int(cache_mib * (1 << 20)), 0

    async def read(self, code: str) -> StoredDossier | None:
        """A dossier as stored now (never from the cache): its history, the links after it, and whether the
        last one's outbox was published (its summary's version)."""
        return (await self.read_many([code]))[str(code)]

    async def _stored(self, code: str, history: dict | None, summary: dict | None) -> StoredDossier | None:
        """A dossier from its stored history and summary, and the links after that history."""
        published = unpack(summary["blob"]) if summary else None
        legacy = history is None and published is not None and "events" in published
        if legacy:
            history = summary  # written before histories existed: the summary is the whole
        stored = from_history(code, history) if history else StoredDossier(code)
        stored = replace(stored, history_missing=legacy)
        stored = published_as(follow(stored, await self._links.read(code, stored.version)), published)
        return stored if stored.version else None

    async def view(self, code: str) -> tuple[dict[str, Any], str | None] | None:
        """The dossier as its lookups show it, and its lookup factor, from its summary: one key read. A
        replica that stopped between a write and its summary leaves it a batch behind until it is redone."""
        summary = await self._summary_of(code)
        if summary is None:
            return None
        found = unpack(summary["blob"])
        return (found["view"], found.get("phone4")) if found["view"] else None

    async def open_steps(self, codes: list[str]) -> dict[str, int]:
        """The dossiers of `codes` still open, with the steps their summary shows (one more with each event
        applied; an event refused, a foreign source's, adds none): what a review of abandoned dossiers asks
        (shared/personal.py `Retention`), one read of the summaries, one of the links after them.

        A summary behind its chain (a link past its version: written late by a replica that had lost its
        partitions, or its write cut short) shows an earlier state: such a dossier counts minus its chain's length
        instead, which no count of steps equals, and which stays the same only while nothing is written to it."""
        found = await get_many(self._summaries, list(dict.fromkeys(codes)))
        opened = {code: (summary["version"], view) for code, doc in found.items()
                  if (view := _open_view(summary := unpack(doc["blob"])))}
        later = await get_many(self._links.collection, [link_id(code, version) for code, (version, _) in opened.items()])
        steps = {}
        for code, (version, view) in opened.items():
            behind = link_id(code, version) in later
            steps[code] = -(version + 1 + len(await self._links.read(code, version + 1))) if behind else len(
                view["history"])
        return steps

    async def open_summaries(self, batch: int = 1000) -> AsyncIterator[dict[str, tuple[int, datetime | None]]]:
        """Every dossier stored open, with its steps and its last step's time, `batch` at a time: a scan of the
        summaries, for the one-off `python -m services.processing review-open`, never for serving."""
        found: dict[str, tuple[int, datetime | None]] = {}
        async for doc in self._summaries.find({}, batch_size=batch):
            if view := _open_view(unpack(doc["blob"])):
                times = [datetime.fromisoformat(step["time"]) for step in view["history"]]
                found[doc["_id"]] = (len(view["history"]), max(times, default=None))
            if len(found) >= batch:
                yield found
                found = {}
        if found:
            yield found

    async def read_many(self, codes: list[str], concurrency: int = 32) -> dict[str, StoredDossier | None]:
        """Dossiers as stored now: their histories and summaries in one read each (by `_id`,
        shared.mongo.get_many), then the links after each history, `concurrency` dossiers at a time."""
        unique = list(dict.fromkeys(str(c) for c in codes))
        histories, summaries = await asyncio.gather(get_many(self._histories, unique), get_many(self._summaries, unique))
        gate = asyncio.Semaphore(concurrency)

        async def one(code: str) -> StoredDossier | None:
            async with gate:
                return await self._stored(code, histories.get(code), summaries.get(code))

        return dict(zip(unique, await asyncio.gather(*(one(c) for c in unique)), strict=True))

    async def load(self, codes: list[str], from_database: bool = False,
                   read_unseen: Collection[str] = ()) -> dict[str, StoredDossier]:
        """The dossiers to integrate into. From this replica's cache; a dossier it has not seen is
        assumed new, without a read, unless it is in `read_unseen` (its events bring no receipt: it is
        most likely stored, after a restart or a rebalance). One assumed new that is not fails to write its
        first link, and the caller loads it again `from_database`: a failed batch of links costs FerretDB
        one insert a link, so a dossier most likely stored is read first. A dossier's events all come
        through one partition, so the replica that owns it has it cached, and a new dossier costs no read."""
        found = {c: self._cache.get(c) or StoredDossier(c) for c in codes}
        unread = codes if from_database else [c for c in read_unseen if c not in self._cache]
        if unread:
            read = await self.read_many(unread)
            for code in unread:
                found[code] = read[str(code)] or StoredDossier(code)
                self._remember(found[code])
        return found

    async def save(self, changes: list[tuple[StoredDossier, StoredDossier]]) -> tuple[list[StoredDossier], set[str]]:
        """Append one link per (before, after) change. Returns the dossiers as written (with their new
        version) and the codes another replica wrote first, which are not written."""
        links = [link_to(before, after) for before, after in changes]
        lost: set[str] = set()
        if links:
            try:
                await self._links.collection.bulk_write([InsertOne(link.to_doc(self._records_as_json)) for link in links], ordered=False)
            except BulkWriteError as exc:
                failed = {links[e["index"]].code for e in exc.details["writeErrors"] if e["code"] == DUPLICATE_KEY}
                if len(failed) != len(exc.details["writeErrors"]):
                    raise
                lost = failed
        written = [replace(after, version=after.version + 1) for _, after in changes if after.code not in lost]
        for code in lost:
            self._forget(code)
        for stored in written:
            self._remember(stored)
        await self._track_waiting([(b, a) for b, a in changes if a.code not in lost])
        return written, lost

    async def _track_waiting(self, changes: list[tuple[StoredDossier, StoredDossier]]) -> None:
        started = [a for b, a in changes if a.waiting_since and not b.waiting_since]
        ended = [a.code for b, a in changes if b.waiting_since and not a.waiting_since]
        await insert_new(self._waiting, [{"_id": a.code, "since": a.waiting_since} for a in started])
        await asyncio.gather(*(self._waiting.delete_one({"_id": code}) for code in ended))

    async def mark_sent(self, published: list[StoredDossier]) -> None:
        """These dossiers' latest links are written and their outboxes published: their summaries now say
        so, and at a checkpoint their histories are written too, side by side (unconditional replaces: a
        history or a summary older than its chain costs `read` a few more links, or one outbox published
        again)."""
        docs = [published_docs(d) for d in published]
        firsts = {d.code for d in published if d.version == 1}
        await asyncio.gather(written(self._histories, [history for history, _ in docs if history is not None], firsts),
                             written(self._summaries, [summary for _, summary in docs], firsts))
        for d in published:
            if (kept := cached_once_published(self._cache.get(d.code), d)) is not None:
                self._cache[d.code] = kept

    async def count_waiting(self) -> int:
        return await self._waiting.count_documents({})

    async def waiting_before(self, cutoff: datetime, limit: int = 500) -> list[str]:
        """The waiting collection holds only dossiers without a receipt yet: reading it whole is cheap."""
        return [doc["_id"] async for doc in self._waiting.find({"since": {"$lt": cutoff}}).limit(limit)]

    def _remember(self, stored: StoredDossier) -> None:
        """Keep `stored` as the last used; forget the least recently used past the budget."""
        self._forget(stored.code)
        self._cache[stored.code] = stored
        self._cache_bytes += cached_bytes(stored)
        while self._cache_bytes > self._cache_budget and len(self._cache) > 1:
            self._forget(next(iter(self._cache)))

    def _forget(self, code: str) -> None:
        if (stored := self._cache.pop(code, None)) is not None:
            self._cache_bytes -= cached_bytes(stored)
