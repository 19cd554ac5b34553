"""Feedback (phản ánh, kiến nghị, PAKN) as the QĐ 766 scorecard counts it (docs/domain.md §9).

Pure: no I/O. A PAKN's events become `Step`s (`steps_of`: only its receiver's and contributors' events,
each forwarding with the commune of the unit it goes to); `fold` turns the steps, sorted by time, into the
PAKN (`Feedback`): the unit holding it, when its clock started, its dues, what happened to it, or says
why a step cannot apply. `judged` tells a PAKN on time, open within its limit, or late at an instant;
`feedback_counts` counts a commune's PAKN in a period for sub-indicators 5.2 and 5.3, and the dossiers
they name (a complaint, for 5.4). Processing folds; the metrics service folds the same steps as of a
report's cut: nothing is judged a second way.

`FeedbackCounts` is what a commune's PAKN give sub-indicators 5.2 and 5.3, and the dossiers they name
(a complaint, for 5.4). The metrics service's report queries answer it per commune and period.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from datetime import date, datetime, time, timedelta
from typing import Literal

from shared.calendar import WorkingCalendar
from shared.events import (WORKING_HOURS_PER_DAY, FeedbackEvent, FeedbackForwardedEvent, FeedbackRatedEvent,
                           FeedbackReceivedEvent)

RECEIVED = "feedback.received"
FORWARDED = "feedback.forwarded"
SUPPLEMENT_REQUESTED = "feedback.supplement_requested"
SUPPLEMENT_RECEIVED = "feedback.supplement_received"
REJECTED = "feedback.rejected"
ANSWERED = "feedback.answered"
PUBLISHED = "feedback.published"
RATED = "feedback.rated"
FOREIGN_SOURCE = "foreign source"

# Working days from the receipt or the latest forwarding (docs/domain.md §9); publication from the answer.
REJECT_DAYS, SUPPLEMENT_DAYS, ANSWER_DAYS, PUBLISH_DAYS = 2, 5, 15, 2
LIMITS = {"reject": REJECT_DAYS, "supplement": SUPPLEMENT_DAYS, "answer": ANSWER_DAYS}

State = Literal["open", "awaiting_supplement", "rejected", "answered", "published"]
Judgement = Literal["on_time", "within", "late"]  # handled on time, open within its limit, late
CLOSED: frozenset[str] = frozenset({"rejected", "answered", "published"})


@dataclass(frozen=True, slots=True)
class FeedbackCounts:
    """A commune's PAKN in a period, as of an instant (docs/domain.md §9)."""

    on_time: int = 0  # 5.2: handled on time, or open within 15 working days at the period's end
    taken: int = 0  # 5.2: received or handled in the period by a unit of the commune
    satisfied: int = 0  # 5.3: first received in the period, neither disliked, followed up, nor late
    first_received: int = 0  # 5.3: first received in the period
    complained: frozenset[str] = frozenset()  # dossier codes named by a PAKN received by the cut (5.4)


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a PAKN as the fold takes it: no free text (a rejection's reason stays in the event)."""

    id: str  # the event's `source id`
    type: str
    time: datetime
    unit: str | None = None  # received: the receiving unit; forwarded: the unit it goes to
    commune_code: str | None = None  # of that unit (forwarded: None when the units file does not know it)
    dossier_code: str | None = None  # received: the dossier the PAKN is about
    rating: str | None = None  # rated: like or dislike


@dataclass(frozen=True, slots=True)
class Feedback:
    """A PAKN folded from its steps: who holds it, its clock and dues, what happened to it."""

    code: str
    received_at: datetime  # the first receipt
    receiving_unit: str
    receiving_commune: str
    dossier_code: str | None
    unit: str  # the unit holding it: the latest forwarding's, else the receiving unit
    commune_code: str | None  # the holding unit's commune; None: a unit the units file does not know
    clock_from: datetime  # the receipt or the latest forwarding: its limits count from here
    state: State = "open"
    first_supplement_at: datetime | None = None  # the first request since `clock_from`
    rejected_at: datetime | None = None
    answered_at: datetime | None = None
    published_at: datetime | None = None
    likes: int = 0
    dislikes: int = 0

    def due(self, limit: str, calendar: WorkingCalendar) -> datetime | None:
        """One limit: `reject`, `supplement`, `answer` (from `clock_from`) or `publish` (once answered)."""
        if limit == "publish":
            return working_days(calendar, self.answered_at, PUBLISH_DAYS) if self.answered_at else None
        return working_days(calendar, self.clock_from, LIMITS[limit])

    def dues(self, calendar: WorkingCalendar) -> dict[str, datetime | None]:
        """Reject by, first supplement request by, answer by, publish by (once answered)."""
        return {limit: self.due(limit, calendar) for limit in (*LIMITS, "publish")}

    def judged_against(self, calendar: WorkingCalendar) -> datetime:
        """The limit its handling is judged by: a rejection's 2 working days, a first supplement request's 5
        (while the supplement is awaited), else the answer's 15."""
        return self.due({"rejected": "reject", "awaiting_supplement": "supplement"}.get(self.state, "answer"),
                        calendar)  # type: ignore[return-value]

    def handled_at(self) -> datetime | None:
        """When its unit handled it: rejected, answered, or (while awaited) asked for a supplement."""
        if self.state == "awaiting_supplement":
            return self.first_supplement_at
        return self.rejected_at or self.answered_at


@lru_cache(maxsize=1 << 16)
def working_days(calendar: WorkingCalendar, start: datetime, days: int) -> datetime:
    """`days` working days after `start`, as a dossier's due (docs/domain.md §3: a day is 8 working hours).
    Remembered: every report folds each PAKN again, and walking 15 working days costs about 0.3 ms."""
    return calendar.add_working(start, timedelta(hours=days * WORKING_HOURS_PER_DAY))


@dataclass(frozen=True)
class Folded:
    feedback: Feedback | None  # None while no receipt has come
    applied: tuple[Step, ...]  # the steps the PAKN is made of, in time order
    rejected: tuple[tuple[Step, str], ...]  # steps that cannot apply, with why


def fold(steps: Iterable[Step], code: str = "") -> Folded:
    """A PAKN's steps sorted by time (ties: arrival order) folded into it. Before its receipt nothing
    applies (a step dated before it is rejected; without a receipt, all wait for it)."""
    ordered = sorted(steps, key=lambda s: s.time)
    receipt = next((s for s in ordered if s.type == RECEIVED), None)
    if receipt is None:
        return Folded(None, (), ())
    feedback: Feedback | None = None
    applied: list[Step] = []
    rejected: list[tuple[Step, str]] = []
    for step in ordered:
        try:
            feedback = _apply(feedback, step, code)
        except Inapplicable as why:
            rejected.append((step, str(why)))
        else:
            applied.append(step)
    return Folded(feedback, tuple(applied), tuple(rejected))


class Inapplicable(Exception):
    """A step that cannot apply to the PAKN at its place in time."""


def _apply(f: Feedback | None, step: Step, code: str) -> Feedback:
    if f is None:
        if step.type != RECEIVED:
            raise Inapplicable(f"{step.type} before the PAKN's receipt")
        assert step.unit is not None and step.commune_code is not None
        return Feedback(code=code, received_at=step.time, receiving_unit=step.unit,
                        receiving_commune=step.commune_code, dossier_code=step.dossier_code, unit=step.unit,
                        commune_code=step.commune_code, clock_from=step.time)
    if step.type == RECEIVED:
        raise Inapplicable("the PAKN was received already")
    if step.type == RATED:
        if f.state not in ("answered", "published"):
            raise Inapplicable("rated before it was answered")
        return replace(f, likes=f.likes + (step.rating == "like"), dislikes=f.dislikes + (step.rating == "dislike"))
    if step.type == PUBLISHED:
        if f.state != "answered":
            raise Inapplicable("published before it was answered" if f.state not in CLOSED else f"{f.state} already")
        return replace(f, state="published", published_at=step.time)
    if f.state in CLOSED:
        raise Inapplicable(f"{step.type} after the PAKN was {f.state}")
    return _handle(f, step)


def _handle(f: Feedback, step: Step) -> Feedback:
    """A step of an open PAKN (awaiting a supplement or not)."""
    match step.type:
        case "feedback.forwarded":
            if f.state == "awaiting_supplement":
                raise Inapplicable("forwarded while a supplement is awaited")
            assert step.unit is not None
            return replace(f, unit=step.unit, commune_code=step.commune_code, clock_from=step.time,
                           first_supplement_at=None)
        case "feedback.supplement_requested":
            if f.state == "awaiting_supplement":
                raise Inapplicable("a supplement is awaited already")
            return replace(f, state="awaiting_supplement", first_supplement_at=f.first_supplement_at or step.time)
        case "feedback.supplement_received":
            if f.state != "awaiting_supplement":
                raise Inapplicable("no supplement was requested")
            return replace(f, state="open")
        case "feedback.rejected":
            return replace(f, state="rejected", rejected_at=step.time)
        case "feedback.answered":
            return replace(f, state="answered", answered_at=step.time)
    raise Inapplicable(f"unknown step {step.type}")


def as_of(steps: Sequence[Step], code: str, at: datetime) -> Feedback | None:
    """The PAKN as its steps up to `at` make it (events after `at` are ignored)."""
    return fold((s for s in steps if s.time <= at), code).feedback


def judged(f: Feedback, at: datetime, calendar: WorkingCalendar) -> Judgement:
    """Handled on time, open within its 15 working days, or late, at `at` (docs/domain.md §9): a
    rejection within 2 working days, a first supplement request (still awaited) within 5, an answer
    within 15; an open PAKN is late once `at` is past its 15 days."""
    due, handled = f.judged_against(calendar), f.handled_at()
    if handled is not None:
        return "on_time" if handled <= due else "late"
    return "within" if at <= due else "late"


# -- the counts of a commune's PAKN in a period ----------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """[start, end) in local time, and the cut: min(end, as_of); events after the cut are ignored."""

    start: datetime
    end: datetime
    cut: datetime

    @classmethod
    def of(cls, first: date, last: date, as_of: datetime, calendar: WorkingCalendar) -> "Period":
        start = datetime.combine(first, time.min, calendar.timezone)
        end = datetime.combine(last + timedelta(days=1), time.min, calendar.timezone)  # the day after `to`
        return cls(start, end, min(end, as_of))

    def holds(self, t: datetime | None) -> bool:
        return t is not None and self.start <= t < self.end and t <= self.cut


def feedback_counts(pakn: Iterable[tuple[str, Sequence[Step]]], commune_code: str, period: Period,
                    calendar: WorkingCalendar) -> FeedbackCounts:
    """5.2, 5.3 and the complaints of `commune_code` (docs/domain.md §9) over PAKN given as (code, steps):
    every PAKN of the commune and every one naming a dossier they name (a follow-up is another PAKN's)."""
    now = {code: f for code, steps in pakn if (f := as_of(steps, code, period.cut)) is not None}
    receipts: dict[str, list[datetime]] = defaultdict(list)  # dossier code -> the commune's PAKN's receipts
    for f in now.values():  # a follow-up is the commune's own: another commune's cannot mark its PAKN
        if f.dossier_code and commune_code in (f.commune_code, f.receiving_commune):
            receipts[f.dossier_code].append(f.received_at)
    on_time = taken = satisfied = first = 0
    complained = set()
    for f in now.values():
        if f.dossier_code and commune_code in (f.commune_code, f.receiving_commune):
            complained.add(f.dossier_code)
        if f.commune_code != commune_code:
            continue
        verdict = judged(f, period.cut, calendar)
        if period.holds(f.clock_from) or period.holds(f.handled_at()):
            taken += 1
            on_time += verdict != "late"
        if period.holds(f.received_at):
            first += 1
            followed = f.dossier_code is not None and any(t > f.received_at for t in receipts[f.dossier_code])
            satisfied += not (f.dislikes > f.likes or followed or verdict == "late")
    return FeedbackCounts(on_time, taken, satisfied, first, frozenset(complained))


# -- from events to steps -----------------------------------------------------------------------------

def owned(events: Sequence[tuple[str, str, bool]]) -> list[str | None]:
    """For each event of a PAKN as (type, source, marked a contributor's by intake), in arrival order:
    None when it belongs to the PAKN (its receiver's, the source of the first receipt to arrive, or a
    contributor's step that is not a receipt), else why not. All belong while no receipt has come."""
    owner = next((source for type_, source, _ in events if type_ == RECEIVED), None)
    return [None if owner is None or source == owner or (marked and type_ != RECEIVED)
            else f"{FOREIGN_SOURCE}: {source} did not receive the PAKN ({owner} did)"
            for type_, source, marked in events]


def step_of(event: FeedbackEvent, commune_of: Callable[[str], str | None]) -> Step:
    """The step an event makes, a forwarding with the commune of the unit it goes to (`commune_of`:
    the units file, shared/units.py; the receipt names its own)."""
    base = {"id": f"{event.source} {event.id}", "type": event.type, "time": event.time}
    match event:
        case FeedbackReceivedEvent(data=data):
            return Step(**base, unit=data.unit, commune_code=data.commune_code, dossier_code=data.dossier_code)
        case FeedbackForwardedEvent(data=data):
            return Step(**base, unit=data.to_unit, commune_code=commune_of(data.to_unit))
        case FeedbackRatedEvent(data=data):
            return Step(**base, rating=data.rating)
    return Step(**base)
