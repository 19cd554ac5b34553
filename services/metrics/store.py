"""What the metrics service keeps in MongoDB: processing's status events as they came, insert-only.

`metrics_status` holds the status events that carry a timeline, a consumed batch per document, as
one compact JSON blob without the applicant (the figures need no personal data): FerretDB's SQLite
backend reads a document field by field, ~2,000 small documents a second, but a blob of a thousand
statuses as fast as the bytes come. A document's `_id` is the SHA-256 of its blob, so a batch
stored again after a crash is stored once; a batch redelivered with other bounds stores some
statuses twice, which the figures ignore (a status with no more events than the one kept).
`metrics_clock_sent` holds the id of every clock event published. Both are read whole at start.
(On MongoDB a document per dossier, replaced in place, would be smaller; FerretDB's updates scan
the collection, so the layout keeps to inserts, which both do fast.)
"""

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
from bson import Binary
from pymongo import AsyncMongoClient

from services.metrics.figures import Counted
from shared.calendar import WorkingCalendar
from shared.contracts import SignatureData, SignatureVerified, StatusChanged
from shared.dossier import Facts
from shared.mongo import insert_new

# What the figures read of a status record (shared.contracts.StatusData); the rest stays on the topic.
KEPT = {"dossier_code", "commune_code", "sector", "procedure_code", "channel", "online_level", "received_at",
        "events", "timeline", "arrivals", "arrivals_synced"}
CHUNK = 1000  # statuses per document: ~1.5 MB, far below MongoDB's 16 MB
_FACTS = ("state", "timeliness", "payment_method", "digitized", "rating", "apologies_compliant",
          "apologies_non_compliant")
_SINCE_V1_1 = ("unit",)  # absent from what an older version stored


def kept(status: StatusChanged) -> dict[str, Any]:
    """What is stored of a status record: JSON, without the applicant (the figures need no personal data)."""
    doc = status.data.model_dump(mode="json", include=KEPT)
    doc["new"] = {"appointment_at": doc_instant(status.data.new.appointment_at)}
    return doc


def doc_instant(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def from_status(status: StatusChanged, calendar: WorkingCalendar) -> Counted:
    data = status.data
    return Counted(data.dossier_code, data.procedure_code, data.events, data.facts(calendar),
                   data.new.appointment_at, data.arrivals, data.arrivals_synced)


def from_kept(doc: dict[str, Any], calendar: WorkingCalendar) -> Counted:
    """A stored status as the figures take it."""
    received_at = datetime.fromisoformat(doc["received_at"])
    common = {"commune_code": doc["commune_code"], "sector": doc["sector"], "channel": doc["channel"],
              "online_level": doc["online_level"], "received_at": received_at,
              "received_date": calendar.local(received_at).date()}
    timeline = tuple(Facts(since=datetime.fromisoformat(f["since"]),
                           due_at=datetime.fromisoformat(f["due_at"]) if f["due_at"] else None,
                           **common, **{k: f[k] for k in _FACTS}, **{k: f.get(k) for k in _SINCE_V1_1})
                     for f in doc["timeline"])
    appointment = (doc.get("new") or {}).get("appointment_at")
    return Counted(doc["dossier_code"], doc["procedure_code"], doc["events"], timeline,
                   datetime.fromisoformat(appointment) if appointment else None, doc.get("arrivals", 0),
                   doc.get("arrivals_synced", 0))


class FiguresStore:
    def __init__(self, client: AsyncMongoClient, database: str):
        db = client[database]
        self._status = db["metrics_status"]
        self._clock_sent = db["metrics_clock_sent"]
        self._signatures = db["metrics_signatures"]

    async def save(self, statuses: list[dict[str, Any]]) -> None:
        """Kept statuses (`kept`), a blob per CHUNK."""
        docs = []
        for i in range(0, len(statuses), CHUNK):
            blob = orjson.dumps(statuses[i : i + CHUNK])
            docs.append({"_id": hashlib.sha256(blob).hexdigest(), "statuses": Binary(blob)})
        await insert_new(self._status, docs)

    async def save_signatures(self, events: list[SignatureVerified]) -> None:
        """`dossier.signature_verified` records, as (time, data): one document each, insert-only."""
        await insert_new(self._signatures, [{"_id": e.id, "time": e.time.isoformat(),
                                             "data": e.data.model_dump(mode="json")} for e in events])

    async def signatures(self) -> AsyncIterator[tuple[SignatureData, datetime]]:
        async for doc in self._signatures.find({}, batch_size=5000):
            yield SignatureData.model_validate(doc["data"]), datetime.fromisoformat(doc["time"])

    async def mark_sent(self, ids: list[str]) -> None:
        await insert_new(self._clock_sent, [{"_id": i} for i in ids])

    async def statuses(self, commune_code: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every stored status (of one commune if given), a batch's latest first: applying them in
        this order, most of the older ones are skipped at once."""
        async for doc in self._status.find({}, batch_size=20):
            for status in reversed(orjson.loads(doc["statuses"])):
                if commune_code is None or status["commune_code"] == commune_code:
                    yield status

    async def sent(self) -> set[str]:
        return {doc["_id"] async for doc in self._clock_sent.find({}, batch_size=10000)}

    async def drop(self) -> None:
        await self._status.drop()
        await self._clock_sent.drop()
        await self._signatures.drop()
