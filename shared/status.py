"""The `dossier.status_changed` event on `dossier-status` (CONTRACT §2), written and read in one place.

Processing publishes one when a dossier's state, due, timeliness, appointment or counted facts
change (`cause` is the event that changed them); the metrics service publishes one when time alone
moves an open dossier to due soon or overdue (`cause.type` is "clock"). `old` and `new` say where
the dossier stood: `open_state` as of the event's `time`.

Processing's events carry the dossier's timeline (shared.dossier.Facts, one per change of what the
figures count) and `events`, the number of events folded: the metrics service keeps, per dossier,
the timeline of the status event with the most events, and reports as of any instant from it.
Clock events carry no timeline (time changes no fact) and no applicant.
"""

import uuid
from datetime import datetime
from typing import Any

import orjson

from shared.calendar import WorkingCalendar
from shared.dossier import Dossier, Facts, OpenState, Step, Timeline

TYPE = "dossier.status_changed"
PROCESSING_SOURCE = "urn:dossier-tracker:processing"
METRICS_SOURCE = "urn:dossier-tracker:metrics"
_IDS = uuid.UUID("6f1d7c8e-3b4a-4c1e-9d2f-0a5b6c7d8e9f")


def status_id(*parts: object) -> str:
    """Deterministic: publishing the same change again after a crash repeats the same id."""
    return str(uuid.uuid5(_IDS, "|".join(str(p) for p in parts)))


def status_of(dossier: Dossier, calendar: WorkingCalendar, at: datetime | None = None) -> dict[str, Any]:
    """Where a dossier stands at `at` (default: its last event): state, due, timeliness, date told
    to the citizen, open state."""
    at = at or (dossier.history[-1].time if dossier.history else dossier.received_at)
    return {
        "state": dossier.state,
        "due_at": iso(dossier.due_at),
        "timeliness": dossier.timeliness,
        "appointment_at": iso(dossier.appointment_at),
        "open_state": dossier.open_state(at, calendar),
    }


def changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """A change worth announcing; `open_state` alone moves with time and is the clock's to announce."""
    return old is None or any(old.get(k) != new[k] for k in ("state", "due_at", "timeliness", "appointment_at"))


def processing_event(
    dossier: Dossier, old: dict[str, Any] | None, new: dict[str, Any], timeline: Timeline, events: int,
    cause: Step | None = None,
) -> dict[str, Any]:
    """The change `cause` (default: the dossier's last event) made; `timeline` and `events` are the
    dossier's whole, also when the change is an earlier step of a batch."""
    last = cause or dossier.history[-1]
    data = {
        "dossier_code": dossier.code,
        "commune_code": dossier.commune_code,
        "sector": dossier.sector,
        "procedure_code": dossier.procedure_code,
        "channel": dossier.channel,
        "online_level": dossier.online_level,
        "received_at": dossier.received_at.isoformat(),
        "ended_at": iso(dossier.ended_at),
        "withdrawn_at": iso(dossier.withdrawn_at),
        "missing": dossier.missing,
        "cause": {"id": last.id, "type": last.type},
        "old": old,
        "new": new,
        "events": events,
        "timeline": timeline_to_json(timeline),
        # For notifications only; never logged unmasked nor used as a metric label.
        "applicant": dossier.applicant.model_dump(exclude_none=True),
    }
    change = status_id(dossier.code, events, last.id, orjson.dumps(new).decode(), orjson.dumps(data["timeline"]).decode())
    return _envelope(change, PROCESSING_SOURCE, dossier.code, last.time, data)


def clock_event(
    code: str, info: dict[str, Any], status: dict[str, Any], at: datetime, to: OpenState, events: int
) -> dict[str, Any]:
    """Time alone moved an open dossier to `to` at instant `at`; `info` holds its dossier fields."""
    new = {**status, "open_state": to}
    data = {
        **info,
        "dossier_code": code,
        "ended_at": None,
        "withdrawn_at": None,
        "missing": None,
        "cause": {"id": None, "type": "clock"},
        "old": status,
        "new": new,
        "events": events,
    }
    return _envelope(status_id(code, "clock", status["due_at"], to), METRICS_SOURCE, code, at, data)


def _envelope(id_: str, source: str, code: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id_,
        "source": source,
        "type": TYPE,
        "subject": code,
        "time": at.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def timeline_to_json(timeline: Timeline) -> list[dict[str, Any]]:
    return [
        {
            "since": f.since.isoformat(),
            "state": f.state,
            "due_at": iso(f.due_at),
            "timeliness": f.timeliness,
            "payment_method": f.payment_method,
            "digitized": f.digitized,
            "rating": f.rating,
            "apologies_compliant": f.apologies_compliant,
            "apologies_non_compliant": f.apologies_non_compliant,
        }
        for f in timeline
    ]


def timeline_from_json(data: dict[str, Any], calendar: WorkingCalendar) -> Timeline:
    """The timeline of a processing status event's `data`, with the dossier's fields it shares."""
    received_at = datetime.fromisoformat(data["received_at"])
    common = {
        "commune_code": data["commune_code"],
        "sector": data["sector"],
        "channel": data["channel"],
        "online_level": data["online_level"],
        "received_at": received_at,
        "received_date": calendar.local(received_at).date(),
    }
    return tuple(
        Facts(
            since=datetime.fromisoformat(f["since"]),
            due_at=datetime.fromisoformat(f["due_at"]) if f["due_at"] else None,
            **common,
            **{k: f[k] for k in _FACT_FIELDS},
        )
        for f in data["timeline"]
    )


_FACT_FIELDS = ("state", "timeliness", "payment_method", "digitized", "rating", "apologies_compliant",
                "apologies_non_compliant")


def iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None

