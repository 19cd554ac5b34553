"""Dossier histories in MongoDB: a chain of insert-only links per dossier, and a summary of it.

- `dossier_links`: `code`, `code#1`, `code#2`, ... (shared.mongo.Chain). Each link holds what one
  batch added to the dossier (events, events newly dead-lettered with their reasons, the status, the outbox to
  publish). The chain is the truth. Inserting link n is the concurrency check between replicas: if
  another replica wrote it first, the insert fails with a duplicate key, and this replica reloads
  the dossier and integrates again.
- `dossiers`: one summary per dossier (`_id` = code): the whole history as of link `version - 1`,
  written (replaced) after that link's outbox is published. A reader takes the summary and follows
  the links written after it, if any: those are there when a replica stopped between its write and
  its summary, whose outbox is then published again (consumers deduplicate by event id). Intake reads
  the summary too, by its key, to answer the portal format's TraCuuHoSo (docs/dvcqg.md): its `view`,
  its receipt among `events`, and `rejections` (each dead-lettered event's source, id, type, time, reason).
- `dossiers_waiting`: the dossiers whose events wait for their receipt (a few: read whole by the sweep).

Every read is by `_id`: one key read gives a dossier (docs/contract.md §6's lookup), however long its life.
"""

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, InsertOne
from pymongo.errors import BulkWriteError

from services.processing.history import Outgoing, StoredDossier
from shared.mongo import DUPLICATE_KEY, Chain, insert_new, pack, replace_all, unpack


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

    def to_doc(self) -> dict[str, Any]:
        return Chain.link(self.code, self.n, {
            "events": self.events,
            "dead_lettered": self.dead_lettered,
            "rejections": self.rejections,
            "outbox": [o.to_doc() for o in self.outbox],
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


def summary_doc(stored: StoredDossier) -> dict[str, Any]:
    return {"_id": stored.code, "blob": pack({
        "version": stored.version, "events": stored.events, "dead_lettered": stored.dead_lettered,
        "rejections": stored.rejections, "status": stored.status, "timeline": stored.timeline, "waiting_since": stored.waiting_since,
        "view": stored.view, "phone4": stored.phone4})}


def from_summary(code: str, doc: dict[str, Any]) -> StoredDossier:
    summary = unpack(doc["blob"])
    return StoredDossier(code=code, version=summary["version"], events=summary["events"],
                         dead_lettered=summary["dead_lettered"], rejections=summary.get("rejections", []),
                         status=summary["status"],
                         timeline=summary["timeline"], waiting_since=_instant(summary["waiting_since"]),
                         view=summary["view"], phone4=summary.get("phone4"))


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def follow(stored: StoredDossier, links: list[dict[str, Any]]) -> StoredDossier:
    """A summary with the links written after it; the last link's outbox may not be published."""
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


class DossierStore:
    def __init__(self, client: AsyncMongoClient, database: str, cache_size: int = 20_000):
        db = client[database]
        self._links = Chain(db["dossier_links"])
        self._summaries = db["dossiers"]
        self._waiting = db["dossiers_waiting"]
        self._cache: OrderedDict[str, StoredDossier] = OrderedDict()
        self._cache_size = cache_size

    async def read(self, code: str) -> StoredDossier | None:
        """A dossier as stored now (never from the cache): its summary, then any later links."""
        summary = await self._summaries.find_one({"_id": str(code)})
        stored = from_summary(str(code), summary) if summary else StoredDossier(str(code))
        stored = follow(stored, await self._links.read(stored.code, stored.version))
        return stored if stored.version else None

    async def view(self, code: str) -> tuple[dict[str, Any], str | None] | None:
        """The dossier as its lookups show it, and its lookup factor, from its summary: one key read. A
        replica that stopped between a write and its summary leaves it a batch behind until it is redone."""
        summary = await self._summaries.find_one({"_id": str(code)})
        if summary is None:
            return None
        found = unpack(summary["blob"])
        return (found["view"], found.get("phone4")) if found["view"] else None

    async def read_many(self, codes: list[str], concurrency: int = 32) -> dict[str, StoredDossier | None]:
        """Dossiers as stored now, read side by side, each by its keys."""
        gate = asyncio.Semaphore(concurrency)

        async def one(code: str) -> StoredDossier | None:
            async with gate:
                return await self.read(code)

        unique = list(dict.fromkeys(str(c) for c in codes))
        return dict(zip(unique, await asyncio.gather(*(one(c) for c in unique)), strict=True))

    async def load(self, codes: list[str], from_database: bool = False) -> dict[str, StoredDossier]:
        """The dossiers to integrate into. From this replica's cache; a dossier it has not seen is
        assumed new, without a read: if it is not, writing its first link fails and the caller
        loads it again `from_database`. A dossier's events all come through one partition, so the
        replica that owns it has it cached, and a new dossier costs no read."""
        if from_database:
            read = await self.read_many(codes)
            found = {code: read[str(code)] or StoredDossier(code) for code in codes}
            for stored in found.values():
                self._remember(stored)
            return found
        return {c: self._cache.get(c) or StoredDossier(c) for c in codes}

    async def save(self, changes: list[tuple[StoredDossier, StoredDossier]]) -> tuple[list[StoredDossier], set[str]]:
        """Append one link per (before, after) change. Returns the dossiers as written (with their new
        version) and the codes another replica wrote first, which are not written."""
        links = [link_to(before, after) for before, after in changes]
        lost: set[str] = set()
        if links:
            try:
                await self._links.collection.bulk_write([InsertOne(link.to_doc()) for link in links], ordered=False)
            except BulkWriteError as exc:
                failed = {links[e["index"]].code for e in exc.details["writeErrors"] if e["code"] == DUPLICATE_KEY}
                if len(failed) != len(exc.details["writeErrors"]):
                    raise
                lost = failed
        written = [replace(after, version=after.version + 1) for _, after in changes if after.code not in lost]
        for code in lost:
            self._cache.pop(code, None)
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
        """These dossiers' latest links are written and their outboxes published: their summaries
        now say so (an unconditional replace: a summary older than its chain is caught by `read`)."""
        await replace_all(self._summaries, [summary_doc(d) for d in published])
        for d in published:
            if d.code in self._cache:
                self._cache[d.code] = replace(self._cache[d.code], outbox=[])

    async def count_waiting(self) -> int:
        return await self._waiting.count_documents({})

    async def waiting_before(self, cutoff: datetime, limit: int = 500) -> list[str]:
        """The waiting collection holds only dossiers without a receipt yet: reading it whole is cheap."""
        return [doc["_id"] async for doc in self._waiting.find({"since": {"$lt": cutoff}}).limit(limit)]

    def _remember(self, stored: StoredDossier) -> None:
        self._cache[stored.code] = stored
        self._cache.move_to_end(stored.code)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
