"""A dossier's stored history: new events merged in, folded, and what must be published.

Pure: no I/O. The handler loads the stored documents, calls `integrate`, writes the results,
then publishes their outbox. The outbox is written with the state, so a crash between the
write and the publish loses nothing: the redelivered batch finds it and publishes it again.
"""

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from shared.calendar import WorkingCalendar
from shared.dossier import Dossier, Folded, fold
from shared.events import DossierEvent, parse_event_json

STATUS_SOURCE = "urn:dossier-tracker:processing"
_STATUS_IDS = uuid.UUID("6f1d7c8e-3b4a-4c1e-9d2f-0a5b6c7d8e9f")


@dataclass(frozen=True)
class Outgoing:
    """A record to publish: a status change, or an event for the dead-letter topic."""

    kind: str  # "status" or "dlq"
    key: str
    value: bytes
    reason: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "value": self.value.decode(), "reason": self.reason}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Outgoing":
        return cls(doc["kind"], doc["key"], doc["value"].encode(), doc.get("reason"))


@dataclass
class StoredDossier:
    code: str
    version: int = 0  # links written so far: the next write is link number `version`
    events: list[str] = field(default_factory=list)  # CloudEvent JSON, in arrival order
    dead_lettered: list[str] = field(default_factory=list)  # "source id" of events sent to the DLQ
    outbox: list[Outgoing] = field(default_factory=list)
    status: dict[str, Any] | None = None  # what the last status event said
    waiting_since: datetime | None = None  # first event without a receipt

    def parsed(self) -> list[DossierEvent]:
        return [parse_event_json(raw) for raw in self.events]


@dataclass(frozen=True)
class Integrated:
    stored: StoredDossier
    folded: Folded
    applied: int  # new events in the fold
    waiting: int  # new events waiting for the dossier's receipt
    dead_lettered: int  # events newly rejected by the fold
    duplicates: int


def event_key(event: DossierEvent) -> str:
    return f"{event.source} {event.id}"


def status_of(dossier: Dossier | None) -> dict[str, Any] | None:
    """What a status change is about: state, due, timeliness, and the date told to the citizen."""
    if dossier is None:
        return None
    return {
        "state": dossier.state,
        "due_at": _iso(dossier.due_at),
        "timeliness": dossier.timeliness,
        "appointment_at": _iso(dossier.appointment_at),
    }


def integrate(
    stored: StoredDossier, new: list[tuple[DossierEvent, bytes]], calendar: WorkingCalendar, now: datetime
) -> Integrated:
    """Merge new (event, raw JSON) pairs into a dossier's history; fold; extend its outbox."""
    history = stored.parsed()
    known = {event_key(e) for e in history}
    events, kept = list(stored.events), 0
    for event, raw in new:
        if event_key(event) in known:
            continue
        known.add(event_key(event))
        history.append(event)
        events.append(raw.decode())
        kept += 1

    folded = fold(history, calendar)
    raw_of = {event_key(e): raw for e, raw in zip(history, events, strict=True)}
    outbox = list(stored.outbox)
    dead = list(stored.dead_lettered)
    for rejection in folded.rejected:
        key = event_key(rejection.event)
        if key not in dead:
            dead.append(key)
            outbox.append(Outgoing("dlq", stored.code, raw_of[key].encode(), rejection.reason))
    newly_dead = len(dead) - len(stored.dead_lettered)

    status = status_of(folded.dossier)
    if status is not None and status != stored.status:
        outbox.append(_status_changed(folded.dossier, stored.status, status, len(history)))

    waiting_since = stored.waiting_since if folded.dossier is None else None
    if folded.dossier is None and waiting_since is None and history:
        waiting_since = now
    result = StoredDossier(
        code=stored.code,
        version=stored.version,
        events=events,
        dead_lettered=dead,
        outbox=outbox,
        status=status if status is not None else stored.status,
        waiting_since=waiting_since,
    )
    waiting = kept if folded.dossier is None else 0
    return Integrated(
        result,
        folded,
        applied=max(0, kept - waiting - newly_dead),
        waiting=waiting,
        dead_lettered=newly_dead,
        duplicates=len(new) - kept,
    )


def give_up_waiting(stored: StoredDossier, limit_description: str) -> StoredDossier:
    """Events that waited too long for their dossier's receipt go to the dead-letter topic."""
    outbox = list(stored.outbox)
    dead = list(stored.dead_lettered)
    reason = f"no dossier.received for {stored.code} within {limit_description}"
    for event, raw in zip(stored.parsed(), stored.events, strict=True):
        if event_key(event) not in dead:
            dead.append(event_key(event))
            outbox.append(Outgoing("dlq", stored.code, raw.encode(), reason))
    return replace(stored, dead_lettered=dead, outbox=outbox, waiting_since=None)


def _status_changed(dossier: Dossier, old: dict | None, new: dict, version: int) -> Outgoing:
    last = dossier.history[-1]
    event = {
        "specversion": "1.0",
        # Deterministic: publishing the same change again after a crash repeats the same id.
        "id": str(uuid.uuid5(_STATUS_IDS, f"{dossier.code}|{version}|{orjson.dumps(new).decode()}")),
        "source": STATUS_SOURCE,
        "type": "dossier.status_changed",
        "subject": dossier.code,
        "time": last.time.isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "dossier_code": dossier.code,
            "commune_code": dossier.commune_code,
            "sector": dossier.sector,
            "procedure_code": dossier.procedure_code,
            "channel": dossier.channel,
            "online_level": dossier.online_level,
            "received_at": dossier.received_at.isoformat(),
            "ended_at": _iso(dossier.ended_at),
            "withdrawn_at": _iso(dossier.withdrawn_at),
            "missing": dossier.missing,
            "cause": {"id": last.id, "type": last.type},
            "old": old,
            "new": new,
            # For notifications only; never logged unmasked nor used as a metric label.
            "applicant": dossier.applicant.model_dump(exclude_none=True),
        },
    }
    return Outgoing("status", dossier.code, orjson.dumps(event))


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None
