"""Messages in MongoDB: one document per message, written before it is sent, whose status only
moves forward (created → sending → sent → delivered | failed | expired; invalid_recipient and
opted_out at creation). `_id` derives from the dossier step, so a step gives one message however
often its status event is seen. Every move is a conditional update on the expected statuses, which
makes delivery reports idempotent and replicas safe. (On FerretDB 1.24 an update scans the
collection: fine at a commune centre's few hundred messages a day; MongoDB indexes it.)
"""

from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument

from shared.mongo import insert_new

# Where each status may come from.
MOVES = {
    "sending": ("created", "sending"),
    "sent": ("created", "sending"),
    "delivered": ("created", "sending", "sent"),
    "failed": ("created", "sending", "sent"),
    "expired": ("created", "sending"),
}
PENDING = ("created", "sending")


class MessageStore:
    def __init__(self, client: AsyncMongoClient, database: str):
        self._messages = client[database]["notifications_messages"]

    async def create(self, docs: list[dict[str, Any]]) -> None:
        await insert_new(self._messages, docs)

    async def move(self, message_id: str, to: str, at: datetime, **fields: Any) -> dict[str, Any] | None:
        """Move a message forward to `to`: the message as it was, or None if it is not in a status
        `to` may come from."""
        return await self._messages.find_one_and_update(
            {"_id": str(message_id), "status": {"$in": list(MOVES[to])}},
            {"$set": {"status": to, **fields}, "$push": {"history": {"status": to, "at": at}}},
            return_document=ReturnDocument.BEFORE,
        )

    async def postpone(self, message_id: str, until: datetime, **fields: Any) -> None:
        await self._messages.update_one({"_id": message_id, "status": {"$in": list(PENDING)}},
                                        {"$set": {"not_before": until, **fields}})

    async def due(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        query = {"status": {"$in": list(PENDING)}, "not_before": {"$lte": now}}
        return await self._messages.find(query).sort("not_before", 1).limit(limit).to_list()

    async def sent_since(self, recipient: str, since: datetime) -> int:
        return await self._messages.count_documents({"recipient": recipient, "sent_at": {"$gte": since}})

    async def of_dossier(self, code: str) -> list[dict[str, Any]]:
        return await self._messages.find({"dossier": str(code)}).sort("created_at", 1).to_list()

    async def recipient_of(self, code: str) -> str | None:
        doc = await self._messages.find_one({"dossier": str(code), "recipient": {"$type": "string"}})
        return doc["recipient"] if doc else None

    async def oldest_pending(self) -> datetime | None:
        doc = await self._messages.find_one({"status": {"$in": list(PENDING)}}, sort=[("created_at", 1)])
        return doc["created_at"] if doc else None

    async def purge(self, before: datetime) -> int:
        """Forget bodies and numbers of messages created before `before` and no longer pending;
        their statuses stay."""
        query = {"created_at": {"$lt": before}, "purged": {"$ne": True}, "status": {"$nin": list(PENDING)}}
        result = await self._messages.update_many(query,
                                                  {"$unset": {"body": "", "recipient": ""}, "$set": {"purged": True}})
        return result.modified_count
