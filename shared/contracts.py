"""What travels on each topic (docs/contract.md §2), one pydantic model per kind of record.

- `dossier-events`: the one-stop-shop system's events, `shared.events.DossierEvent`, and the PAKN
  system's (`shared.events.FeedbackEvent`, key = the PAKN's code): `shared.events.AnyEvent`.
- `dossier-status`: `StatusRecord`, told apart by `type` and `source`:
  - `StatusChanged`: processing's, when a dossier's state, due, timeliness, appointment or counted
    facts change; `cause` is the event that changed them. It carries the dossier's timeline (what
    the figures count, from each instant it changed) and `events`, the number of events folded: a
    consumer keeps, per dossier, the status with the most events;
  - `ClockChanged`: the metrics service's, when time alone moves an open dossier to due soon or
    overdue (`cause.type` "clock"); no timeline (time changes no fact), no applicant;
  - `SignatureVerified`: the signature service's verdict on a result's digital signature;
  - `FeedbackChanged`: processing's, when a PAKN's steps change (docs/domain.md §9): where it stands,
    and its steps, which the metrics service folds as of a report's cut (shared/feedback.py). Its
    `subject` is the PAKN's code. Consumers with nothing to do for a PAKN skip it.
- `<topic>.dlq.<group>` and `dossier-events.dlq`: the original record, with `DeadLetter`'s headers.

Writers build these models and serialize them once (`to_bytes`); consumers parse a record once, at
the edge (`shared.consumer_app`). A dossier's facts are shared.facts' dataclasses, here as everywhere else:
`StatusData` is a `Received` with its `Timeline`, which the metrics service counts as parsed.
`python -m shared.contracts` writes their JSON Schemas into docs/schemas/.
"""

import hashlib
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict from Python 3.12 on

from shared.calendar import WorkingCalendar
from shared.dossier import Dossier, Step
from shared.feedback import Step as FeedbackStep
from shared.events import AnyEvent, Applicant, DossierEvent, FeedbackEvent
from shared.facts import RECEIVED, TIMELINE, OpenState, Received, State, Timeline, Timeliness

STATUS_CHANGED = "dossier.status_changed"
FEEDBACK_CHANGED = "feedback.status_changed"
SIGNATURE_VERIFIED = "dossier.signature_verified"
PROCESSING_SOURCE = "urn:dossier-tracker:processing"
METRICS_SOURCE = "urn:dossier-tracker:metrics"
SIGNATURE_SOURCE = "urn:dossier-tracker:signature"
_IDS = uuid.UUID("6f1d7c8e-3b4a-4c1e-9d2f-0a5b6c7d8e9f")


def record_id(*parts: object) -> str:
    """Deterministic: publishing the same change again after a crash repeats the same id. The UUID of version 5
    `uuid.uuid5(_IDS, name)` makes, written without its objects (a record's CPU is mostly such ids and encoding)."""
    digest = bytearray(hashlib.sha1(_IDS.bytes + "|".join(map(str, parts)).encode()).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x50  # version 5
    digest[8] = digest[8] & 0x3F | 0x80  # RFC 4122's variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Status(_Model):
    """Where a dossier stands: `open_state` as of the record's `time`."""

    state: State
    due_at: AwareDatetime | None
    timeliness: Timeliness | None
    appointment_at: AwareDatetime | None  # the last date told to the citizen (receipt, apology)
    open_state: OpenState | None


class Cause(_Model):
    id: str | None  # the event's id; None for the clock
    type: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusData(Received):
    """Processing's record of a change: what the receipt said, where the dossier stands, and its timeline."""

    ended_at: AwareDatetime | None
    withdrawn_at: AwareDatetime | None
    missing: str | None  # what a supplement request asks for
    cause: Cause
    old: Status | None  # None for the dossier's first status
    new: Status
    events: int  # events folded: a status with fewer is older
    timeline: Timeline  # what the figures count, from each instant it changed (docs/domain.md §5)
    # v1.1: of the events folded, those whose arrival at intake is known, and those that arrived
    # within 15 minutes of their time (the status sync proxy, docs/domain.md §6).
    arrivals: int = 0
    arrivals_synced: int = 0
    applicant: Applicant  # for the SMS only: never logged unmasked, never a metric label


STATUS_DATA: TypeAdapter[StatusData] = TypeAdapter(StatusData)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockData(Received):
    cause: Cause
    old: Status
    new: Status
    events: int


def received_of(data: Received) -> dict[str, Any]:
    """The `Received` part of a record, as keyword arguments for another record that carries it."""
    return dict(zip(_RECEIVED, _RECEIVED_OF(data)))


_RECEIVED = tuple(f.name for f in fields(Received))
_RECEIVED_OF = attrgetter(*_RECEIVED)


class SignatureCheck(_Model):
    field: str | None
    signer: str | None
    serial: str | None
    issuer: str | None
    signing_time: AwareDatetime | None
    timestamped: bool
    revocation_data: bool
    algorithm: str | None
    intact: bool
    trusted: bool
    verdict: Literal["valid", "invalid", "indeterminate"]
    reasons: list[str]


class SignatureData(_Model):
    dossier_code: str
    commune_code: str | None  # None when the signature service had not seen the dossier's receipt
    sector: str | None
    document_id: str
    verdict: Literal["valid", "invalid", "indeterminate"]
    reasons: list[str]
    document_sha256: str
    signatures: list[SignatureCheck]
    # v1.1: when the one-stop-shop system said the document was signed (its dossier.signed event), if
    # it did: a report as of an instant counts the result signed from then (docs/domain.md §6).
    signed_at: AwareDatetime | None = None


class _Envelope(_Model):
    """CloudEvents 1.0, structured mode; `subject` is the dossier code (the record's key)."""

    specversion: Literal["1.0"] = "1.0"
    id: str
    subject: str
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


class StatusChanged(_Envelope):
    type: Literal["dossier.status_changed"] = STATUS_CHANGED
    source: Literal["urn:dossier-tracker:processing"] = PROCESSING_SOURCE
    data: StatusData


class ClockChanged(_Envelope):
    type: Literal["dossier.status_changed"] = STATUS_CHANGED
    source: Literal["urn:dossier-tracker:metrics"] = METRICS_SOURCE
    data: ClockData


class SignatureVerified(_Envelope):
    type: Literal["dossier.signature_verified"] = SIGNATURE_VERIFIED
    source: Literal["urn:dossier-tracker:signature"] = SIGNATURE_SOURCE
    data: SignatureData


class FeedbackData(_Model):
    """Where a PAKN stands after a change (docs/domain.md §9), and the steps it is folded from."""

    feedback_code: str
    commune_code: str | None  # of the unit holding it; None: a unit the units file does not know
    receiving_commune: str
    unit: str  # the unit holding it
    dossier_code: str | None  # the dossier it names: a complaint (5.4)
    state: Literal["open", "awaiting_supplement", "rejected", "answered", "published"]
    received_at: AwareDatetime
    clock_from: AwareDatetime  # the receipt or the latest forwarding
    due_at: AwareDatetime | None  # the limit in force: the answer's, once answered the publication's; None once closed
    cause: Cause
    events: int  # events folded: a record with fewer is older
    steps: list[FeedbackStep]  # what applied, in time order


class FeedbackChanged(_Envelope):
    type: Literal["feedback.status_changed"] = FEEDBACK_CHANGED
    source: Literal["urn:dossier-tracker:processing"] = PROCESSING_SOURCE
    data: FeedbackData


# A record of dossier-status by its `type`, then, for a status change, by its `source` (processing's or the
# clock's). Fields, not a function: pydantic then reads the JSON as it validates it (a function needs the whole
# record made into Python values first: 47 against 29 µs a status record, measured by hand on 2026-12-06).
StatusRecord = Annotated[
    Annotated[StatusChanged | ClockChanged, Field(discriminator="source")] | SignatureVerified | FeedbackChanged,
    Field(discriminator="type"),
]


class DeadLetter(_Model):
    """A record a consumer could not handle, as a dead-letter topic keeps it: the value and key are
    the original bytes; these are its headers (`dlq-reason`, `dlq-origin-topic`, …). Processing's
    `dossier-events.dlq` (events the fold rejects) carries the reason and the origin too."""

    reason: str
    origin_topic: str | None = None
    origin_partition: int | None = None
    origin_offset: int | None = None
    group: str | None = None
    error: str | None = None  # the exception's type, "undecodable", or "inapplicable"

    def headers(self) -> dict[str, str]:
        return {f"dlq-{name.replace('_', '-')}": str(value) for name, value in self.model_dump().items()
                if value is not None}

    @classmethod
    def from_headers(cls, headers: list[tuple[str, bytes]]) -> "DeadLetter":
        found = {name: value.decode(errors="replace") for name, value in headers}
        return cls.model_validate({name: found.get(f"dlq-{name.replace('_', '-')}") for name in cls.model_fields})


def dead_letter_topic(topic: str, group: str) -> str:
    return f"{topic}.dlq.{group}"


# -- building processing's and the clock's records ----------------------------------------------------

def status_of(dossier: Dossier, calendar: WorkingCalendar, at: datetime | None = None) -> Status:
    """Where a dossier stands at `at` (default: its last event)."""
    at = at or (dossier.history[-1].time if dossier.history else dossier.received_at)
    return Status(state=dossier.state, due_at=dossier.due_at, timeliness=dossier.timeliness,
                  appointment_at=dossier.appointment_at, open_state=dossier.open_state(at, calendar))


def changed(old: Status | None, dossier: Dossier) -> bool:
    """Whether the dossier stands otherwise than `old` told: a change worth announcing (its `status_of`);
    `open_state` alone moves with time and is the clock's to announce."""
    return old is None or (old.state, old.due_at, old.timeliness, old.appointment_at) != (
        dossier.state, dossier.due_at, dossier.timeliness, dossier.appointment_at)


def status_changed(dossier: Dossier, old: Status | None, new: Status, timeline: Timeline, events: int,
                   cause: Step | None = None) -> StatusChanged:
    """The change `cause` (default: the dossier's last event) made, as its model (benches and tests; processing
    writes the bytes alone: `StatusWriter`)."""
    return StatusChanged.model_validate_json(StatusWriter(TIMELINE.dump_json(timeline), events).record(
        dossier, old, new, cause))


class _Cause(TypedDict):
    id: str | None
    type: str


class _Change(TypedDict):
    """StatusData's fields between the receipt's and the timeline: what differs from one record to the next."""

    ended_at: AwareDatetime | None
    withdrawn_at: AwareDatetime | None
    missing: str | None
    cause: _Cause
    old: Status | None
    new: Status
    events: int


class _Head(TypedDict):
    """StatusChanged's fields before its data, in their order."""

    specversion: str
    id: str
    subject: str
    time: AwareDatetime
    datacontenttype: str
    type: str
    source: str


_CHANGE, _HEAD = TypeAdapter(_Change), TypeAdapter(_Head)
_UNWRITTEN = object()  # is no receipt nor applicant


class StatusWriter:
    """The bytes on Kafka of one dossier's status records in a batch: `timeline_json` (its timeline as
    `TIMELINE.dump_json` writes it) and `events` are the dossier's whole, also in a record of an earlier step.

    A record is pydantic's JSON of the whole `StatusChanged`, byte for byte (a property test,
    tests/unit/test_contracts.py), made of parts that pydantic writes: the receipt's values, the applicant
    and the timeline, which a batch's records share, once; the rest for each. Nothing is built to be
    validated: the values are the fold's. The record's id is made of its data's bytes (every fact it carries):
    publishing the same change again after a crash repeats the same id."""

    def __init__(self, timeline_json: bytes, events: int):
        self._timeline, self._events = timeline_json, events
        self._received: object = _UNWRITTEN  # the receipt and the applicant last written, and their JSON
        self._applicant: object = _UNWRITTEN
        self._received_json = self._applicant_json = b""

    def record(self, dossier: Dossier, old: Status | None, new: Status, cause: Step | None = None) -> bytes:
        """The change `cause` (default: the dossier's last event) made."""
        last = cause or dossier.history[-1]
        if dossier.received is not self._received:
            self._received, self._received_json = dossier.received, RECEIVED.dump_json(dossier.received)[:-1]
        if dossier.applicant is not self._applicant:
            self._applicant, self._applicant_json = dossier.applicant, dossier.applicant.model_dump_json().encode()
        change = _CHANGE.dump_json({
            "ended_at": dossier.ended_at, "withdrawn_at": dossier.withdrawn_at, "missing": dossier.missing,
            "cause": {"id": last.id, "type": last.type}, "old": old, "new": new, "events": self._events})
        data = b"".join((self._received_json, b",", change[1:-1], b',"timeline":', self._timeline,
                         b',"arrivals":%d,"arrivals_synced":%d,"applicant":' % (dossier.arrivals, dossier.arrivals_synced),
                         self._applicant_json, b"}"))
        head = _HEAD.dump_json({
            "specversion": "1.0", "id": record_id(dossier.code, self._events, last.id, hashlib.sha256(data).hexdigest()),
            "subject": dossier.code, "time": last.time, "datacontenttype": "application/json", "type": STATUS_CHANGED,
            "source": PROCESSING_SOURCE})
        return head[:-1] + b',"data":' + data + b"}"


def clock_changed(received: Received, status: Status, at: datetime, to: OpenState, events: int) -> ClockChanged:
    """Time alone moved an open dossier to `to` at instant `at`."""
    new = status.model_copy(update={"open_state": to})
    data = ClockData(**received_of(received), cause=Cause(id=None, type="clock"), old=status, new=new, events=events)
    return ClockChanged(id=clock_record_id(received.dossier_code, status.due_at, to), subject=received.dossier_code,
                        time=at, data=data)


def clock_record_id(dossier_code: str, due_at: datetime | None, to: OpenState) -> str:
    """The id of the clock record that moves a dossier with this due to `to` (the same after a restart)."""
    return record_id(dossier_code, "clock", due_at.isoformat() if due_at else None, to)


CONTRACTS: dict[str, Any] = {
    "dossier-event": DossierEvent,
    "feedback-event": FeedbackEvent,
    "event": AnyEvent,
    "status-record": StatusRecord,
    "status-changed": StatusChanged,
    "clock-changed": ClockChanged,
    "signature-verified": SignatureVerified,
    "feedback-changed": FeedbackChanged,
    "dead-letter-headers": DeadLetter,
}
SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def json_schemas() -> dict[str, bytes]:
    """Each contract's JSON Schema, as docs/schemas/ ships them."""
    return {f"{name}.schema.json": orjson.dumps(TypeAdapter(model).json_schema(), option=orjson.OPT_INDENT_2
                                               | orjson.OPT_SORT_KEYS) + b"\n"
            for name, model in CONTRACTS.items()}


if __name__ == "__main__":
    SCHEMAS.mkdir(parents=True, exist_ok=True)
    for name, text in json_schemas().items():
        (SCHEMAS / name).write_bytes(text)
        print(f"wrote docs/schemas/{name}")
