"""The SMS as the notifications service knows it: a message, its number and text, the statuses it
moves through, and how each reads from and writes to its MongoDB document (store.py keeps the shapes).

Pure: no I/O. The statuses are a StrEnum, so a stored status is the same string it always was.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.mongo import as_utc


class MessageStatus(StrEnum):
    """Where a message stands. `refused` is one attempt the gateway refused: a move, never where a
    message ends. Statuses only move forward (`rank`)."""

    REFUSED = "refused"
    CREATED = "created"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    OPTED_OUT = "opted_out"
    INVALID_RECIPIENT = "invalid_recipient"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def still_to_send(self) -> bool:
        return self in (MessageStatus.CREATED, MessageStatus.SENDING)

    @property
    def stops_sending(self) -> bool:
        """A move after which the message is never handed to a gateway again; it leaves the pending list."""
        return self in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.EXPIRED)

    @property
    def settled(self) -> bool:
        """Nothing moves the message further (delivered, failed, expired, opted out, no valid number)."""
        return self.rank == _RANK[MessageStatus.DELIVERED]

    @property
    def reported(self) -> bool:
        """A status a gateway's delivery report can give: the gateway has the message, or had it."""
        return self.rank >= _RANK[MessageStatus.SENT]


_RANK = {MessageStatus.REFUSED: -1, MessageStatus.CREATED: 0, MessageStatus.SENDING: 1, MessageStatus.SENT: 2,
         **dict.fromkeys((MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.EXPIRED,
                          MessageStatus.OPTED_OUT, MessageStatus.INVALID_RECIPIENT), 3)}
ATTEMPTS = (MessageStatus.SENDING, MessageStatus.REFUSED)  # the moves recorded per sending attempt
STOPS = tuple(s for s in MessageStatus if s.stops_sending)  # the moves recorded once per message


@dataclass(frozen=True)
class Message:
    """One SMS a dossier step (or an officers' alert) asks for, written before it is sent; its id
    derives from the step. `coding`, `parts` and `not_before` only for a message to send."""

    id: str
    step: str
    dossier: str  # the dossier's code; `alerts/<commune>/<window>` for the officers' alerts
    commune: str
    trigger: str
    created_at: datetime
    step_at: datetime
    provider: str | None  # the gateway that was to send it
    status: MessageStatus = MessageStatus.CREATED  # as created; its moves tell where it stands now
    coding: str | None = None  # "gsm7" or "ucs2"
    parts: int | None = None
    not_before: datetime | None = None  # the end of any quiet hours

    def stale(self, now: datetime, after: timedelta) -> bool:
        """Old news (a replay, a long outage): its step happened more than `after` ago."""
        return now - self.step_at > after

    def to_send(self, coding: str, parts: int, not_before: datetime) -> "Message":
        return replace(self, status=MessageStatus.CREATED, coding=coding, parts=parts, not_before=not_before)

    def ended(self, status: MessageStatus) -> "Message":
        """Created already ended: opted out, no valid number, expired."""
        return replace(self, status=status)

    def to_doc(self) -> dict[str, Any]:
        doc = {"_id": self.id, "step": self.step, "dossier": self.dossier, "commune": self.commune,
               "trigger": self.trigger, "created_at": self.created_at, "step_at": self.step_at,
               "provider": self.provider, "status": self.status.value}
        extra = {"coding": self.coding, "parts": self.parts, "not_before": self.not_before}
        return doc | {k: v for k, v in extra.items() if v is not None}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Message":
        return cls(doc["_id"], doc["step"], doc["dossier"], doc["commune"], doc["trigger"], as_utc(doc["created_at"]),
                   as_utc(doc["step_at"]), doc.get("provider"), MessageStatus(doc["status"]), doc.get("coding"),
                   doc.get("parts"), as_utc(doc["not_before"]) if doc.get("not_before") else None)


@dataclass(frozen=True)
class Body:
    """A message's number (E.164) and text as sent, stored apart: purged after the retention."""

    id: str  # the message's
    recipient: str
    text: str
    created_at: datetime

    def to_doc(self) -> dict[str, Any]:
        return {"_id": self.id, "recipient": self.recipient, "body": self.text, "created_at": self.created_at}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Body":
        return cls(doc["_id"], doc["recipient"], doc["body"], as_utc(doc["created_at"]))


@dataclass(frozen=True)
class Decision:
    """A message a step asks for, and its number and text if it is to be sent."""

    message: Message
    body: Body | None = None


def move_id(message_id: str, to: str, attempt: int | None = None) -> str:
    return f"{message_id}/{to}" if attempt is None else f"{message_id}/{to}/{attempt}"


@dataclass(frozen=True)
class Move:
    """A status a message reached (`<id>/sent`), or one sending attempt (`<id>/sending/<n>`) and its refusal."""

    message: str
    status: MessageStatus
    at: datetime
    attempt: int | None = None
    error: str | None = None
    provider_id: str | None = None  # the gateway's id, for `sent`

    @property
    def id(self) -> str:
        return move_id(self.message, self.status, self.attempt)

    def to_doc(self) -> dict[str, Any]:
        doc = {"_id": self.id, "message": self.message, "status": self.status.value, "at": self.at}
        if self.error is not None:
            doc["error"] = self.error
        if self.status is MessageStatus.SENT:
            doc["provider_id"] = self.provider_id
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Move":
        """A move as stored, or as the lookup's chain keeps it (its instant as text)."""
        at = doc["at"] if isinstance(doc["at"], datetime) else datetime.fromisoformat(doc["at"])
        tail = doc["_id"].removeprefix(f"{doc['message']}/").split("/")
        return cls(doc["message"], MessageStatus(doc["status"]), as_utc(at), int(tail[1]) if len(tail) > 1 else None,
                   doc.get("error"), doc.get("provider_id"))


def furthest(created: MessageStatus, moves: Iterable[Move]) -> MessageStatus:
    """The furthest status a message reached; of two settled ones, the first recorded."""
    best = created
    for move in sorted(moves, key=lambda m: m.at):
        if move.status.rank > best.rank:
            best = move.status
    return best


@dataclass(frozen=True)
class Listed:
    """A message as its dossier's chain lists it for the lookup (`GET /v1/messages`): neither number nor text."""

    id: str
    dossier: str
    trigger: str
    status: MessageStatus  # as created
    created_at: datetime
    parts: int | None = None
    coding: str | None = None

    @classmethod
    def of(cls, message: Message) -> "Listed":
        return cls(message.id, message.dossier, message.trigger, message.status, message.created_at, message.parts,
                   message.coding)

    def to_entry(self) -> dict[str, Any]:
        entry = {"_id": self.id, "dossier": self.dossier, "trigger": self.trigger, "status": self.status.value,
                 "created_at": self.created_at}
        return entry | ({"parts": self.parts, "coding": self.coding} if self.parts is not None else {})

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> "Listed":
        return cls(entry["_id"], entry["dossier"], entry["trigger"], MessageStatus(entry["status"]),
                   as_utc(datetime.fromisoformat(entry["created_at"])), entry.get("parts"), entry.get("coding"))
