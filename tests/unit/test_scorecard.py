"""The QĐ 766 scorecard as the portal computes it (shared.scorecard), by hand: every sub-indicator's
numerator, denominator, ratio and points, the groups, the score over what is measured, ranks with ties,
and the points at risk by the portal's 2.1."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.scorecard import (COMMUNE_NOT_APPLICABLE, GROUPS, MEASURED, NOT_MEASURED, Counts, OpenDossier, Tally,
                              at_risk, rank, score_of, scorecard)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2025, 11, 11, 17, 0, tzinfo=VN)

# 100 received: 90 on time by 2.1; 3 unhappy (an `unsatisfied` rating or a complaint).
BASE = Counts(
    dossier_sync=Tally(45, 50), on_time=Tally(90, 100), end_to_end_online=Tally(30, 60), online_payment=Tally(30, 40),
    electronic_result=Tally(60, 80), digitized_dossier=Tally(70, 100), reused_data=Tally(20, 100),
    personal_store=Tally(50, 100), population_data=Tally(80, 100), feedback_on_time=Tally(4, 5),
    feedback_satisfaction=Tally(3, 4), unhappy=3)


def sub(card: dict, key: str) -> dict:
    return next(s for s in card["sub_indicators"] if s["key"] == key)


@pytest.mark.parametrize("key, numerator, denominator, points", [
    ("dossier_sync", 45, 50, 5.4),
    ("on_time", 90, 100, 18.0),
    ("online_payment", 30, 40, 7.5),
    ("electronic_result", 60, 80, 4.5),
    ("digitized_dossier", 70, 100, 3.5),  # 70 % of the 80 % that earns full marks
    ("reused_data", 20, 100, 0.5),
    ("personal_store", 50, 100, 2.0),
    ("feedback_on_time", 4, 5, 4.8),
    ("feedback_satisfaction", 3, 4, 4.5),
    ("dossier_satisfaction", 87, 100, 6 * 0.87 / 0.9),  # 1 − (10 late + 3 unhappy) / 100
])
def test_each_sub_indicator_gives_its_numerator_denominator_ratio_and_points(key, numerator, denominator, points):
    s = sub(scorecard(BASE), key)
    assert (s["status"], s["numerator"], s["denominator"]) == ("scored", numerator, denominator)
    assert s["ratio"] == pytest.approx(numerator / denominator) and s["points"] == pytest.approx(points)


@pytest.mark.parametrize("late, unhappy, points", [(0, 0, 6.0), (5, 5, 6.0), (10, 5, 6 * 0.85 / 0.9), (60, 50, 0.0)])
def test_dossier_satisfaction_is_one_less_the_late_and_unhappy_rates_full_at_90_percent(late, unhappy, points):
    s = sub(scorecard(Counts(on_time=Tally(100 - late, 100), unhappy=unhappy)), "dossier_satisfaction")
    assert s["points"] == pytest.approx(points) and s["parts"] == {"late": late, "unhappy": unhappy}
    assert s["numerator"] == max(0, 100 - late - unhappy)


def test_province_scope_rows_are_reported_but_not_scored_for_a_commune_unless_the_deployment_says():
    assert COMMUNE_NOT_APPLICABLE == frozenset({"end_to_end_online", "population_data"})
    commune = sub(scorecard(BASE), "end_to_end_online")
    assert (commune["status"], commune["ratio"], commune["points"]) == ("not_applicable", 0.5, None)
    assert sub(scorecard(BASE, frozenset()), "end_to_end_online")["points"] == 6.0
    assert sub(scorecard(BASE, frozenset()), "population_data")["points"] == pytest.approx(1.6)


def test_the_score_is_the_measured_points_over_the_measured_maxima():
    earned = 5.4 + 18 + 7.5 + 4.5 + 3.5 + 0.5 + 2 + 4.8 + 4.5 + 6 * 0.87 / 0.9
    card = scorecard(BASE)
    assert card["measured_max"] == 70  # a commune: 100 less the province's 14 and the 16 no event measures
    assert score_of(BASE) == pytest.approx(100 * earned / 70) == pytest.approx(card["score"])
    groups = {g["key"]: g for g in card["groups"]}
    assert {k: g["max"] for k, g in groups.items()} == {"publicity": 18, "progress": 20, "online": 12, "payment": 10,
                                                        "digitization": 22, "satisfaction": 18}
    assert groups["digitization"]["measured_max"] == 16 and groups["digitization"]["points"] == pytest.approx(10.5)
    assert groups["online"]["measured_max"] == 0  # end-to-end online is scored for provinces only
    assert sum(n["points"] for n in card["not_measured"]) == 16


def test_the_maxima_add_up_to_the_decisions_100_points_group_by_group():
    for key, (_, maximum) in GROUPS.items():
        assert sum(s.max_points for s in (*MEASURED, *NOT_MEASURED) if s.group == key) == maximum, key
    assert sum(maximum for _, maximum in GROUPS.values()) == 100


def test_a_ratio_without_a_denominator_is_no_data_left_out_of_the_points_and_the_maxima():
    # no fee, no feedback, nothing ended, no arrival known
    counts = Counts(on_time=Tally(10, 10), digitized_dossier=Tally(8, 10), reused_data=Tally(0, 10),
                    personal_store=Tally(0, 10))
    card = scorecard(counts)
    for key in ("online_payment", "electronic_result", "feedback_on_time", "feedback_satisfaction", "dossier_sync"):
        assert (sub(card, key)["status"], sub(card, key)["points"]) == ("no_data", None), key
    assert card["measured_max"] == 20 + 4 + 2 + 4 + 6  # 2.1, 4.2, 4.3, 4.4, 5.4
    assert card["score"] == pytest.approx(100 * (20 + 4 + 0 + 0 + 6) / 36)
    assert score_of(Counts()) is None


def test_ranks_share_ties_and_skip_after_them():
    assert rank({"a": 90.0, "b": 80.0, "c": 80.0, "d": 70.0, "e": None}) == {"a": 1, "b": 2, "c": 2, "d": 4, "e": 5}
    assert rank({"x": 50.0, "y": 50.0}) == {"x": 1, "y": 1}
    assert rank({"a": 90.0, "b": None, "c": None}) == {"a": 1, "b": 2, "c": 2}  # no score: last, together


def open_dossier(code: str, due_in_hours: float | None, on_time: bool = True, state: str = "within_deadline"
                 ) -> OpenDossier:
    due = NOW + timedelta(hours=due_in_hours) if due_in_hours is not None else None
    return OpenDossier(code, state, due, max(0.0, due_in_hours) if due_in_hours is not None else None, on_time)


def test_points_at_risk_by_the_portals_rule():
    # 10 received, 8 on time by 2.1 (2 open ones among them, due in 5 h and 200 h), 2 late (one open, overdue);
    # 1 awaiting its one supplement: on time, cannot turn late meanwhile.
    counts = Counts(on_time=Tally(8, 10), digitized_dossier=Tally(10, 10))
    opened = [open_dossier("late", -10, on_time=False, state="overdue"), open_dossier("soon", 5),
              open_dossier("later", 200), open_dossier("sup", None, state="awaiting_supplement")]

    def expect(on_time: int) -> float:  # 2.1 (20), 4.2 (4), 5.4 (6, full at 90 %)
        return 100 * (20 * on_time / 10 + 4 + min(6.0, 6 * (on_time / 10) / 0.9)) / 30

    by_tomorrow = at_risk(counts, opened, NOW + timedelta(hours=24))
    assert by_tomorrow["score_if_all_in_time"] == pytest.approx(expect(8)) == pytest.approx(score_of(counts))
    assert by_tomorrow["score_if_due_turn_late"] == pytest.approx(expect(7))
    assert by_tomorrow["points_at_risk"] == pytest.approx(expect(8) - expect(7))
    assert [(d["dossier_code"], d["points"]) for d in by_tomorrow["dossiers"]] == [
        ("soon", pytest.approx(expect(8) - expect(7), abs=1e-4))]
    by_quarter_end = at_risk(counts, opened, NOW + timedelta(days=60))
    assert by_quarter_end["score_if_due_turn_late"] == pytest.approx(expect(6))
    assert by_quarter_end["due_by_horizon"] == 2 and by_quarter_end["open"] == 4


@st.composite
def cohorts(draw) -> tuple[Counts, list[OpenDossier]]:
    """A consistent cohort: dossiers on time or late by 2.1, some of them open."""
    opened = [open_dossier(f"d{n}", draw(st.one_of(st.none(), st.floats(-100, 500))), draw(st.booleans()))
              for n in range(draw(st.integers(0, 12)))]
    on_time = draw(st.integers(0, 30)) + sum(d.on_time for d in opened)
    received = on_time + draw(st.integers(0, 30)) + sum(not d.on_time for d in opened)
    counts = Counts(on_time=Tally(on_time, received), unhappy=draw(st.integers(0, received)),
                    online_payment=Tally(draw(st.integers(0, 5)), 5))
    return counts, opened


@given(cohorts(), st.floats(0, 1000))
def test_all_in_time_is_today_and_never_below_all_late(cohort, hours):
    counts, opened = cohort
    found = at_risk(counts, opened, NOW + timedelta(hours=hours))
    today = score_of(counts)
    if today is None:
        return
    assert found["score_if_all_in_time"] == today >= found["score_if_due_turn_late"] - 1e-9
    assert all(d["points"] >= -1e-9 for d in found["dossiers"])
