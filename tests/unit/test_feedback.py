"""docs/domain.md §9: a PAKN's fold, its limits, and the counts of 5.2 and 5.3, as tables and properties."""

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.calendar import WorkingCalendar
from shared.events import parse_events
from shared.feedback import (FeedbackCounts, Period, Step, as_of, feedback_counts, fold, judged, owned, step_of)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()
HERE, THERE = "14923", "08152"
DOSSIER = "923.14.00.H38-250701-0001"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN)


def received(time: str, commune: str = HERE, dossier: str | None = None, n: str = "r") -> Step:
    return Step(n, "feedback.received", at(time), unit=f"unit-{commune}", commune_code=commune, dossier_code=dossier)


def step(type_: str, time: str, n: str | None = None, **fields) -> Step:
    return Step(n or f"{type_}@{time}", f"feedback.{type_}", at(time), **fields)


def counts(*pakn: tuple[str, list[Step]], first="2025-07-01", last="2025-07-31", as_of_="2025-12-31 00:00",
           commune=HERE) -> FeedbackCounts:
    period = Period.of(date.fromisoformat(first), date.fromisoformat(last), at(as_of_), CAL)
    return feedback_counts(pakn, commune, period, CAL)


# Tuesday 1/7/2025 09:00: 2 working days → Thu 3/7 09:00, 5 → Tue 8/7 09:00, 15 → Tue 22/7 09:00.
def test_dues_count_working_days_from_the_receipt():
    f = fold([received("2025-07-01 09:00")]).feedback
    assert f.dues(CAL) == {"reject": at("2025-07-03 09:00"), "supplement": at("2025-07-08 09:00"),
                           "answer": at("2025-07-22 09:00"), "publish": None}
    answered = fold([received("2025-07-01 09:00"), step("answered", "2025-07-04 16:00")]).feedback
    assert answered.dues(CAL)["publish"] == at("2025-07-08 16:00")  # Friday 16:00 + 2 working days


@pytest.mark.parametrize(("later", "at_", "verdict"), [
    ([step("answered", "2025-07-22 09:00")], "2025-12-31 00:00", "on_time"),  # at the limit: on time
    ([step("answered", "2025-07-22 09:01")], "2025-12-31 00:00", "late"),
    ([], "2025-07-22 09:00", "within"),
    ([], "2025-07-22 09:01", "late"),  # open past its 15 days
    ([step("rejected", "2025-07-03 09:00")], "2025-12-31 00:00", "on_time"),
    ([step("rejected", "2025-07-03 10:00")], "2025-12-31 00:00", "late"),  # 2 working days to reject
    ([step("supplement_requested", "2025-07-08 09:00")], "2025-12-31 00:00", "on_time"),  # awaited: handled
    ([step("supplement_requested", "2025-07-08 09:30")], "2025-12-31 00:00", "late"),
    ([step("supplement_requested", "2025-07-02 09:00"), step("supplement_received", "2025-07-10 09:00")],
     "2025-07-23 00:00", "late"),  # back to open: its 15 days still run from the receipt
    ([step("forwarded", "2025-07-15 09:00", unit="u2", commune_code=HERE)], "2025-07-30 00:00", "within"),
    ([step("answered", "2025-07-10 09:00"), step("published", "2025-07-30 09:00")], "2025-12-31 00:00", "on_time"),
])
def test_judged(later, at_, verdict):
    f = as_of([received("2025-07-01 09:00"), *later], "P1", at(at_))
    assert judged(f, at(at_), CAL) == verdict


def test_a_forwarding_moves_the_pakn_and_restarts_its_clock():
    f = fold([received("2025-07-01 09:00"), step("forwarded", "2025-07-10 09:00", unit="u2", commune_code=THERE),
              step("supplement_requested", "2025-07-11 09:00")]).feedback
    assert (f.unit, f.commune_code, f.clock_from, f.first_supplement_at) == (
        "u2", THERE, at("2025-07-10 09:00"), at("2025-07-11 09:00"))
    assert f.dues(CAL)["answer"] == at("2025-07-31 09:00")


@pytest.mark.parametrize(("steps", "reason"), [
    ([step("published", "2025-07-02 09:00")], "published before it was answered"),
    ([step("rated", "2025-07-02 09:00", rating="like")], "rated before it was answered"),
    ([received("2025-07-02 09:00", n="r2")], "the PAKN was received already"),
    ([step("answered", "2025-07-02 09:00"), step("forwarded", "2025-07-03 09:00", unit="u")],
     "feedback.forwarded after the PAKN was answered"),
    ([step("rejected", "2025-07-02 09:00"), step("answered", "2025-07-03 09:00")],
     "feedback.answered after the PAKN was rejected"),
    ([step("supplement_received", "2025-07-02 09:00")], "no supplement was requested"),
    ([step("answered", "2025-06-30 09:00")], "feedback.answered before the PAKN's receipt"),
])
def test_steps_that_cannot_apply_are_rejected_with_a_reason(steps, reason):
    folded = fold([received("2025-07-01 09:00"), *steps])
    assert [why for _, why in folded.rejected] == [reason]
    assert folded.feedback is not None


def test_without_a_receipt_nothing_applies_nor_is_rejected():
    folded = fold([step("answered", "2025-07-02 09:00")])
    assert (folded.feedback, folded.rejected) == (None, ())


def test_a_pakn_belongs_to_the_source_of_its_first_receipt_and_its_contributors():
    assert owned([("feedback.answered", "b", False), ("feedback.received", "a", False),
                  ("feedback.rated", "portal", True), ("feedback.received", "portal", True)]) == [
        "foreign source: b did not receive the PAKN (a did)", None, None,
        "foreign source: portal did not receive the PAKN (a did)"]


def test_events_become_steps_with_the_unit_commune_from_the_units_file():
    base = {"specversion": "1.0", "source": "urn:paknsys", "subject": "PAKN-1", "time": "2025-07-01T09:00:00+07:00"}
    events = parse_events([
        base | {"id": "1", "type": "feedback.received",
                "data": {"unit": "x", "commune_code": HERE, "dossier_code": DOSSIER, "channel": "portal"}},
        base | {"id": "2", "type": "feedback.forwarded", "data": {"from_unit": "x", "to_unit": "152.08.00.H25"}},
        base | {"id": "3", "type": "feedback.rated", "data": {"rating": "dislike"}}])
    steps = [step_of(e, {"152.08.00.H25": THERE}.get) for e in events]
    assert [(s.id, s.unit, s.commune_code, s.dossier_code, s.rating) for s in steps] == [
        ("urn:paknsys 1", "x", HERE, DOSSIER, None), ("urn:paknsys 2", "152.08.00.H25", THERE, None, None),
        ("urn:paknsys 3", None, None, None, "dislike")]


# -- 5.2, 5.3, complaints ---------------------------------------------------------------------------

def test_answered_on_time_counts_for_both():
    assert counts(("P1", [received("2025-07-01 09:00"), step("answered", "2025-07-21 09:00")])) == \
        FeedbackCounts(on_time=1, taken=1, satisfied=1, first_received=1)


def test_late_costs_both():
    assert counts(("P1", [received("2025-07-01 09:00"), step("answered", "2025-07-23 09:00")])) == \
        FeedbackCounts(on_time=0, taken=1, satisfied=0, first_received=1)


def test_open_within_at_the_period_end_is_on_time_and_past_it_is_late():
    pakn = ("P1", [received("2025-07-01 09:00")])
    assert counts(pakn, last="2025-07-10") == FeedbackCounts(1, 1, 1, 1)
    assert counts(pakn, last="2025-07-31") == FeedbackCounts(0, 1, 0, 1)
    # as_of before the period's end is the cut
    assert counts(pakn, last="2025-07-31", as_of_="2025-07-15 12:00") == FeedbackCounts(1, 1, 1, 1)


def test_handled_in_the_period_counts_for_5_2_not_5_3():
    pakn = ("P1", [received("2025-06-30 09:00"), step("answered", "2025-07-02 09:00")])
    assert counts(pakn) == FeedbackCounts(on_time=1, taken=1, satisfied=0, first_received=0)


def test_neither_received_nor_handled_in_the_period_is_not_counted():
    pakn = ("P1", [received("2025-06-02 09:00"), step("answered", "2025-06-10 09:00")])
    assert counts(pakn) == FeedbackCounts()


def test_counted_for_the_commune_of_the_unit_holding_it():
    pakn = ("P1", [received("2025-07-01 09:00", dossier=DOSSIER),
                   step("forwarded", "2025-07-02 09:00", unit="u2", commune_code=THERE)])
    assert counts(pakn, commune=THERE, last="2025-07-10") == FeedbackCounts(1, 1, 1, 1, frozenset({DOSSIER}))
    # the receiving commune no longer counts it, but the dossier it names is still a complaint there
    assert counts(pakn, commune=HERE, last="2025-07-10") == FeedbackCounts(complained=frozenset({DOSSIER}))
    # as of before the forwarding, it was the receiving commune's
    assert counts(pakn, commune=HERE, as_of_="2025-07-01 12:00").taken == 1


def test_disliked_more_than_liked_is_not_satisfied():
    base = [received("2025-07-01 09:00"), step("answered", "2025-07-02 09:00")]
    dislike = [step("rated", "2025-07-03 09:00", n="d1", rating="dislike"),
               step("rated", "2025-07-03 10:00", n="d2", rating="dislike")]
    like = step("rated", "2025-07-03 11:00", n="l1", rating="like")
    assert counts(("P1", base + dislike)).satisfied == 0
    assert counts(("P1", base + dislike[:1] + [like])).satisfied == 1  # as many likes: not "more"
    assert counts(("P1", base + dislike), as_of_="2025-07-03 08:30").satisfied == 1  # not yet rated at the cut


def test_a_new_pakn_naming_the_same_dossier_unsatisfies_the_earlier():
    first = ("P1", [received("2025-07-01 09:00", dossier=DOSSIER), step("answered", "2025-07-02 09:00")])
    again = ("P2", [received("2025-07-05 09:00", dossier=DOSSIER, n="r2")])
    assert counts(first, again) == FeedbackCounts(1, 2, 0, 2, frozenset({DOSSIER}))
    assert counts(first, again, as_of_="2025-07-04 00:00").satisfied == 1  # not yet followed at the cut


def test_a_pakn_another_commune_received_does_not_follow_up_this_communes():
    """Security review: any key could receive a PAKN in its own commune naming another commune's dossier,
    which marked that commune's PAKN about it "followed" (5.3). A follow-up is the commune's own."""
    first = ("P1", [received("2025-07-01 09:00", dossier=DOSSIER), step("answered", "2025-07-02 09:00")])
    elsewhere = ("P2", [received("2025-07-05 09:00", commune=THERE, dossier=DOSSIER, n="r2")])
    assert counts(first, elsewhere).satisfied == 1


def test_complaints_are_the_dossiers_named_by_the_cut():
    named = ("P1", [received("2025-07-20 09:00", dossier=DOSSIER)])
    assert counts(named).complained == frozenset({DOSSIER})
    assert counts(named, as_of_="2025-07-19 00:00").complained == frozenset()


# -- properties ------------------------------------------------------------------------------------

TYPES = ["forwarded", "supplement_requested", "supplement_received", "rejected", "answered", "published", "rated"]
START = at("2025-06-20 08:00")


@st.composite
def lives(draw, code: str = "P1") -> list[Step]:
    """A receipt and random later steps (some of which cannot apply), at distinct minutes."""
    minutes = draw(st.lists(st.integers(0, 60 * 24 * 60), min_size=1, max_size=9, unique=True))
    first = START + timedelta(minutes=minutes[0])
    steps = [Step(f"{code}-r", "feedback.received", first, unit="u", commune_code=draw(st.sampled_from([HERE, THERE])),
                  dossier_code=draw(st.sampled_from([None, DOSSIER, "923.14.00.H38-250701-0002"])))]
    for n, m in enumerate(minutes[1:]):
        type_ = draw(st.sampled_from(TYPES))
        steps.append(Step(f"{code}-{n}", f"feedback.{type_}", START + timedelta(minutes=m),
                          unit="u2" if type_ == "forwarded" else None,
                          commune_code=draw(st.sampled_from([HERE, THERE, None])) if type_ == "forwarded" else None,
                          rating=draw(st.sampled_from(["like", "dislike"])) if type_ == "rated" else None))
    return steps


@settings(max_examples=200, deadline=None)
@given(lives(), st.randoms())
def test_the_order_of_arrival_never_changes_the_fold(steps, rnd):
    shuffled = list(steps)
    rnd.shuffle(shuffled)
    assert fold(shuffled, "P1").feedback == fold(steps, "P1").feedback


def recount(pakn: list[tuple[str, list[Step]]], commune: str, period: Period) -> FeedbackCounts:
    """docs/domain.md §9 read plainly, one PAKN at a time, against every other."""
    def now(steps):
        return as_of(steps, "x", period.cut)

    def in_period(t):
        return t is not None and period.start <= t < period.end and t <= period.cut

    result = {"on_time": 0, "taken": 0, "satisfied": 0, "first_received": 0}
    complained = set()
    for code, steps in pakn:
        f = now(steps)
        if f is None:
            continue
        if f.dossier_code and (f.commune_code == commune or f.receiving_commune == commune):
            complained.add(f.dossier_code)
        if f.commune_code != commune:
            continue
        late = judged(f, period.cut, CAL) == "late"
        if in_period(f.clock_from) or in_period(f.handled_at()):
            result["taken"] += 1
            result["on_time"] += not late
        if in_period(f.received_at):
            result["first_received"] += 1
            followed = False
            for other_code, other in pakn:
                g = now(other)
                if other_code != code and g and f.dossier_code and g.dossier_code == f.dossier_code \
                        and g.received_at > f.received_at and commune in (g.commune_code, g.receiving_commune):
                    followed = True
            result["satisfied"] += not (f.dislikes > f.likes or followed or late)
    return FeedbackCounts(**result, complained=frozenset(complained))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 999), min_size=1, max_size=6, unique=True).flatmap(
    lambda ns: st.tuples(*(lives(f"P{n}") for n in ns))), st.sampled_from([HERE, THERE]),
    st.integers(0, 30), st.integers(5, 60), st.integers(5, 120))
def test_the_counts_equal_a_plain_recount(lives_, commune, first_day, days, as_of_days):
    pakn = [(f"P{n}", steps) for n, steps in enumerate(lives_)]
    first = date(2025, 6, 20) + timedelta(days=first_day)
    period = Period.of(first, first + timedelta(days=days), START + timedelta(days=as_of_days), CAL)
    assert feedback_counts(pakn, commune, period, CAL) == recount(pakn, commune, period)
    random.shuffle(pakn)
    assert feedback_counts(pakn, commune, period, CAL) == recount(pakn, commune, period)
