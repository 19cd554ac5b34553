"""Two views of whether a dossier was handled on time, side by side (docs/domain.md §4, §6 "2.1").

- The decree's (NĐ 61, docs/domain.md §4): an ended dossier is early, on time or late by the local
  dates of its end and of the due in force then; a supplement restarts the clock, a financial
  obligation pauses it; an open dossier is in time, overdue, or not judged while its clock stands.
- The national portal's sub-indicator 2.1 (its formula document, "Tỷ lệ hồ sơ xử lý trước hạn, đúng
  hạn"): every dossier of the cohort is judged, by instants, against the appointment on its receipt;
  wall-clock supplement time is subtracted from its end instead of restarting the clock.

An operator sees one figure here and another on the portal: `disagreement` names why for a dossier.

Pure: a dossier is given as its Timeline (shared.facts), the metrics service's and the fold's.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from shared.calendar import WorkingCalendar
from shared.facts import OPEN, Facts, Timeline

Decree = Literal["in_time", "late", "not_judged"]
Reason = Literal[
    "second_supplement_request",  # asked for a supplement more than once: late for the portal
    "supplement_awaited",  # the supplement is awaited at the cut: the portal ends it at the request
    "supplement_subtracted",  # the portal subtracts the supplement's wall-clock time; the decree restarts
    "withdrawn",  # the portal judges a withdrawn dossier; the decree counts it apart
    "obligation_paused",  # the clock stands for a financial obligation at the cut
    "open_at_cut",  # no end by the cut: the portal ends it at the cut
    "same_day",  # the decree compares dates, the portal instants: an end later in the due's day
]


@dataclass(frozen=True, slots=True)
class Judged:
    """A dossier as the portal's 2.1 judges it at a cut."""

    on_time: bool
    end: datetime  # the end instant: first resolved, returned, stopped, withdrawn; the request; the cut
    effective_end: datetime  # the end less the supplements completed by then (wall-clock)
    appointment: datetime | None  # the receipt's, moved only by financial obligation pauses
    reasons: tuple[Reason, ...]  # what in its life the two views read differently


def cut_of(to: date, as_of: datetime, calendar: WorkingCalendar) -> datetime:
    """The portal's cut: the period's end (its last instant, the next local day starting after it), or
    `as_of` when it comes first. Events at instants up to the cut count."""
    return min(calendar.end_of_day(to), as_of)


def judge_portal(timeline: Timeline, cut: datetime, calendar: WorkingCalendar,
                 appointment: datetime | None = None) -> Judged:
    """The portal's 2.1 (docs/domain.md §6) for a dossier with this `appointment` on its receipt (without
    one, a record from before v1.2: the first due of its timeline); events after `cut` are ignored."""
    plain = _plain(timeline, cut, appointment)
    if plain is not None:
        return plain
    entries = [f for f in timeline if f.since <= cut]
    if not entries:
        raise ValueError("the dossier was not received by the cut")
    appointment = appointment or next((f.due_at for f in entries if f.due_at is not None), None)
    rounds = _rounds(entries, "awaiting_supplement")
    end, reasons = _end(entries, rounds, cut)
    subtracted = sum((back - asked for asked, back in rounds if back is not None and back <= end), timedelta())
    if subtracted:
        reasons.append("supplement_subtracted")
    appointment = _moved(appointment, _rounds(entries, "paused"), end, calendar)
    effective = end - subtracted
    on_time = len(rounds) <= 1 and appointment is not None and effective <= appointment
    if len(rounds) > 1:
        reasons.insert(0, "second_supplement_request")
    return Judged(on_time, end, effective, appointment, tuple(reasons))


STANDS = frozenset({"awaiting_supplement", "paused"})
ENDS = ("resolved", "returned", "stopped", "withdrawn")  # the end instant's states, by the portal's preference


def _plain(timeline: Timeline, cut: datetime, appointment: datetime | None) -> Judged | None:
    """Most lives, read in one pass: an appointment on record, no supplement and no pause by the cut.
    None for the others (the general reading follows)."""
    if appointment is None:
        return None
    first: dict[str, datetime] = {}
    whole = bool(timeline) and timeline[-1].since <= cut  # the timeline is in time order: one comparison
    for f in timeline:
        if not whole and f.since > cut:
            break
        if f.state in STANDS:
            return None
        first.setdefault(f.state, f.since)
    if not first:
        return None
    for state in ENDS:
        if state in first:
            end = first[state]
            return Judged(end <= appointment, end, end, appointment, ("withdrawn",) if state == "withdrawn" else ())
    return Judged(cut <= appointment, cut, cut, appointment, ("open_at_cut",))


def _rounds(entries: list[Facts], state: str) -> list[tuple[datetime, datetime | None]]:
    """Each stretch in `state`: from its first instant to the instant the dossier went on being processed
    (None if it had not by the last entry, or ended instead: a supplement never returned)."""
    rounds: list[tuple[datetime, datetime | None]] = []
    inside = False
    for f in entries:
        if f.state == state and not inside:
            rounds.append((f.since, None))
        elif f.state != state and inside and f.state in OPEN:
            rounds[-1] = (rounds[-1][0], f.since)
        inside = f.state == state
    return rounds


def _end(entries: list[Facts], supplements: list[tuple[datetime, datetime | None]], cut: datetime
         ) -> tuple[datetime, list[Reason]]:
    """The end instant by the portal's order of preference, and why it is read so."""
    for state in ENDS:
        first = next((f.since for f in entries if f.state == state), None)
        if first is not None:
            return first, ["withdrawn"] if state == "withdrawn" else []
    if entries[-1].state == "awaiting_supplement" and len(supplements) == 1:
        return supplements[0][0], ["supplement_awaited"]
    return cut, ["obligation_paused" if entries[-1].state == "paused" else "open_at_cut"]


def _moved(appointment: datetime | None, pauses: list[tuple[datetime, datetime | None]], end: datetime,
           calendar: WorkingCalendar) -> datetime | None:
    """The appointment moved by each financial obligation pause begun by `end` (docs/domain.md §3, against
    the appointment): the working time it had left, counted again from the resumption (or `end`)."""
    for paused, resumed in pauses:
        if appointment is None or paused > end:
            break
        left = calendar.working_between(paused, appointment) if appointment > paused else timedelta()
        if left:
            appointment = calendar.add_working(min(resumed or end, end), left)
    return appointment


def judge_decree(facts: Facts, at: datetime, calendar: WorkingCalendar) -> Decree:
    """The decree's view of a dossier with these Facts at `at` (docs/domain.md §4, §5's on-time rate)."""
    if facts.state == "withdrawn":
        return "not_judged"
    if facts.state in OPEN:
        state = facts.open_state(at, calendar)
        return "late" if state == "overdue" else "in_time" if state in ("within_deadline", "due_soon") else "not_judged"
    return "late" if facts.timeliness == "late" else "in_time"


def disagreement(decree: Decree, portal: Judged, calendar: WorkingCalendar) -> tuple[Reason, ...] | None:
    """Why the two views differ on a dossier; None when they agree (a dossier the decree does not judge
    agrees when the portal finds it on time)."""
    if portal.on_time == (decree != "late"):
        return None
    reasons = portal.reasons
    if (decree == "in_time" and not portal.on_time and portal.appointment is not None
            and calendar.local(portal.effective_end).date() == calendar.local(portal.appointment).date()):
        reasons = (*reasons, "same_day")
    return reasons
