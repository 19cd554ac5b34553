"""A dossier's stored history: new events merged in, folded, and what must be published.

Pure: no I/O. The handler loads the stored documents, calls `integrate`, writes the results,
then publishes their outbox. The outbox is written with the state, so a crash between the
write and the publish loses nothing: the redelivered batch finds it and publishes it again.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from shared.calendar import WorkingCalendar
from shared.dossier import FOREIGN_SOURCE, Dossier, Folded, fold
from shared.events import Applicant, DossierEvent, parse_event_json
from shared.lookup import last4
from shared.privacy import mask_phone
from shared.contracts import Status, StatusWriter, changed, status_of
from shared.facts import TIMELINE


@dataclass(frozen=True)
class Outgoing:
    """A record to publish: a status change, or an event for the dead-letter topic."""

    kind: str  # "status" or "dlq"
    key: str
    value: bytes
    reason: str | None = None

    def to_doc(self, records_as_json: bool = False) -> dict[str, Any]:
        """As a link keeps it (shared.mongo.pack): its value as text, or, `records_as_json`, a status record (JSON
        of ours) as JSON in the link's, neither escaped nor read twice (3.4 against 0.6 µs an event, 10 % fewer
        bytes; DOSSIER_PROCESSING_LINK_RECORDS_AS_JSON). An event for the dead-letter topic is always its text:
        its bytes as they came."""
        json = records_as_json and self.kind == "status"
        return {"kind": self.kind, "key": self.key, "value": orjson.Fragment(self.value) if json else self.value.decode(),
                "reason": self.reason}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Outgoing":
        """Read back, in either form: a status record kept as JSON is written again as orjson writes it,
        pydantic's bytes (tests/unit/test_contracts.py)."""
        value = doc["value"]
        return cls(doc["kind"], doc["key"], value.encode() if isinstance(value, str) else orjson.dumps(value),
                   doc.get("reason"))


@dataclass
class StoredDossier:
    code: str
    version: int = 0  # links written so far: the next write is link number `version`
    events: list[str] = field(default_factory=list)  # CloudEvent JSON, in arrival order
    dead_lettered: list[str] = field(default_factory=list)  # "source id" of events sent to the DLQ
    # Each of those, with its reason (`rejection`): what a sender reads back (TraCuuHoSo, docs/dvcqg.md).
    rejections: list[dict[str, str]] = field(default_factory=list)
    outbox: list[Outgoing] = field(default_factory=list)
    status: dict[str, Any] | None = None  # what the last status event said (shared.contracts.Status, as JSON)
    timeline: list[dict[str, Any]] | None = None  # the timeline it carried, as JSON
    waiting_since: datetime | None = None  # first event without a receipt
    # The dossier as its lookup shows it (docs/contract.md §6 but the open state, which moves with time).
    view: dict[str, Any] | None = field(default=None, compare=False)
    phone4: str | None = field(default=None, compare=False)  # the citizens' lookup factor, never shown
    # Read from a summary written before histories (services/processing/store.py): write one at the next write.
    history_missing: bool = field(default=False, compare=False)
    # Read back ahead of its summary (a replica stopped between its link and its summary): its view may be older
    # than its events (links keep none). `integrate` folds it even for a batch that adds nothing, and the
    # processor writes its summary (services/processing/store.py `published_as`).
    summary_behind: bool = field(default=False, compare=False)

    # The events parsed, kept beside their JSON while the dossier is cached: integrating a batch
    # parses only its new events.
    _parsed: list[DossierEvent] | None = field(default=None, compare=False, repr=False)

    def parsed(self) -> list[DossierEvent]:
        if self._parsed is None or len(self._parsed) != len(self.events):
            self._parsed = [parse_event_json(raw, stored=True) for raw in self.events]
        return self._parsed


@dataclass(frozen=True)
class Integrated:
    stored: StoredDossier
    folded: Folded | None  # None when the batch added no event to a dossier whose view was current: not folded
    applied: int  # new events in the fold
    waiting: int  # new events waiting for the dossier's receipt
    dead_lettered: int  # events newly rejected by the fold
    duplicates: int
    foreign: int = 0  # of those, events from a source that did not receive the dossier (docs/security.md)
    over_cap: int = 0  # of those, events past the dossier's cap, never stored


def event_key(event: DossierEvent) -> str:
    return f"{event.source} {event.id}"


REASON_CHARS = 500  # a stored reason's length at most: a rejection costs less than the event it refuses


def rejection(event: DossierEvent, reason: str) -> dict[str, str]:
    """A dead-lettered event as the dossier keeps it, small and without its data: who sent it, its id, type,
    instant and why it did not apply (read back by the sender: docs/dvcqg.md, TraCuuHoSo)."""
    return {"source": event.source, "id": event.id, "type": event.type, "time": event.time.isoformat(),
            "reason": reason[:REASON_CHARS]}


def over_cap(max_events: int) -> str:
    """The dead-letter reason of an event past a dossier's cap."""
    return f"dossier over {max_events} events"


def integrate(
    stored: StoredDossier, new: list[tuple[DossierEvent, bytes]], calendar: WorkingCalendar, now: datetime,
    max_events: int | None = None,
) -> Integrated:
    """Merge new (event, raw JSON) pairs into a dossier's history; fold; extend its outbox. A batch that adds no
    event (duplicates, events past the cap) is not folded: a fold costs the whole history (~20 ms for 1,000 events)
    and would say again what the dossier says, unless its summary is behind its events (`summary_behind`).

    A dossier keeps at most `max_events` events (None: no cap): a new event past it goes to the
    dead-letter topic, neither stored nor folded, and is not remembered (what would remember it would
    grow again), so a redelivered batch dead-letters it again. An event already stored is a duplicate,
    however full the dossier."""
    history, events, outbox, added, refused = _merged(stored, new, max_events)
    if not added and not stored.summary_behind:
        return Integrated(replace(stored, outbox=outbox), None, applied=0, waiting=0, dead_lettered=refused,
                          duplicates=len(new) - refused, over_cap=refused)
    kept = len(events) - len(stored.events)
    folded = fold(history, calendar)
    dead, rejections, foreign = _dead_lettered(stored, folded, history, events, outbox)
    newly_dead = len(dead) - len(stored.dead_lettered)

    status, timeline = stored.status, stored.timeline
    if folded.dossier is not None:
        timeline = TIMELINE.dump_python(folded.timeline, mode="json")
        announced = _announce(folded, stored, added, calendar, timeline, len(history), outbox)
        status = announced.model_dump(mode="json") if announced else None

    waiting_since = stored.waiting_since if folded.dossier is None else None
    if folded.dossier is None and waiting_since is None and history:
        waiting_since = now
    result = StoredDossier(
        code=stored.code,
        version=stored.version,
        events=events,
        dead_lettered=dead,
        rejections=rejections,
        outbox=outbox,
        status=status,
        timeline=timeline,
        waiting_since=waiting_since,
        view=view(folded.dossier) if folded.dossier else None,
        phone4=last4(folded.dossier.applicant.phone) if folded.dossier else None,
        history_missing=stored.history_missing,
        summary_behind=stored.summary_behind,
        _parsed=history,
    )
    waiting = kept if folded.dossier is None else 0
    return Integrated(
        result,
        folded,
        applied=max(0, kept - waiting - newly_dead),
        waiting=waiting,
        dead_lettered=newly_dead + refused,
        duplicates=len(new) - kept - refused,
        foreign=foreign,
        over_cap=refused,
    )


def _merged(stored: StoredDossier, new: list[tuple[DossierEvent, bytes]], max_events: int | None
            ) -> tuple[list[DossierEvent], list[str], list[Outgoing], set[str], int]:
    """The history with the new events that are neither duplicates nor past the cap: (parsed events,
    their JSON, the outbox with the refused ones, the ids added, how many were refused)."""
    history = list(stored.parsed())
    known = {event_key(e) for e in history}
    events, outbox, added, refused = list(stored.events), list(stored.outbox), set(), 0
    for event, raw in new:
        if event_key(event) in known:
            continue
        known.add(event_key(event))
        if max_events is not None and len(events) >= max_events:
            outbox.append(Outgoing("dlq", stored.code, raw, over_cap(max_events)))
            refused += 1
            continue
        added.add(event.id)
        history.append(event)
        events.append(raw.decode())
    return history, events, outbox, added, refused


def _dead_lettered(stored: StoredDossier, folded: Folded, history: list[DossierEvent], events: list[str],
                   outbox: list[Outgoing]) -> tuple[list[str], list[dict[str, str]], int]:
    """The fold's rejections not dead-lettered before, into the outbox: (every dead-lettered key, each with
    its reason, how many of the new ones came from a foreign source)."""
    raw_of = {event_key(e): raw for e, raw in zip(history, events, strict=True)}
    dead, rejections = list(stored.dead_lettered), list(stored.rejections)
    foreign = 0
    for refused in folded.rejected:
        key = event_key(refused.event)
        if key not in dead:
            dead.append(key)
            rejections.append(rejection(refused.event, refused.reason))
            outbox.append(Outgoing("dlq", stored.code, raw_of[key].encode(), refused.reason))
            foreign += refused.reason.startswith(FOREIGN_SOURCE)
    return dead, rejections, foreign


def left_open_at(shown: dict[str, Any] | None) -> datetime | None:
    """When a dossier as `view` shows it left the open states: its end, or its withdrawal (a withdrawn
    dossier has no `ended_at`); None while it is open."""
    if not shown:
        return None
    if shown["ended_at"]:
        return datetime.fromisoformat(shown["ended_at"])
    withdrawals = [step["time"] for step in shown["history"] if step["type"] == "dossier.withdrawn"]
    return datetime.fromisoformat(max(withdrawals)) if shown["state"] == "withdrawn" and withdrawals else None


def view(dossier: Dossier) -> dict[str, Any]:
    """One dossier as docs/contract.md §6 shows it, phone masked, but its open state (the reader's `now`)."""
    applicant = dossier.applicant
    return {
        "dossier_code": dossier.code,
        "commune_code": dossier.received.commune_code,
        "sector": dossier.received.sector,
        "state": dossier.state,
        "received_at": dossier.received_at.isoformat(),
        "due_at": dossier.due_at.isoformat() if dossier.due_at else None,
        "ended_at": dossier.ended_at.isoformat() if dossier.ended_at else None,
        "timeliness": dossier.timeliness,
        "appointment_at": dossier.appointment_at.isoformat() if dossier.appointment_at else None,
        "missing": dossier.missing,
        "applicant": stored_applicant(applicant),
        "history": [{"id": s.id, "type": s.type, "time": s.time.isoformat()} for s in dossier.history],
    }


def stored_applicant(applicant: Applicant) -> dict[str, Any]:
    """The applicant as the view keeps it: sealed as intake sealed it (opened by the reader, unreadable
    once its key is erased: shared/personal.py), or, from a receipt never sealed, name and masked phone."""
    if applicant.sealed is not None:
        return {"sealed": applicant.sealed, "sms_opt_in": applicant.sms_opt_in}
    return {"name": applicant.name, "phone": mask_phone(applicant.phone) if applicant.phone else None}


# The changes of one dossier one batch announces one by one at most; past it, the last of them (`_announce`).
MAX_ANNOUNCED = 50


def _announce(folded: Folded, stored: StoredDossier, added: set[str], calendar: WorkingCalendar,
              timeline: list[dict[str, Any]], events: int,
              outbox: list[Outgoing]) -> Status | None:
    """One status record per change from the first event new in this batch (`added`: their ids) on:
    a batch with several steps of a dossier announces each, in time order, up to MAX_ANNOUNCED, then
    the last (each record carries the dossier's whole timeline: a flood of changes to one dossier in one
    batch would otherwise hold their number times its timeline in memory); a change of counted facts
    alone is announced once. Returns the status last announced."""
    before = status = Status.model_validate(stored.status) if stored.status else None
    first = next((n for n, (step, _) in enumerate(folded.steps) if step.id in added), None)
    changes = []  # each step that changed where the dossier stands, with its status
    for step, dossier in folded.steps[first:] if first is not None else ():
        if changed(status, dossier):
            status = status_of(dossier, calendar, step.time)
            changes.append((step, dossier, status))
    if len(changes) > MAX_ANNOUNCED:
        changes = changes[:MAX_ANNOUNCED - 1] + changes[-1:]
    status = before
    if changes:
        writer = _writer(timeline, events)
        for step, dossier, now in changes:
            outbox.append(Outgoing("status", stored.code, writer.record(dossier, status, now, cause=step)))
            status = now
    if status is before and timeline != stored.timeline:
        final = status_of(folded.dossier, calendar)
        outbox.append(Outgoing("status", stored.code, _writer(timeline, events).record(folded.dossier, status, final)))
        status = final
    return status


def _writer(timeline: list[dict[str, Any]], events: int) -> StatusWriter:
    """The batch's status records' writer: the timeline's JSON written once (TIMELINE.dump_json's bytes)."""
    return StatusWriter(orjson.dumps(timeline), events)


def give_up_waiting(stored: StoredDossier, limit_description: str) -> StoredDossier:
    """Events that waited too long for their dossier's receipt go to the dead-letter topic."""
    outbox = list(stored.outbox)
    dead, rejections = list(stored.dead_lettered), list(stored.rejections)
    reason = f"no dossier.received for {stored.code} within {limit_description}"
    for event, raw in zip(stored.parsed(), stored.events, strict=True):
        if event_key(event) not in dead:
            dead.append(event_key(event))
            rejections.append(rejection(event, reason))
            outbox.append(Outgoing("dlq", stored.code, raw.encode(), reason))
    return replace(stored, dead_lettered=dead, rejections=rejections, outbox=outbox, waiting_since=None)


