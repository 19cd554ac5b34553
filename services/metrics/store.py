"""What the metrics service keeps in MongoDB: processing's status events as they came, insert-only.

`metrics_status` holds one document per status event carrying a timeline (`_id` = dossier code @
number of events), without the applicant: the figures need no personal data. `metrics_clock_sent`
holds the id of every clock event published. Both are read whole at start, in one pass, which
is what FerretDB's SQLite backend does fast (its filtered reads and updates scan the collection).
"""

from collections.abc import AsyncIterator
from typing import Any

from pymongo import AsyncMongoClient

from shared.mongo import insert_new

# What the figures read of a status event's data (shared.status); the rest stays on the topic.
KEPT = ("dossier_code", "commune_code", "sector", "procedure_code", "channel", "online_level", "received_at",
        "events", "timeline")


def kept(data: dict[str, Any]) -> dict[str, Any]:
    doc = {k: data[k] for k in KEPT}
    doc["new"] = {"appointment_at": (data.get("new") or {}).get("appointment_at")}
    return doc


class FiguresStore:
    def __init__(self, client: AsyncMongoClient, database: str):
        db = client[database]
        self._status = db["metrics_status"]
        self._clock_sent = db["metrics_clock_sent"]

    async def save(self, datas: list[dict[str, Any]]) -> None:
        await insert_new(self._status, [{"_id": f"{d['dossier_code']}@{d['events']}", **kept(d)} for d in datas])

    async def mark_sent(self, ids: list[str]) -> None:
        await insert_new(self._clock_sent, [{"_id": i} for i in ids])

    async def statuses(self, commune_code: str | None = None) -> AsyncIterator[dict[str, Any]]:
        query = {} if commune_code is None else {"commune_code": str(commune_code)}
        async for doc in self._status.find(query, projection={"_id": False}, batch_size=5000):
            yield doc

    async def sent(self) -> set[str]:
        return {doc["_id"] async for doc in self._clock_sent.find({}, batch_size=10000)}

    async def drop(self) -> None:
        await self._status.drop()
        await self._clock_sent.drop()
