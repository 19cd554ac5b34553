"""Signature's records in MongoDB, insert-only and read by key (shared.mongo)."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from pymongo import AsyncMongoClient

from shared.mongo import Chain, get_many, insert_new


class SignatureStore:
    """A dossier's records (its receipt, documents requested, signed and verified) in a chain per
    dossier (shared.mongo.Chain): insert-only, read by key. A record written twice (a redelivered
    batch) is kept once, by its `_id`."""

    def __init__(self, client: AsyncMongoClient, database: str):
        db = client[database]
        self._records = Chain(db["signature_dossiers"], summaries=db["signature_views"])
        self._fetches = db["signature_fetches"]  # documents to fetch, until judged

    async def add(self, records: list[dict[str, Any]]) -> None:
        """Append the records a dossier does not have yet: a redelivered batch, or the same events sent
        again, adds no link (a chain grows with what happened, not with how often it was told)."""
        by_dossier: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_dossier.setdefault(record["code"], []).append(record)

        async def add_new(code: str, mine: list[dict[str, Any]]) -> None:
            links = await self._records.entries(code)  # one entry per link
            known = {record["_id"] for link in links for record in link["records"]}
            if new := [r for r in mine if r["_id"] not in known]:
                await self._records.append(code, {"records": new}, hint=len(links))

        await asyncio.gather(*(add_new(code, mine) for code, mine in by_dossier.items()))

    async def of_dossier(self, code: str) -> list[dict[str, Any]]:
        unique: dict[str, dict[str, Any]] = {}
        for entry in await self._records.entries(str(code)):
            for record in entry["records"]:
                unique.setdefault(record["_id"], record)
        return list(unique.values())

    async def remember_fetches(self, fetches: list[dict[str, Any]]) -> int:
        """Documents to fetch (`_id` "code|document_id"), kept until `forget_fetch`: a fetch cut by a restart
        is resumed. One already pending stays as it was. Returns how many are new."""
        return len(await insert_new(self._fetches, fetches))

    async def forget_fetch(self, code: str, document_id: str) -> int:
        return (await self._fetches.delete_one({"_id": f"{code}|{document_id}"})).deleted_count

    async def claim_fetches(self, fetch_ids: list[str], by: str, abandoned_before: float) -> set[str]:
        """Those of these fetches `by` may still take (`free`) made `by`'s from now; returns those `by` holds then. A
        claim another replica made meanwhile is kept: it no longer matches (not atomic on FerretDB, but the window is
        one update's, not a read of the pending fetches')."""
        if not fetch_ids:
            return set()
        await self._fetches.update_many({"_id": {"$in": fetch_ids}} | free(by, abandoned_before),
                                        {"$set": {"by": by, "since": time.time()}})
        return {fetch_id for fetch_id, fetch in (await get_many(self._fetches, fetch_ids)).items() if fetch["by"] == by}

    async def release_fetch(self, code: str, document_id: str) -> None:
        """A fetch that failed: no process's, taken up again by age (not at once, as a waiting one is)."""
        await self._fetches.update_one({"_id": f"{code}|{document_id}"}, {"$set": {"by": None, "since": time.time()}})

    async def pending_count(self) -> int:
        return await self._fetches.count_documents({})

    async def pending_fetches(self, by: str, abandoned_before: float, batch: int) -> AsyncIterator[dict[str, Any]]:
        """The fetches not done yet that `by` may take (`free`), as read, `batch` at a time: a few in the usual case
        (each lasts seconds), a flood's never all in memory at once, and none of those other replicas are making."""
        async for fetch in self._fetches.find(free(by, abandoned_before), batch_size=batch):
            yield fetch


def free(by: str, abandoned_before: float) -> dict[str, Any]:
    """The pending fetches `by` may take: its own, and those no replica has touched since `abandoned_before` (a
    waiting one's `since` is 0; a failed one is released with the time it failed)."""
    return {"$or": [{"by": by}, {"since": {"$lte": abandoned_before}}]}
