"""The two on-time views (shared.on_time): the portal's 2.1, one row per rule of docs/domain.md §6, and
where it disagrees with the decree's (§4)."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.calendar import WorkingCalendar
from shared.dossier import fold
from shared.events import parse_event
from shared.on_time import cut_of, disagreement, judge_decree, judge_portal
from tests.fixtures.sample import event

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()
CODE = "000.00.38.H56-250707-0001"
TO = date(2025, 7, 31)  # the period: July 2025


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN)


def life(*steps: tuple[str, str], **received):
    """A dossier received Monday 7/7/2025 10:00, appointment Tuesday 8/7 10:00 (1 working day), then `steps`."""
    events = [event("dossier.received", CODE, at("2025-07-07 10:00"), **received)]
    events += [event(type_, CODE, at(time)) for type_, time in steps]
    return fold([parse_event(e) for e in events], CAL).timeline


def judged(*steps: tuple[str, str], as_of: str = "2025-08-15 09:00", to: date = TO, **received):
    timeline = life(*steps, **received)
    return judge_portal(timeline, cut_of(to, at(as_of), CAL), CAL)


RESOLVED_LATE = ("dossier.resolved", "2025-07-08 15:00")  # the appointment was 10:00 that day


@pytest.mark.parametrize("name, steps, options, on_time, reasons", [
    ("resolved before the appointment", [("dossier.resolved", "2025-07-08 09:00")], {}, True, ()),
    ("resolved at the appointment's instant", [("dossier.resolved", "2025-07-08 10:00")], {}, True, ()),
    ("resolved later the same day: the portal compares instants", [RESOLVED_LATE], {}, False, ()),
    ("returned only: its instant ends it", [("dossier.returned", "2025-07-08 09:30")], {}, True, ()),
    ("one supplement awaited at the cut: ended at the request",
     [("dossier.supplement_requested", "2025-07-08 09:00")], {}, True, ("supplement_awaited",)),
    ("one supplement awaited, requested after the appointment",
     [("dossier.supplement_requested", "2025-07-08 11:00")], {}, False, ("supplement_awaited",)),
    ("two requests: late whatever the end",
     [("dossier.supplement_requested", "2025-07-07 11:00"), ("dossier.supplement_received", "2025-07-07 14:00"),
      ("dossier.supplement_requested", "2025-07-07 15:00"), ("dossier.supplement_received", "2025-07-07 16:00"),
      ("dossier.resolved", "2025-07-07 16:30")], {}, False, ("second_supplement_request", "supplement_subtracted")),
    ("a completed supplement's wall-clock time is subtracted from the end",
     [("dossier.supplement_requested", "2025-07-07 11:00"), ("dossier.supplement_received", "2025-07-10 11:00"),
      ("dossier.resolved", "2025-07-11 09:00")], {}, True, ("supplement_subtracted",)),
    ("subtracted, and still late",
     [("dossier.supplement_requested", "2025-07-07 11:00"), ("dossier.supplement_received", "2025-07-10 11:00"),
      ("dossier.resolved", "2025-07-11 11:00")], {}, False, ("supplement_subtracted",)),
    ("an obligation pause moves the appointment by the working time it had left",
     [("dossier.obligation_requested", "2025-07-07 11:00"), ("dossier.obligation_fulfilled", "2025-07-10 09:00"),
      ("dossier.resolved", "2025-07-10 16:00")], {}, True, ()),
    ("an obligation pause after a supplement restart moves the receipt's appointment, not the restarted due",
     [("dossier.supplement_requested", "2025-07-07 11:00"), ("dossier.supplement_received", "2025-07-07 13:00"),
      ("dossier.obligation_requested", "2025-07-07 14:00"), ("dossier.obligation_fulfilled", "2025-07-09 08:00"),
      ("dossier.resolved", "2025-07-10 10:30")], {}, False, ("supplement_subtracted",)),
    ("an apology does not move the appointment",
     [("dossier.apology_issued", "2025-07-07 15:00"), RESOLVED_LATE], {}, False, ()),
    ("withdrawn before the appointment: judged on time", [("dossier.withdrawn", "2025-07-08 09:00")], {}, True,
     ("withdrawn",)),
    ("withdrawn after it: late", [("dossier.withdrawn", "2025-07-09 09:00")], {}, False, ("withdrawn",)),
    ("stopped: its instant ends it", [("dossier.stopped", "2025-07-09 09:00")], {}, False, ()),
    ("no end by the cut: the cut ends it", [], {}, False, ("open_at_cut",)),
    ("the receipt's appointment wins over the computed due", [("dossier.resolved", "2025-07-10 09:00")],
     {"due_at": "2025-07-10T17:00:00+07:00"}, True, ()),
])
def test_the_portal_judges_each_rule(name, steps, options, on_time, reasons):
    j = judged(*steps, **options)
    assert (j.on_time, j.reasons) == (on_time, reasons), name


def test_the_numbers_of_a_subtracted_supplement():
    j = judged(("dossier.supplement_requested", "2025-07-07 11:00"), ("dossier.supplement_received", "2025-07-10 11:00"),
               ("dossier.resolved", "2025-07-11 09:00"))
    assert (j.end, j.effective_end, j.appointment) == (at("2025-07-11 09:00"), at("2025-07-08 09:00"),
                                                       at("2025-07-08 10:00"))


def test_an_obligation_pause_resumes_with_the_working_hours_it_had_left():
    j = judged(("dossier.obligation_requested", "2025-07-07 11:00"), ("dossier.obligation_fulfilled", "2025-07-10 09:00"))
    # 11:00 Monday → 10:00 Tuesday is 7 working hours; from Thursday 09:00 they end at 17:00.
    assert j.appointment == at("2025-07-10 17:00")


def test_a_pause_begun_after_the_appointment_moves_nothing():
    j = judged(("dossier.obligation_requested", "2025-07-08 11:00"), ("dossier.obligation_fulfilled", "2025-07-09 09:00"),
               ("dossier.resolved", "2025-07-09 10:00"))
    assert j.appointment == at("2025-07-08 10:00") and not j.on_time


def test_a_supplement_returned_after_the_cut_is_still_awaited_at_it():
    steps = (("dossier.supplement_requested", "2025-07-08 09:00"), ("dossier.supplement_received", "2025-08-04 09:00"),
             ("dossier.resolved", "2025-08-05 09:00"))
    in_august = judged(*steps, to=date(2025, 8, 31))
    assert in_august.reasons == ("supplement_subtracted",) and in_august.end == at("2025-08-05 09:00")
    in_july = judged(*steps, as_of="2025-08-10 09:00", to=date(2025, 7, 31))
    assert in_july.end == at("2025-07-08 09:00") and in_july.on_time and in_july.reasons == ("supplement_awaited",)


@pytest.mark.parametrize("as_of, on_time", [("2025-07-08 09:59", True), ("2025-07-08 10:01", False)])
def test_an_as_of_before_the_period_end_is_the_cut(as_of, on_time):
    j = judged(as_of=as_of)
    assert j.end == at(as_of) and j.on_time is on_time


def test_the_cut_is_the_period_end_when_as_of_is_later():
    assert cut_of(TO, at("2025-09-01 00:00"), CAL) == CAL.end_of_day(TO)
    j = judged(("dossier.resolved", "2025-08-02 09:00"), to=date(2025, 7, 7))  # not resolved by the cut
    assert j.end == CAL.end_of_day(date(2025, 7, 7)) and j.on_time


def test_a_dossier_not_received_by_the_cut_cannot_be_judged():
    with pytest.raises(ValueError):
        judge_portal(life(), at("2025-07-07 09:00"), CAL)


@pytest.mark.parametrize("steps, decree, reasons", [
    ([RESOLVED_LATE], "in_time", ("same_day",)),
    ([("dossier.supplement_requested", "2025-07-07 11:00"), ("dossier.supplement_received", "2025-07-10 11:00"),
      ("dossier.resolved", "2025-07-11 11:00")], "in_time", ("supplement_subtracted", "same_day")),
    ([("dossier.withdrawn", "2025-07-09 09:00")], "not_judged", ("withdrawn",)),
    ([("dossier.supplement_requested", "2025-07-08 11:00")], "not_judged", ("supplement_awaited",)),
    ([("dossier.resolved", "2025-07-08 09:00")], "in_time", None),
    ([("dossier.supplement_requested", "2025-07-08 09:00")], "not_judged", None),  # the portal: on time
])
def test_the_views_disagree_with_a_reason(steps, decree, reasons):
    timeline = life(*steps)
    cut = cut_of(TO, at("2025-08-15 09:00"), CAL)
    assert judge_decree(timeline[-1], cut, CAL) == decree
    assert disagreement(decree, judge_portal(timeline, cut, CAL), CAL) == reasons
