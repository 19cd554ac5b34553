"""Signature's records in MongoDB, insert-only and read by key (shared.mongo)."""

import asyncio
import time
from dataclasses import dataclass
from collections.abc import AsyncIterator
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from shared.mongo import GET_MANY, Chain, delete_all, get_many, insert_new


class SignatureStore:
    """A dossier's records (its receipt, documents requested, signed and verified) in a chain per
    dossier (shared.mongo.Chain): insert-only, read by key. A record written twice is read once, by its `_id`
    (`Dossier.records`); a redelivered batch adds no link."""

    def __init__(self, client: AsyncMongoClient, database: str):
        db = client[database]
        self._records = Chain(db["signature_dossiers"], summaries=db["signature_views"])
        self._fetches = db["signature_fetches"]  # documents to fetch, until judged
        self._replicas = db["signature_replicas"]  # each replica's last sign of life (`beat`)

    async def add(self, records: list[dict[str, Any]], read: "Dossier | None" = None) -> None:
        """Append the records a dossier does not have yet: a redelivered batch, or the same events sent
        again, adds no link (a chain grows with what happened, not with how often it was told). `read`: the
        records' dossier as read before (`read`: a fetch's, before it fetched), so not read again; a link written
        since is kept and these go after it, even if it holds them too (two replicas that made one fetch)."""
        by_dossier: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_dossier.setdefault(record["code"], []).append(record)

        async def add_new(code: str, mine: list[dict[str, Any]]) -> None:
            dossier = read if read is not None and read.code == code else await self.read(code)
            known = {record["_id"] for record in dossier.records}
            if new := [r for r in mine if r["_id"] not in known]:
                await self._records.extend(code, {"records": new}, dossier.links)

        await asyncio.gather(*(add_new(code, mine) for code, mine in by_dossier.items()))

    async def read(self, code: str) -> "Dossier":
        return Dossier(str(code), await self._records.entries(str(code)))

    async def of_dossier(self, code: str) -> list[dict[str, Any]]:
        return (await self.read(code)).records

    async def remember_fetches(self, fetches: list[dict[str, Any]]) -> int:
        """Documents to fetch (`_id` "code|document_id"), kept until `forget_fetch`: a fetch cut by a restart
        is resumed. One already pending stays as it was. Returns how many are new."""
        return len(await insert_new(self._fetches, fetches))

    async def forget_fetch(self, code: str, document_id: str) -> int:
        return (await self._fetches.delete_one({"_id": f"{code}|{document_id}"})).deleted_count

    async def claim_fetches(self, fetches: list[dict[str, Any]], by: str, free: "Free") -> set[str]:
        """These fetches, as read, made `by`'s from now where they are still as read and free (`Free`): another
        replica's claim meanwhile is kept. Returns the ids `by` then holds. Three reads and writes by `_id` (a filter
        on more than `_id` scans the whole collection on FerretDB); not atomic, but the window is one round trip's,
        not a read of the pending fetches'."""
        was = {fetch["_id"]: fetch["by"] for fetch in fetches}
        now = await get_many(self._fetches, was)
        still = [fetch_id for fetch_id, fetch in now.items() if fetch["by"] == was[fetch_id] and free.takes(fetch)]
        for start in range(0, len(still), GET_MANY):
            await self._fetches.update_many({"_id": {"$in": still[start:start + GET_MANY]}},
                                            {"$set": {"by": by, "since": time.time()}})
        return {fetch_id for fetch_id, fetch in (await get_many(self._fetches, still)).items() if fetch["by"] == by}

    async def wait_again(self, fetch_ids: list[str]) -> None:
        """Fetches a replica held and could not start: waiting, anyone's at once."""
        if fetch_ids:
            await self._fetches.update_many({"_id": {"$in": fetch_ids}}, {"$set": {"by": None, "since": 0.0}})

    async def beat(self, by: str, holds: int) -> None:
        """Replica `by` is alive, and holds this many fetches: nobody else's."""
        await self._replicas.replace_one({"_id": by}, {"_id": by, "alive": time.time(), "holds": holds}, upsert=True)

    async def replicas_alive(self, since: float) -> dict[str, int]:
        """The replicas that beat since then (a few documents), and how many fetches each holds; those silent for a
        day are deleted."""
        replicas = await self._replicas.find({}).to_list(None)
        if gone := [r["_id"] for r in replicas if r["alive"] < time.time() - 86_400]:
            await delete_all(self._replicas, gone)
        return {r["_id"]: r.get("holds", 0) for r in replicas if r["alive"] >= since}

    async def release_fetch(self, code: str, document_id: str) -> None:
        """A fetch that failed: no process's, taken up again by age (not at once, as a waiting one is)."""
        await self._fetches.update_one({"_id": f"{code}|{document_id}"}, {"$set": {"by": None, "since": time.time()}})

    async def pending_count(self) -> int:
        """From the collection's statistics: counting the documents read each one (on FerretDB 3.7 s for 20,000
        while `make demo` ran, every second, back to back; this, 22 ms)."""
        try:
            stats = await (await self._fetches.aggregate([{"$collStats": {"count": {}}}])).to_list(1)
        except OperationFailure:  # no such collection yet: none pending
            return 0
        return int(stats[0].get("count", 0)) if stats else 0

    async def pending_fetches(self, free: "Free", batch: int) -> AsyncIterator[dict[str, Any]]:
        """The fetches not done yet that are free (`Free`), as read, `batch` at a time: a few in the usual case, a
        flood's never all in memory at once, none of those the replicas alive are making."""
        async for fetch in self._fetches.find({"$or": [free.held_by(None), free.held_by({"$nin": [None, *free.alive]})]},
                                              batch_size=batch):
            yield fetch


@dataclass(frozen=True)
class Dossier:
    """A dossier's chain as read: one entry per link, each listing records."""

    code: str
    links: list[dict[str, Any]]

    @property
    def records(self) -> list[dict[str, Any]]:
        """Each record once (the same one in two links: appended by two replicas at once)."""
        unique: dict[str, dict[str, Any]] = {}
        for link in self.links:
            for record in link["records"]:
                unique.setdefault(record["_id"], record)
        return list(unique.values())


@dataclass(frozen=True)
class Free:
    """Which pending fetches a replica may take: those waiting (`since` 0), those released (failed) before
    `released_before`, and those held by a replica not `alive` since before `silent_before` (a replica that has
    just claimed some may not be known alive yet to a replica that read who is a moment before)."""

    alive: list[str]
    released_before: float
    silent_before: float

    def held_by(self, holder: Any) -> dict[str, Any]:
        if holder is None:
            return {"by": None, "since": {"$lte": self.released_before}}
        return {"by": holder, "since": {"$lte": self.silent_before}}

    def takes(self, fetch: dict[str, Any]) -> bool:
        """Whether this fetch, as read, is free."""
        if fetch["by"] is None:
            return fetch["since"] <= self.released_before
        return fetch["by"] not in self.alive and fetch["since"] <= self.silent_before
