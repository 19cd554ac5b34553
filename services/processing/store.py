"""Dossier histories in MongoDB as chains of insert-only links: `code`, `code#1`, `code#2`, ...

Each link holds what one batch added to the dossier (events, events newly dead-lettered, the
status, the outbox to publish). Only inserts and reads by `_id` are used: the operations that are
fast on FerretDB's SQLite backend (its updates and deletes scan the whole collection) as on
MongoDB. Inserting link n is also the concurrency check: if another replica wrote it first, the
insert fails with a duplicate key, and this replica reloads the dossier and integrates again.
A published outbox gets a marker in `sent`; an unpublished one is carried into the next link.

On FerretDB 1.24 (SQLite), even a lookup by `_id` reads the whole collection (its pushed-down
filter does not match the `_id` index), so the hot path does not read: see `load`.
"""

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, InsertOne
from pymongo.errors import BulkWriteError

from services.processing.history import Outgoing, StoredDossier
from shared.mongo import DUPLICATE_KEY, insert_new


def link_id(code: str, n: int) -> str:
    return code if n == 0 else f"{code}#{n}"


@dataclass(frozen=True)
class Link:
    """What one write adds to a dossier: link number `n` of its chain."""

    code: str
    n: int
    events: list[str]
    dead_lettered: list[str]
    outbox: list[Outgoing]
    status: dict[str, Any] | None
    timeline: list[dict[str, Any]] | None
    waiting_since: datetime | None

    def to_doc(self) -> dict[str, Any]:
        return {
            "_id": link_id(self.code, self.n),
            "events": self.events,
            "dead_lettered": self.dead_lettered,
            "outbox": [o.to_doc() for o in self.outbox],
            "status": self.status,
            "timeline": self.timeline,
            "waiting_since": self.waiting_since,
        }


def link_to(before: StoredDossier, after: StoredDossier) -> Link:
    """The link that turns the stored chain `before` into `after`."""
    return Link(
        code=after.code,
        n=before.version,
        events=after.events[len(before.events) :],
        dead_lettered=after.dead_lettered[len(before.dead_lettered) :],
        outbox=after.outbox,
        status=after.status,
        timeline=after.timeline,
        waiting_since=after.waiting_since,
    )


def _fold_links(code: str, docs: list[dict[str, Any]], sent: bool) -> StoredDossier:
    last = docs[-1]
    return StoredDossier(
        code=code,
        version=len(docs),
        events=[e for d in docs for e in d["events"]],
        dead_lettered=[k for d in docs for k in d.get("dead_lettered", [])],
        outbox=[] if sent else [Outgoing.from_doc(o) for o in last.get("outbox", [])],
        status=last.get("status"),
        timeline=last.get("timeline"),
        waiting_since=last.get("waiting_since"),
    )


class DossierStore:
    def __init__(self, client: AsyncMongoClient, database: str, cache_size: int = 20_000):
        db = client[database]
        self._links = db["dossier_links"]
        self._sent = db["dossier_outbox_sent"]
        self._waiting = db["dossiers_waiting"]
        self._cache: OrderedDict[str, StoredDossier] = OrderedDict()
        self._cache_size = cache_size

    async def read(self, code: str) -> StoredDossier | None:
        """A dossier as stored now (never from the cache)."""
        return (await self.read_many([code]))[str(code)]

    async def read_many(self, codes: list[str]) -> dict[str, StoredDossier | None]:
        """Dossiers as stored now, a link number at a time for all of them: on FerretDB each query
        reads the whole collection, so a batch costs as many queries as its longest chain, not one
        per link of every dossier."""
        chains: dict[str, list[dict[str, Any]]] = {str(c): [] for c in codes}  # plain values, never operators
        wanted = {link_id(c, 0): c for c in chains}
        while wanted:
            found = {d["_id"]: d async for d in self._links.find({"_id": {"$in": list(wanted)}})}
            for lid in found.keys() & wanted.keys():
                chains[wanted[lid]].append(found[lid])
            wanted = {link_id(wanted[lid], len(chains[wanted[lid]])): wanted[lid] for lid in found.keys() & wanted.keys()}
        last_links = [link_id(c, len(docs) - 1) for c, docs in chains.items() if docs]
        sent = {d["_id"] async for d in self._sent.find({"_id": {"$in": last_links}})} if last_links else set()
        return {c: _fold_links(c, docs, link_id(c, len(docs) - 1) in sent) if docs else None
                for c, docs in chains.items()}

    async def load(self, codes: list[str], from_database: bool = False) -> dict[str, StoredDossier]:
        """The dossiers to integrate into. From this replica's cache; a dossier it has not seen is
        assumed new, without a read: if it is not, writing its first link fails and the caller
        loads it again `from_database`. Reads are what is slow on FerretDB; a dossier's events
        all come through one partition, so the replica that owns it has it cached."""
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
                await self._links.bulk_write([InsertOne(link.to_doc()) for link in links], ordered=False)
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
        if ended:
            await self._waiting.delete_many({"_id": {"$in": ended}})

    async def mark_sent(self, published: list[StoredDossier]) -> None:
        """Record that these dossiers' outboxes (of their latest link, version - 1) are published."""
        await insert_new(self._sent, [{"_id": link_id(d.code, d.version - 1)} for d in published if d.outbox])
        for d in published:
            if d.code in self._cache:
                self._cache[d.code] = replace(self._cache[d.code], outbox=[])

    async def count_waiting(self) -> int:
        return await self._waiting.count_documents({})

    async def waiting_before(self, cutoff: datetime, limit: int = 500) -> list[str]:
        return [doc["_id"] async for doc in self._waiting.find({"since": {"$lt": cutoff}}).limit(limit)]

    def _remember(self, stored: StoredDossier) -> None:
        self._cache[stored.code] = stored
        self._cache.move_to_end(stored.code)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
