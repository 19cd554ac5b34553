"""A dossier's events folded into its state, due date and timeliness (docs/domain.md §2-§4).

`fold` is the one place these rules live: processing, metrics and the report API all call it.
Events are deduplicated by source + id (the first arrival wins), sorted by time (ties keep
arrival order) and applied one by one, so the result never depends on the order of arrival.
An event that cannot apply at its place in time is rejected with a reason, never dropped.

A dossier belongs to the source of the first receipt that arrived (docs/security.md): events of
any other source are rejected as `foreign source`, unless intake marked them as a contributor's
step (`intakecontributor`: a payment gateway's payment, the portal's rating; never a receipt). So
another system's key cannot replace the applicant with a back-dated receipt, nor withdraw or stop
the dossier. A step intake inferred from the national portal's sync format (`intakeinferred`: dated by its
arrival, or implied by a later state) that cannot apply is left out, not rejected (docs/dvcqg.md).
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from operator import attrgetter
from typing import Literal

from shared.calendar import WorkingCalendar
from shared.events import Applicant, DossierEvent, ReceivedEvent
from shared.events import Received as ReceivedData
from shared.facts import OPEN, Facts, OpenState, Received, State, Timeline, Timeliness, open_state

SYNC = timedelta(minutes=15)  # an event that reached intake within this of its `time` is in sync


FOREIGN_SOURCE = "foreign source"


class Inapplicable(Exception):
    """An event that cannot apply to the dossier at its place in time."""


@dataclass(frozen=True)
class Rejection:
    event: DossierEvent
    reason: str


@dataclass(frozen=True)
class Step:
    id: str
    type: str
    time: datetime


@dataclass(frozen=True)
class Dossier:
    """The fold's state of a dossier: what its receipt said, and where its events have brought it."""

    received: Received
    applicant: Applicant
    received_date: date  # local date: the report cohort (docs/domain.md §5)
    processing_time: timedelta
    state: State = "processing"
    due_at: datetime | None = None  # the due in force; None while a supplement is awaited
    paused_remaining: timedelta | None = None  # working time left when the clock paused
    missing: str | None = None  # what the supplement request asks for
    appointment_at: datetime | None = None  # last date told to the citizen (receipt, apology)
    ended_at: datetime | None = None
    timeliness: Timeliness | None = None
    withdrawn_at: datetime | None = None
    payment_method: Literal["online", "offline"] | None = None
    digitized: bool = False
    rating: Literal["very_satisfied", "satisfied", "unsatisfied"] | None = None
    apologies_compliant: int = 0
    apologies_non_compliant: int = 0
    unit: str | None = None  # who holds the dossier: the last transfer's `to_unit`; None at reception
    step_due_at: datetime | None = None  # the holding step's own due (the last transfer's `step_due_at`)
    payment_gateway: Literal["portal", "province"] | None = None
    result_issued: bool = False  # an electronic result (kết quả điện tử)
    result_sent_to_personal_store: bool = False
    arrivals: int = 0  # events whose arrival at intake is known (`intaketime`)
    arrivals_synced: int = 0  # of those, arrived within SYNC of their `time` (docs/domain.md §6)
    history: tuple[Step, ...] = ()

    @property
    def code(self) -> str:
        return self.received.dossier_code

    @property
    def received_at(self) -> datetime:
        return self.received.received_at

    def open_state(self, at: datetime, calendar: WorkingCalendar) -> OpenState | None:
        """Where an open dossier stands at instant `at` (docs/domain.md §4); None once it ended or was withdrawn."""
        return open_state(self.state, self.due_at, at, calendar)

    def facts(self, since: datetime) -> Facts:
        """What the figures count of the dossier as it stands, from `since` on."""
        return Facts(since, self.state, self.due_at, self.timeliness, self.payment_method, self.digitized,
                     self.rating, self.apologies_compliant, self.apologies_non_compliant, self.unit,
                     self.step_due_at, self.payment_gateway, self.result_issued, self.result_sent_to_personal_store)


_FIELDS = frozenset(f.name for f in fields(Dossier))


def _changed(dossier: Dossier, **changes: object) -> Dossier:
    """`dataclasses.replace` of a Dossier, without calling its `__init__` again: its copy and the changes'
    values, as given (replace made the fold's CPU a third of processing's; bench-cpu, docs/benchmarks.md)."""
    if not _FIELDS.issuperset(changes):
        raise TypeError(f"no such fields of a Dossier: {sorted(set(changes) - _FIELDS)}")
    changed = object.__new__(Dossier)
    changed.__dict__.update(dossier.__dict__, **changes)
    return changed


# What the figures count of Facts: all but `since` (the timeline's entries differ by it alone when nothing changed).
_COUNTED = attrgetter(*(f.name for f in fields(Facts) if f.name != "since"))


@dataclass(frozen=True)
class Folded:
    dossier: Dossier | None  # None until the dossier's `received` event is there
    rejected: tuple[Rejection, ...] = ()
    waiting: tuple[DossierEvent, ...] = ()  # events that wait for the dossier's receipt
    timeline: Timeline = ()  # the dossier's Facts each time they changed, oldest first
    steps: tuple[tuple[Step, Dossier], ...] = ()  # each applied event, in time order, with the dossier after it


def fold(events: Iterable[DossierEvent], calendar: WorkingCalendar, as_of: datetime | None = None) -> Folded:
    """Fold a dossier's events, given in arrival order, as of `as_of` (events after it ignored)."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for event in events:
        if (event.source, event.id) not in seen:
            seen.add((event.source, event.id))
            unique.append(event)
    owned, rejected = _owned(unique)
    ordered = sorted((e for e in owned if as_of is None or e.time <= as_of), key=lambda e: e.time)

    receipt = next((e for e in ordered if isinstance(e, ReceivedEvent)), None)
    if receipt is None:
        return Folded(None, tuple(rejected), waiting=tuple(ordered))
    dossier = _receive(receipt, calendar)
    dossier = _changed(dossier, **_arrival(dossier, receipt))
    timeline = [dossier.facts(dossier.received_at)]
    steps = [(Step(receipt.id, receipt.type, receipt.time), dossier)]
    for event in ordered:
        if event is receipt:
            continue
        try:
            dossier = _apply(dossier, event, calendar)
        except Inapplicable as exc:
            if not _inferred(event):
                rejected.append(Rejection(event, str(exc)))
            continue
        step = Step(event.id, event.type, event.time)
        dossier = _changed(dossier, history=(*dossier.history, step), **_arrival(dossier, event))  # one copy an event
        steps.append((step, dossier))
        _extend(timeline, dossier.facts(max(event.time, dossier.received_at)))
    history = sorted([steps[0][0], *dossier.history], key=lambda s: s.time)
    return Folded(_changed(dossier, history=tuple(history)), tuple(rejected), timeline=tuple(timeline),
                  steps=tuple(steps))


def _owned(events: list[DossierEvent]) -> tuple[list[DossierEvent], list[Rejection]]:
    """The events of the dossier's owner (the source of the first receipt to arrive) and its
    contributors', and the others rejected; all of them while no receipt has arrived."""
    owner = next((e.source for e in events if isinstance(e, ReceivedEvent)), None)
    owned, foreign = [], []
    for event in events:
        marked = (event.model_extra or {}).get("intakecontributor") is True
        if owner is None or event.source == owner or (marked and not isinstance(event, ReceivedEvent)):
            owned.append(event)
        else:
            foreign.append(Rejection(event, f"{FOREIGN_SOURCE}: {event.source} did not receive the dossier ({owner} did)"))
    return owned, foreign


def _inferred(event: DossierEvent) -> bool:
    """A step intake inferred from the national portal's format without its instant, or from what a later
    state implies (`intakeinferred`, docs/dvcqg.md): one that cannot apply adds nothing, it is no error."""
    return (event.model_extra or {}).get("intakeinferred") is True


def _extend(timeline: list[Facts], facts: Facts) -> None:
    last = timeline[-1]
    if _COUNTED(last) == _COUNTED(facts):
        return  # nothing the figures count changed
    if last.since == facts.since:
        timeline[-1] = facts  # events at the same instant: what holds after the last of them
    else:
        timeline.append(facts)


def _arrival(dossier: Dossier, event: DossierEvent) -> dict[str, int]:
    """The event's arrival at intake counted, if intake recorded it: the status sync proxy (§6)."""
    arrived = (event.model_extra or {}).get("intaketime")
    try:
        at = datetime.fromisoformat(arrived) if isinstance(arrived, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        return {}
    return {"arrivals": dossier.arrivals + 1, "arrivals_synced": dossier.arrivals_synced + (at - event.time <= SYNC)}


def _receive(event: ReceivedEvent, calendar: WorkingCalendar) -> Dossier:
    data = event.data
    processing_time = timedelta(hours=data.processing_time.hours)
    # The appointment printed on the receipt wins over the computed due (docs/domain.md §3).
    due = data.due_at or calendar.add_working(event.time, processing_time)
    components = data.components or []
    received = Received(dossier_code=event.subject, commune_code=data.commune_code, sector=data.sector,
                        procedure_code=data.procedure_code, channel=data.channel, online_level=data.online_level,
                        received_at=event.time, received_by_unit=data.received_by_unit,
                        component_digitized=any(c.digitized for c in components),
                        component_reused=any(c.reused for c in components),
                        component_from_personal_store=any(c.from_personal_store for c in components),
                        vneid_authenticated=bool(data.vneid_authenticated), population_data=bool(data.population_data),
                        fees_total=_fees_total(data), receipt_due_at=due)
    return Dossier(received=received, applicant=data.applicant, received_date=calendar.local(event.time).date(),
                   processing_time=processing_time, due_at=due, appointment_at=due)


def _fees_total(data: ReceivedData) -> float | None:
    """What the receipt says the dossier costs: its fees (v1.2) added up, else its one `fee`, else None."""
    if data.fees is not None:
        return sum(fee.amount for fee in data.fees)
    return data.fee.amount if data.fee is not None else None


def _require(dossier: Dossier, event: DossierEvent, states: Iterable[str]) -> None:
    if dossier.state not in states:
        raise Inapplicable(f"{event.type} cannot follow state {dossier.state}")


def due_in_force(dossier: Dossier, at: datetime, calendar: WorkingCalendar) -> datetime:
    """The due that judges the dossier at `at`, with its clock stopped where docs/domain.md §3 stops it."""
    if dossier.state == "awaiting_supplement":
        # The clock restarts from zero when the supplement arrives: judged as if it arrived now.
        return calendar.add_working(at, dossier.processing_time)
    assert dossier.due_at is not None
    if dossier.state == "paused" and dossier.paused_remaining:
        return calendar.add_working(at, dossier.paused_remaining)
    return dossier.due_at


def _end(dossier: Dossier, at: datetime, state: State, calendar: WorkingCalendar) -> Dossier:
    due = due_in_force(dossier, at, calendar)
    end_date, due_date = calendar.local(at).date(), calendar.local(due).date()
    timeliness: Timeliness = "early" if end_date < due_date else "on_time" if end_date == due_date else "late"
    return _changed(dossier, state=state, due_at=due, paused_remaining=None, ended_at=at, timeliness=timeliness)


def _apply(dossier: Dossier, event: DossierEvent, calendar: WorkingCalendar) -> Dossier:
    at = event.time
    if at < dossier.received_at and event.type not in _ANY_TIME:
        raise Inapplicable(f"{event.type} at {at.isoformat()} is before the dossier was received")
    match event.type:
        case "dossier.received":
            raise Inapplicable(f"the dossier was already received at {dossier.received_at.isoformat()}")
        case "dossier.supplement_requested":  # yêu cầu bổ sung: neither on time nor overdue meanwhile
            _require(dossier, event, {"processing", "paused"})
            return _changed(
                dossier, state="awaiting_supplement", due_at=None, paused_remaining=None, missing=event.data.reason
            )
        case "dossier.supplement_received":  # the clock restarts from zero
            _require(dossier, event, {"awaiting_supplement"})
            due = calendar.add_working(at, dossier.processing_time)
            return _changed(dossier, state="processing", due_at=due, appointment_at=due, missing=None)
        case "dossier.obligation_requested":  # nghĩa vụ tài chính: the clock pauses
            _require(dossier, event, {"processing"})
            assert dossier.due_at is not None
            return _changed(dossier, state="paused", paused_remaining=calendar.working_between(at, dossier.due_at))
        case "dossier.obligation_fulfilled":
            _require(dossier, event, {"paused"})
            return _changed(dossier, state="processing", due_at=due_in_force(dossier, at, calendar), paused_remaining=None)
        case "dossier.withdrawn":
            _require(dossier, event, OPEN)
            return _changed(dossier, state="withdrawn", withdrawn_at=at, paused_remaining=None)
        case "dossier.stopped":
            _require(dossier, event, OPEN)
            return _end(dossier, at, "stopped", calendar)
        case "dossier.resolved":
            _require(dossier, event, {"processing"})
            return _end(dossier, at, "resolved", calendar)
        case "dossier.returned":
            if dossier.state in ("resolved", "stopped"):
                return _changed(dossier, state="returned")  # the end stays the earlier event
            _require(dossier, event, {"processing"})
            return _end(dossier, at, "returned", calendar)
        case _:
            return _note(dossier, event, calendar)


def _note(dossier: Dossier, event: DossierEvent, calendar: WorkingCalendar) -> Dossier:
    """The steps that move no clock: what the figures count about the dossier (an apology, a payment, a
    result, a digitization, a rating) and where it waits (a transfer)."""
    match event.type:
        case "dossier.apology_issued":  # phiếu xin lỗi và hẹn lại ngày trả kết quả (Mẫu 04)
            return _apologized(dossier, event, calendar)
        case "dossier.payment_completed":
            # A dossier counts once among payments: online if any of its payments was online.
            method = "online" if "online" in (event.data.method, dossier.payment_method) else "offline"
            gateway = dossier.payment_gateway or (event.data.gateway if event.data.method == "online" else None)
            return _changed(dossier, payment_method=method, payment_gateway=gateway)
        case "dossier.result_issued":  # kết quả điện tử: an electronic result, in any state but withdrawn
            if dossier.state == "withdrawn":
                raise Inapplicable(f"{event.type} cannot follow state withdrawn")
            return _changed(dossier, result_issued=True, result_sent_to_personal_store=(
                dossier.result_sent_to_personal_store or event.data.sent_to_personal_store))
        case "dossier.digitized":
            return _changed(dossier, digitized=True)
        case "dossier.rated":
            return _changed(dossier, rating=event.data.rating)  # the citizen's latest rating counts
        case "dossier.transferred" | "dossier.signature_requested" | "dossier.signed":
            if dossier.state == "withdrawn":
                raise Inapplicable(f"{event.type} cannot follow state withdrawn")
            if event.type == "dossier.transferred" and dossier.state in OPEN:  # an ended dossier waits nowhere
                return _changed(dossier, unit=event.data.to_unit, step_due_at=event.data.step_due_at)
            return dossier
    raise Inapplicable(f"unknown event type {event.type}")


def _apologized(dossier: Dossier, event: DossierEvent, calendar: WorkingCalendar) -> Dossier:
    """Applied in every state, never rejected: it changes no state and no due, and an apology issued
    late or after the end is a violation operators want to see counted."""
    at = event.time
    due = due_in_force(dossier, at, calendar) if dossier.state in OPEN else dossier.due_at
    first_and_early = dossier.apologies_compliant + dossier.apologies_non_compliant == 0 and (
        due is not None and calendar.local(at).date() < calendar.local(due).date()
    )
    return _changed(
        dossier,
        appointment_at=event.data.new_due_at,
        apologies_compliant=dossier.apologies_compliant + first_and_early,
        apologies_non_compliant=dossier.apologies_non_compliant + (not first_and_early),
    )


# Facts about the dossier rather than steps of its processing: their time may precede the receipt
# (a document digitized, a fee paid at the counter minutes before the receipt was printed). An
# apology too is never rejected: one dated before the receipt is judged against the receipt's due.
_ANY_TIME = frozenset({"dossier.digitized", "dossier.payment_completed", "dossier.apology_issued"})
