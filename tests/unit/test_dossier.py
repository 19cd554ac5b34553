"""docs/domain.md §2-§4: the fold of a dossier's events, as tables and properties."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.sample import event
from shared.calendar import WorkingCalendar
from shared.dossier import fold
from shared.facts import facts_as_of, open_state, open_state_changes
from shared.events import parse_event

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()
CODE = "000.00.38.H56-250707-0001"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN)


def ev(type_: str, time: str, id_: str | None = None, **data):
    return parse_event(event(type_, subject=CODE, time=at(time), id_=id_, **data))


def received(time: str = "2025-07-07 10:00", hours: float = 8, **data):
    return ev("dossier.received", time, id_="r", processing_time={"value": hours, "unit": "working_hours"}, **data)


def dossier(*events, as_of=None):
    return fold(events, CAL, as_of=at(as_of) if as_of else None).dossier


@pytest.mark.parametrize(
    ("time", "hours", "due"),
    [
        ("2025-07-07 10:00", 8, "2025-07-08 10:00"),  # docs/domain.md §3's example
        ("2025-07-04 17:30", 8, "2025-07-07 17:00"),  # after hours: from Monday 08:00
        ("2025-07-07 16:59", 1, "2025-07-08 08:59"),
        ("2025-07-07 08:00", 4, "2025-07-07 12:00"),  # ends at a window's end
        ("2025-01-29 09:00", 8, "2025-02-03 17:00"),  # received on Tết
    ],
)
def test_initial_due(time, hours, due):
    d = dossier(received(time, hours))
    assert (d.state, d.due_at, d.appointment_at) == ("processing", at(due), at(due))


def test_the_receipt_appointment_wins_over_the_computed_due():
    d = dossier(received(hours=8, due_at="2025-07-10T17:00:00+07:00"))
    assert d.due_at == at("2025-07-10 17:00")


def test_processing_time_in_days():
    d = dossier(ev("dossier.received", "2025-07-07 10:00", processing_time={"value": 0.5, "unit": "working_days"}))
    assert d.due_at == at("2025-07-07 15:00")


@pytest.mark.parametrize(
    ("end_type", "end", "timeliness"),
    [
        ("dossier.resolved", "2025-07-07 16:00", "early"),  # date before the due's date
        ("dossier.resolved", "2025-07-08 16:59", "on_time"),  # same date, even after the due's hour
        ("dossier.resolved", "2025-07-09 08:00", "late"),
        ("dossier.returned", "2025-07-08 09:00", "on_time"),  # returned without resolved ends it too
        ("dossier.stopped", "2025-07-09 09:00", "late"),
    ],
)
def test_timeliness_compares_local_dates_of_end_and_due(end_type, end, timeliness):
    d = dossier(received(), ev(end_type, end))  # due Tue 8/7 10:00
    assert (d.ended_at, d.timeliness) == (at(end), timeliness)


def test_the_end_is_the_earliest_of_resolved_and_returned():
    d = dossier(received(), ev("dossier.resolved", "2025-07-08 09:00"), ev("dossier.returned", "2025-07-10 09:00"))
    assert (d.state, d.ended_at, d.timeliness) == ("returned", at("2025-07-08 09:00"), "on_time")


@pytest.mark.parametrize(
    ("instant", "open_state"),
    [
        ("2025-07-07 10:30", "due_soon"),  # due Tue 10:00: within 24 h
        ("2025-07-08 16:00", "due_soon"),  # past the hour but the same date: not yet overdue
        ("2025-07-09 00:00", "overdue"),  # the next local date
    ],
)
def test_open_state(instant, open_state):
    assert dossier(received()).open_state(at(instant), CAL) == open_state


def test_within_deadline_more_than_24_hours_ahead():
    d = dossier(received(hours=40))  # due Mon 14/7 10:00
    assert d.open_state(at("2025-07-11 09:00"), CAL) == "within_deadline"
    assert d.open_state(at("2025-07-13 10:01"), CAL) == "due_soon"


def test_a_supplement_stops_the_clock_and_restarts_it_from_zero():
    # Received Mon 10:00 with 16 h (due Wed 10:00); supplement asked Tue, received Thu 14:00.
    history = [
        received(hours=16, due_at="2025-07-09T10:00:00+07:00"),
        ev("dossier.supplement_requested", "2025-07-08 09:00", reason="Thiếu giấy chứng sinh"),
    ]
    waiting = dossier(*history)
    assert (waiting.state, waiting.due_at, waiting.missing) == ("awaiting_supplement", None, "Thiếu giấy chứng sinh")
    assert waiting.open_state(at("2025-07-20 09:00"), CAL) == "awaiting_supplement"
    d = dossier(*history, ev("dossier.supplement_received", "2025-07-10 14:00"))
    # From Thu 14:00, 16 h: Thu 3 h, Fri 8 h, Mon 5 h -> Mon 14/7 14:00; the receipt's due_at no longer applies.
    assert (d.state, d.due_at, d.appointment_at) == ("processing", at("2025-07-14 14:00"), at("2025-07-14 14:00"))


def test_an_obligation_pauses_the_clock_with_the_working_time_left():
    # Due Tue 8/7 10:00; paused Mon 15:00 with Mon 15-17 + Tue 08-10 = 4 h left.
    history = [received(), ev("dossier.obligation_requested", "2025-07-07 15:00", amount=50000)]
    paused = dossier(*history)
    assert (paused.state, paused.paused_remaining) == ("paused", timedelta(hours=4))
    assert paused.open_state(at("2025-07-30 09:00"), CAL) == "paused"
    d = dossier(*history, ev("dossier.obligation_fulfilled", "2025-07-10 16:00"))
    assert (d.state, d.due_at) == ("processing", at("2025-07-11 11:00"))  # Thu 1 h + Fri 3 h


def test_an_obligation_after_the_due_passed_leaves_the_due_unchanged():
    history = [
        received(),
        ev("dossier.obligation_requested", "2025-07-09 09:00"),
        ev("dossier.obligation_fulfilled", "2025-07-15 09:00"),
    ]
    d = dossier(*history)
    assert d.due_at == at("2025-07-08 10:00")
    assert d.open_state(at("2025-07-15 10:00"), CAL) == "overdue"


def test_ending_while_paused_is_judged_as_if_the_clock_resumed_then():
    history = [received(), ev("dossier.obligation_requested", "2025-07-07 15:00"), ev("dossier.stopped", "2025-07-21 09:00", reason="x")]
    d = dossier(*history)
    assert (d.due_at, d.timeliness) == (at("2025-07-21 14:00"), "on_time")  # 4 h left from Mon 21/7 09:00: 3 h + 1 h


@pytest.mark.parametrize(
    ("apology_at", "compliant"),
    [
        ("2025-07-07 15:00", True),  # the day before the due's date
        ("2025-07-08 08:00", False),  # the due's own date: too late
    ],
)
def test_apology_compliance(apology_at, compliant):
    d = dossier(
        received(),
        ev("dossier.apology_issued", apology_at, new_due_at="2025-07-10T17:00:00+07:00", reason="Cần xác minh"),
    )
    assert (d.apologies_compliant, d.apologies_non_compliant) == (int(compliant), int(not compliant))
    assert d.appointment_at == at("2025-07-10 17:00")
    assert d.due_at == at("2025-07-08 10:00")  # timeliness is still judged against the due in force


def test_only_the_first_apology_counts_a_second_is_a_violation():
    d = dossier(
        received(hours=40),
        ev("dossier.apology_issued", "2025-07-08 09:00", id_="a1", new_due_at="2025-07-16T17:00:00+07:00", reason="x"),
        ev("dossier.apology_issued", "2025-07-09 09:00", id_="a2", new_due_at="2025-07-18T17:00:00+07:00", reason="y"),
    )
    assert (d.apologies_compliant, d.apologies_non_compliant) == (1, 1)


def test_counters_for_the_indicators():
    d = dossier(
        received(channel="online", online_level="full"),
        ev("dossier.digitized", "2025-07-07 09:55", scope="input"),  # minutes before the receipt: still counts
        ev("dossier.payment_completed", "2025-07-07 10:05", id_="p1", method="offline", amount=1),
        ev("dossier.payment_completed", "2025-07-07 10:06", id_="p2", method="online", amount=1),
        ev("dossier.rated", "2025-07-08 11:00", id_="s1", rating="unsatisfied"),
        ev("dossier.rated", "2025-07-08 12:00", id_="s2", rating="satisfied"),
    )
    assert (d.received.channel, d.received.online_level, d.payment_method, d.digitized, d.rating) == (
        "online", "full", "online", True, "satisfied"
    )
    assert [s.type for s in d.history][:2] == ["dossier.digitized", "dossier.received"]


def test_withdrawn_is_apart_and_final():
    folded = fold([received(), ev("dossier.withdrawn", "2025-07-07 11:00"), ev("dossier.resolved", "2025-07-07 12:00")], CAL)
    d = folded.dossier
    assert (d.state, d.withdrawn_at, d.ended_at, d.timeliness) == ("withdrawn", at("2025-07-07 11:00"), None, None)
    assert d.open_state(at("2025-07-07 11:30"), CAL) is None
    assert [(r.event.type, r.reason) for r in folded.rejected] == [
        ("dossier.resolved", "dossier.resolved cannot follow state withdrawn")
    ]


@pytest.mark.parametrize(
    ("history", "rejected"),
    [
        ([("dossier.supplement_received", "2025-07-07 11:00")], "dossier.supplement_received cannot follow state processing"),
        ([("dossier.obligation_fulfilled", "2025-07-07 11:00")], "dossier.obligation_fulfilled cannot follow state processing"),
        ([("dossier.resolved", "2025-07-07 11:00"), ("dossier.withdrawn", "2025-07-07 12:00")],
         "dossier.withdrawn cannot follow state resolved"),
        ([("dossier.resolved", "2025-07-07 09:00")], "dossier.resolved at 2025-07-07T09:00:00+07:00 is before the dossier was received"),
    ],
)
def test_impossible_transitions_are_rejected_with_a_reason(history, rejected):
    events = [received()] + [ev(t, time, id_=f"e{i}", reason="x") if t == "dossier.withdrawn" else ev(t, time, id_=f"e{i}")
                             for i, (t, time) in enumerate(history)]
    folded = fold(events, CAL)
    assert [r.reason for r in folded.rejected] == [rejected]


def test_a_second_receipt_is_rejected():
    second = ev("dossier.received", "2025-07-07 11:00", id_="r2")
    assert [r.reason for r in fold([received(), second], CAL).rejected] == [
        "the dossier was already received at 2025-07-07T10:00:00+07:00"
    ]


def test_events_without_a_receipt_wait_for_it():
    early = ev("dossier.resolved", "2025-07-08 09:00")
    folded = fold([early], CAL)
    assert folded.dossier is None and folded.waiting == (early,)


def test_as_of_ignores_later_events():
    history = [received(), ev("dossier.resolved", "2025-07-09 09:00")]
    assert dossier(*history, as_of="2025-07-08 12:00").state == "processing"
    assert dossier(*history, as_of="2025-07-09 09:00").timeliness == "late"
    assert fold(history, CAL, as_of=at("2025-07-07 09:00")).dossier is None


def test_a_duplicate_changes_nothing_and_the_first_arrival_wins():
    first = ev("dossier.rated", "2025-07-08 10:00", id_="dup", rating="very_satisfied")
    again = ev("dossier.rated", "2025-07-08 10:00", id_="dup", rating="unsatisfied")
    assert dossier(received(), first, again) == dossier(received(), first)


def test_simultaneous_events_apply_in_arrival_order():
    a = ev("dossier.rated", "2025-07-08 10:00", id_="a", rating="unsatisfied")
    b = ev("dossier.rated", "2025-07-08 10:00", id_="b", rating="satisfied")
    assert dossier(received(), a, b).rating == "satisfied"
    assert dossier(received(), b, a).rating == "unsatisfied"


# A whole life, in time order, with distinct times: any arrival order gives the same fold.
LIFE = [
    received(hours=16),
    ev("dossier.digitized", "2025-07-07 10:05", scope="input"),
    ev("dossier.transferred", "2025-07-07 10:30", from_unit="Một cửa", to_unit="Tư pháp"),
    ev("dossier.supplement_requested", "2025-07-07 15:00", reason="Thiếu giấy"),
    ev("dossier.supplement_received", "2025-07-08 09:00"),
    ev("dossier.obligation_requested", "2025-07-08 14:00", amount=50000),
    ev("dossier.payment_completed", "2025-07-09 08:30", method="online", amount=50000),
    ev("dossier.obligation_fulfilled", "2025-07-09 09:00"),
    ev("dossier.apology_issued", "2025-07-09 10:00", new_due_at="2025-07-14T17:00:00+07:00", reason="x"),
    ev("dossier.resolved", "2025-07-10 16:00"),
    ev("dossier.withdrawn", "2025-07-10 16:30", reason="too late to withdraw"),  # rejected
    ev("dossier.returned", "2025-07-11 09:00", method="direct"),
    ev("dossier.rated", "2025-07-11 09:30", rating="very_satisfied"),
]


@settings(max_examples=200)
@given(st.permutations(LIFE), st.lists(st.sampled_from(LIFE), max_size=6))
def test_any_arrival_order_with_duplicates_folds_to_the_same_dossier(order, duplicates):
    expected = fold(LIFE, CAL)
    folded = fold([*order, *duplicates], CAL)
    assert folded.dossier == expected.dossier
    assert [r.event.id for r in folded.rejected] == [r.event.id for r in expected.rejected]


def test_the_whole_life():
    folded = fold(LIFE, CAL)
    d = folded.dossier
    assert d.state == "returned"
    assert d.ended_at == at("2025-07-10 16:00")
    # Supplement at Tue 09:00 restarts 16 h: due Thu 10/7 09:00. Paused Tue 14:00 with 12 h left
    # (Tue 3 + Wed 8 + Thu 1); resumed Wed 09:00 -> Wed 7 + Thu 5 -> due Thu 10/7 14:00.
    # Resolved Thu 16:00: the same date -> on time.
    assert (d.due_at, d.timeliness) == (at("2025-07-10 14:00"), "on_time")
    assert (d.apologies_compliant, d.apologies_non_compliant) == (1, 0)
    assert [r.event.type for r in folded.rejected] == ["dossier.withdrawn"]
    assert len(d.history) == len(LIFE) - 1


# The timeline: the Facts in force at any instant are those of the fold as of that instant.
INSTANTS = st.datetimes(min_value=datetime(2025, 7, 6), max_value=datetime(2025, 7, 13)).map(
    lambda t: t.replace(tzinfo=VN)
)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(LIFE), min_size=1), INSTANTS)
def test_the_timeline_at_any_instant_is_the_fold_as_of_that_instant(events, instant):
    timeline = fold(events, CAL).timeline
    as_of = fold(events, CAL, as_of=instant).dossier
    in_force = facts_as_of(timeline, instant)
    if as_of is None or as_of.received_at > instant:
        assert in_force is None
    else:
        assert in_force == as_of.facts(in_force.since)


def test_the_timeline_has_one_entry_per_change_of_what_the_figures_count():
    timeline = fold(LIFE, CAL).timeline
    # The transfer changes who holds the dossier (where dossiers wait); the rejected withdrawal
    # changes nothing; the digitization at 10:05 is its own instant.
    assert [(f.since, f.state) for f in timeline] == [
        (at("2025-07-07 10:00"), "processing"),
        (at("2025-07-07 10:05"), "processing"),
        (at("2025-07-07 10:30"), "processing"),
        (at("2025-07-07 15:00"), "awaiting_supplement"),
        (at("2025-07-08 09:00"), "processing"),
        (at("2025-07-08 14:00"), "paused"),
        (at("2025-07-09 08:30"), "paused"),
        (at("2025-07-09 09:00"), "processing"),
        (at("2025-07-09 10:00"), "processing"),
        (at("2025-07-10 16:00"), "resolved"),
        (at("2025-07-11 09:00"), "returned"),
        (at("2025-07-11 09:30"), "returned"),
    ]


def test_open_state_changes_with_time_alone():
    due = at("2025-07-08 10:00")
    assert open_state_changes("processing", due, CAL) == [
        (at("2025-07-07 10:00"), "due_soon"), (at("2025-07-09 00:00"), "overdue"),
    ]
    for instant, expected in (("2025-07-07 09:59", "within_deadline"), ("2025-07-07 10:00", "due_soon"),
                              ("2025-07-08 23:59", "due_soon"), ("2025-07-09 00:00", "overdue")):
        assert open_state("processing", due, at(instant), CAL) == expected
    assert open_state_changes("paused", due, CAL) == []


@pytest.mark.parametrize(
    ("before", "apology_at", "compliant"),
    [
        # Ended: judged against the due at the end (Tue 8/7 10:00 here).
        ([ev("dossier.resolved", "2025-07-07 16:00")], "2025-07-07 17:00", True),
        ([ev("dossier.resolved", "2025-07-07 16:00")], "2025-07-08 09:00", False),
        ([ev("dossier.resolved", "2025-07-07 16:00"), ev("dossier.returned", "2025-07-09 09:00")],
         "2025-07-10 09:00", False),
        # Awaiting a supplement: the due if it came now (8 working hours from the apology).
        ([ev("dossier.supplement_requested", "2025-07-07 11:00", reason="x")], "2025-07-09 09:00", True),
        # Withdrawn: the due in force when withdrawn; none while a supplement was awaited.
        ([ev("dossier.withdrawn", "2025-07-07 11:00")], "2025-07-07 15:00", True),
        ([ev("dossier.supplement_requested", "2025-07-07 11:00", reason="x"), ev("dossier.withdrawn", "2025-07-07 12:00")],
         "2025-07-07 15:00", False),
        # Dated before the receipt: judged against the receipt's due.
        ([], "2025-07-07 09:00", True),
    ],
)
def test_an_apology_is_applied_in_every_state_and_judged_by_the_date_rule(before, apology_at, compliant):
    apology = ev("dossier.apology_issued", apology_at, new_due_at="2025-07-20T17:00:00+07:00", reason="x")
    folded = fold([received(), *before, apology], CAL)
    state = fold([received(), *before], CAL).dossier.state
    assert folded.rejected == ()
    d = folded.dossier
    assert (d.apologies_compliant, d.apologies_non_compliant) == (int(compliant), int(not compliant))
    assert d.state == state and d.due_at == fold([received(), *before], CAL).dossier.due_at  # no state nor due moves


@settings(max_examples=100)
@given(st.permutations(LIFE), st.sampled_from([e.time for e in LIFE]))
def test_an_apology_anywhere_in_a_life_is_never_rejected(order, when):
    apology = ev("dossier.apology_issued", when.astimezone(VN).strftime("%Y-%m-%d %H:%M"), id_="late-apology",
                 new_due_at="2025-07-20T17:00:00+07:00", reason="x")
    assert "late-apology" not in {r.event.id for r in fold([*order, apology], CAL).rejected}


def test_a_transfer_says_who_holds_the_dossier_from_then_on():
    timeline = fold(LIFE, CAL).timeline
    assert [(f.since, f.unit) for f in timeline[1:3]] == [(at("2025-07-07 10:05"), None),
                                                         (at("2025-07-07 10:30"), "Tư pháp")]
    assert timeline[-1].unit == "Tư pháp"


@pytest.mark.parametrize("late_by, synced", [(timedelta(minutes=3), 1), (timedelta(minutes=15), 1),
                                             (timedelta(minutes=16), 0), (timedelta(days=40), 0)])
def test_the_events_that_reached_intake_in_time_are_counted(late_by, synced):
    r = received()
    arrived = r.model_copy(update={"intaketime": (r.time + late_by).isoformat()})
    d = fold([arrived, ev("dossier.digitized", "2025-07-07 10:05", scope="input")], CAL).dossier
    assert (d.arrivals, d.arrivals_synced) == (1, synced)  # the digitization's arrival is not known


def test_the_receipts_v1_2_facts_are_the_dossiers():
    """docs/contract.md §10: components, VNeID, population data and fees, as the scorecard will count them."""
    folded = fold([received(components=[{"code": "TP1", "digitized": True}, {"code": "TP2", "reused": True}],
                            vneid_authenticated=True, fees=[{"code": "LP1", "amount": 8000}, {"amount": 2000}])],
                  CAL)
    r = folded.dossier.received
    assert (r.component_digitized, r.component_reused, r.component_from_personal_store) == (True, True, False)
    assert (r.vneid_authenticated, r.population_data, r.fees_total) == (True, False, 10000)
    assert dossier(received()).received.fees_total == 0  # the sample's one `fee`
    assert dossier(received(fee=None)).received.fees_total is None


def test_a_result_a_gateway_and_a_step_due_are_facts_from_their_instant_on():
    folded = fold([
        received(),
        ev("dossier.transferred", "2025-07-07 11:00", step_due_at="2025-07-07T16:00:00+07:00"),
        ev("dossier.payment_completed", "2025-07-07 11:30", method="online", gateway="province"),
        ev("dossier.resolved", "2025-07-07 15:00"),
        ev("dossier.result_issued", "2025-07-07 15:05"),
    ], CAL)
    by_step = {facts.since: facts for facts in folded.timeline}
    assert by_step[at("2025-07-07 11:00")].step_due_at == at("2025-07-07 16:00")
    assert by_step[at("2025-07-07 11:30")].payment_gateway == "province"
    assert not by_step[at("2025-07-07 15:00")].result_issued
    last = folded.timeline[-1]
    assert (last.result_issued, last.result_sent_to_personal_store) == (True, True)
    assert folded.rejected == ()


def test_a_result_is_not_issued_for_a_withdrawn_dossier():
    folded = fold([received(), ev("dossier.withdrawn", "2025-07-07 11:00"),
                   ev("dossier.result_issued", "2025-07-07 12:00")], CAL)
    assert [r.event.type for r in folded.rejected] == ["dossier.result_issued"]


def test_an_inferred_step_that_cannot_apply_is_left_out_not_rejected():
    """docs/dvcqg.md: the portal's format implies a step without its instant; intake marks it `intakeinferred`."""
    fulfilled = ev("dossier.obligation_fulfilled", "2025-07-07 15:00", id_="inferred")
    inferred = fulfilled.model_copy(update={"intakeinferred": True})
    folded = fold([received(), inferred, ev("dossier.resolved", "2025-07-07 15:00")], CAL)
    assert (folded.rejected, folded.dossier.state) == ((), "resolved")
    assert [r.event.id for r in fold([received(), fulfilled], CAL).rejected] == ["inferred"]
