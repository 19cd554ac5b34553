"""Dossier documents in MongoDB (_id = dossier code), written in one bulk write per batch.

Each document carries a version: a replica writes only over the version it read, so two replicas
(during a rebalance) never overwrite each other; the loser reloads and integrates again.
"""

from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from services.processing.history import Outgoing, StoredDossier


def _to_doc(stored: StoredDossier) -> dict[str, Any]:
    return {
        "version": stored.version + 1,
        "events": stored.events,
        "dead_lettered": stored.dead_lettered,
        "outbox": [o.to_doc() for o in stored.outbox],
        "status": stored.status,
        "waiting_since": stored.waiting_since,
    }


def _from_doc(doc: dict[str, Any]) -> StoredDossier:
    return StoredDossier(
        code=doc["_id"],
        version=doc["version"],
        events=doc["events"],
        dead_lettered=doc.get("dead_lettered", []),
        outbox=[Outgoing.from_doc(o) for o in doc.get("outbox", [])],
        status=doc.get("status"),
        waiting_since=doc.get("waiting_since"),
    )


class DossierStore:
    def __init__(self, client: AsyncMongoClient, database: str):
        self._dossiers = client[database]["dossiers"]

    async def ensure_indexes(self) -> None:
        await self._dossiers.create_index("waiting_since")

    async def load(self, codes: list[str]) -> dict[str, StoredDossier]:
        found = {doc["_id"]: _from_doc(doc) async for doc in self._dossiers.find({"_id": {"$in": codes}})}
        return {code: found.get(code) or StoredDossier(code) for code in codes}

    async def get(self, code: str) -> StoredDossier | None:
        # The code is matched as a plain string value: never a query operator.
        doc = await self._dossiers.find_one({"_id": {"$eq": str(code)}})
        return _from_doc(doc) if doc else None

    async def save(self, dossiers: list[StoredDossier]) -> set[str]:
        """Write every dossier over the version it was read at; return the codes that lost a race."""
        if not dossiers:
            return set()
        operations = [
            InsertOne({"_id": d.code, **_to_doc(d)})
            if d.version == 0
            else UpdateOne({"_id": d.code, "version": d.version}, {"$set": _to_doc(d)})
            for d in dossiers
        ]
        try:
            result = await self._dossiers.bulk_write(operations, ordered=False)
            written = result.inserted_count + result.matched_count
        except BulkWriteError as exc:
            written = exc.details.get("nInserted", 0) + exc.details.get("nMatched", 0)
        if written == len(dossiers):
            return set()
        current = await self.load([d.code for d in dossiers])
        return {d.code for d in dossiers if current[d.code].version != d.version + 1}

    async def clear_outboxes(self, published: list[StoredDossier]) -> None:
        """Empty the outboxes just published, where no other writer came in between."""
        operations = [
            UpdateOne({"_id": d.code, "version": d.version + 1}, {"$set": {"outbox": []}})
            for d in published
            if d.outbox
        ]
        if operations:
            await self._dossiers.bulk_write(operations, ordered=False)

    async def waiting_before(self, cutoff: datetime, limit: int = 500) -> list[StoredDossier]:
        cursor = self._dossiers.find({"waiting_since": {"$lt": cutoff}}).limit(limit)
        return [_from_doc(doc) async for doc in cursor]
