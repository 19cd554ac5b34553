"""Messages in MongoDB, insert-only (FerretDB 1.24's SQLite backend scans a collection for every
update and filtered read, and only inserts stay cheap; MongoDB does the same operations fast too).

- `notifications_messages`: one document per message, written before it is sent: its id derives
  from the dossier step, so a step gives one message however often its status event is seen.
- `notifications_bodies`: the number and text of each message, apart, so that purging them after
  the retention deletes them and leaves the messages and their statuses.
- `notifications_moves`: one document per status a message reached (`<id>/sent`), or per sending
  attempt (`<id>/sending/<n>`: inserting it is the claim, a replica that loses the race does not
  send). A message's status is the furthest it reached, so it only moves forward whatever order the
  moves and delivery reports come in, and recording one twice changes nothing.

The service reads them whole at start, and keeps the messages still to send in memory.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shared.mongo import insert_new

RANK = {"refused": -1, "created": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3, "expired": 3,
        "opted_out": 3, "invalid_recipient": 3}
PENDING = ("created", "sending")


def status(message: dict[str, Any], moves: Iterable[dict[str, Any]]) -> str:
    """The furthest status a message reached; of two final ones, the first recorded."""
    best = message["status"]
    for move in sorted(moves, key=lambda m: m["at"]):
        if RANK[move["status"]] > RANK[best]:
            best = move["status"]
    return best


class MessageStore:
    def __init__(self, client: AsyncMongoClient, database: str):
        db = client[database]
        self._messages = db["notifications_messages"]
        self._bodies = db["notifications_bodies"]
        self._moves = db["notifications_moves"]

    async def ensure_indexes(self) -> None:
        """What the lookups filter on (MongoDB uses them; FerretDB's SQLite backend keeps but scans)."""
        await self._messages.create_index("dossier")
        await self._moves.create_index("message")

    async def create(self, messages: list[dict[str, Any]], bodies: list[dict[str, Any]]) -> set[str]:
        """Store the messages not stored yet (a redelivered status event asks for them again);
        returns the ids of those stored now."""
        await insert_new(self._bodies, bodies)  # first: a message is never there without its text
        return await insert_new(self._messages, messages)

    async def record(self, message_id: str, to: str, at: datetime, attempt: int | None = None, **fields: Any) -> bool:
        """Record that a message reached `to` (or attempt n of sending); False if already recorded."""
        key = f"{message_id}/{to}" if attempt is None else f"{message_id}/{to}/{attempt}"
        try:
            await self._moves.insert_one({"_id": key, "message": message_id, "status": to, "at": at, **fields})
        except DuplicateKeyError:
            return False
        return True

    async def everything(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, list[dict]]]:
        """Every message, every body still kept, every move by message: one pass over each."""
        messages = await self._messages.find({}, batch_size=5000).to_list()
        bodies = {b["_id"]: b async for b in self._bodies.find({}, batch_size=5000)}
        moves: dict[str, list[dict[str, Any]]] = {}
        async for move in self._moves.find({}, batch_size=5000):
            moves.setdefault(move["message"], []).append(move)
        return messages, bodies, moves

    async def of_dossier(self, code: str) -> list[tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]]:
        messages = await self._messages.find({"dossier": str(code)}).sort("created_at", 1).to_list()
        ids = [m["_id"] for m in messages]
        bodies = {b["_id"]: b async for b in self._bodies.find({"_id": {"$in": ids}})}
        moves: dict[str, list[dict[str, Any]]] = {}
        async for move in self._moves.find({"message": {"$in": ids}}):
            moves.setdefault(move["message"], []).append(move)
        return [(m, bodies.get(m["_id"]), moves.get(m["_id"], [])) for m in messages]

    async def recipient_of(self, code: str) -> str | None:
        for message, body, _ in await self.of_dossier(code):
            if body and body.get("recipient"):
                return body["recipient"]
        return None

    async def purge(self, before: datetime, pending: set[str]) -> int:
        """Delete the numbers and texts of messages created before `before`, except those still to send."""
        old = [b["_id"] async for b in self._bodies.find({"created_at": {"$lt": before}}, projection={"_id": True})]
        gone = [i for i in old if i not in pending]
        if not gone:
            return 0
        result = await self._bodies.delete_many({"_id": {"$in": gone}})
        return result.deleted_count
