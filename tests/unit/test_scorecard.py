"""The QĐ 766 scorecard (shared.scorecard), computed by hand: sub-indicators, groups, the score over
what is measured, ranks with ties, and the points at risk."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.scorecard import COMMUNE_NOT_APPLICABLE, Counts, OpenDossier, at_risk, rank, score_of, scorecard

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2025, 11, 11, 17, 0, tzinfo=VN)

# 100 received, 2 withdrawn; 96 judged (2 awaiting a supplement), 92 in time; 40 payments, 30 online;
# 90 satisfied of 98; 80 resolved, 60 with a valid signature; 99 digitized; 500 events, 450 in sync.
BASE = Counts(received=100, withdrawn=2, judged=96, in_time=92, online_full=50, payments=40, payments_online=30,
              satisfied=90, resolved=80, signed_valid=60, digitized=99, events=500, events_synced=450)


def sub(card: dict, key: str) -> dict:
    return next(s for s in card["sub_indicators"] if s["key"] == key)


@pytest.mark.parametrize("key, ratio, points", [
    ("on_time", 92 / 96, 20 * 92 / 96),
    ("online_payment", 30 / 40, 7.5),
    ("dossier_satisfaction", 90 / 98, 6.0),  # 91.8 % ≥ 90 %: full marks
    ("electronic_result", 60 / 80, 4.5),
    ("digitized_dossier", 0.99, 3.96),
    ("status_sync", 0.9, 5.4),
])
def test_each_sub_indicator_scores_its_max_times_its_ratio(key, ratio, points):
    s = sub(scorecard(BASE), key)
    assert s["status"] == "scored" and s["ratio"] == pytest.approx(ratio) and s["points"] == pytest.approx(points)


@pytest.mark.parametrize("satisfied, points", [(88, 6.0), (44, 3.0), (0, 0.0), (98, 6.0)])  # of 98
def test_dossier_satisfaction_earns_full_marks_from_90_percent(satisfied, points):
    s = sub(scorecard(Counts(received=100, withdrawn=2, satisfied=satisfied)), "dossier_satisfaction")
    assert s["ratio"] == pytest.approx(satisfied / 98) and s["points"] == pytest.approx(min(6, 6 * satisfied / 98 / 0.9))


def test_end_to_end_online_is_reported_but_not_scored_for_a_commune_unless_the_deployment_says():
    commune = sub(scorecard(BASE), "end_to_end_online")
    assert (commune["status"], commune["ratio"], commune["points"]) == ("not_applicable", 0.5, None)
    assert sub(scorecard(BASE, frozenset()), "end_to_end_online")["points"] == 6.0


def test_the_score_is_the_measured_points_over_the_measured_maxima():
    earned = 20 * 92 / 96 + 7.5 + 6 + 4.5 + 3.96 + 5.4
    assert score_of(BASE) == pytest.approx(100 * earned / (20 + 10 + 6 + 6 + 4 + 6))
    card = scorecard(BASE)
    groups = {g["key"]: g for g in card["groups"]}
    assert {k: g["max"] for k, g in groups.items()} == {"publicity": 18, "progress": 20, "online": 22,
                                                        "satisfaction": 18, "digitization": 22}
    assert groups["digitization"]["measured_max"] == 10 and groups["digitization"]["points"] == pytest.approx(8.46)
    assert groups["online"]["measured_max"] == 10  # end-to-end online not scored for a commune
    assert {n["key"]: n["points"] for n in card["not_measured"]} == {"complaints": 12, "publication": 12,
                                                                     "data_reuse": 12}


def test_a_sub_indicator_without_a_denominator_is_left_out_of_the_points_and_the_maxima():
    counts = Counts(received=10, judged=10, in_time=10, satisfied=10, digitized=10)  # no payment, nothing resolved
    card = scorecard(counts)
    assert sub(card, "online_payment")["status"] == "no_data" and sub(card, "electronic_result")["points"] is None
    assert sub(card, "status_sync")["status"] == "no_data"  # no arrival known
    assert card["score"] == pytest.approx(100.0)  # 20 + 6 + 4 of 30
    assert score_of(Counts()) is None


def test_ranks_share_ties_and_skip_after_them():
    assert rank({"a": 90.0, "b": 80.0, "c": 80.0, "d": 70.0, "e": None}) == {"a": 1, "b": 2, "c": 2, "d": 4, "e": 5}
    assert rank({"x": 50.0, "y": 50.0}) == {"x": 1, "y": 1}
    assert rank({"a": 90.0, "b": None, "c": None}) == {"a": 1, "b": 2, "c": 2}  # no score: last, together


def open_dossier(code: str, state: str, due_in_hours: float | None, unsatisfied: bool = False) -> OpenDossier:
    due = NOW + timedelta(hours=due_in_hours) if due_in_hours is not None else None
    return OpenDossier(code, state, due, max(0.0, due_in_hours) if due_in_hours is not None else None, unsatisfied)


def test_points_at_risk_with_and_without_a_horizon():
    # 10 received: 6 ended in time, 1 overdue, 2 within their deadline (due in 5 h and in 200 h),
    # 1 awaiting a supplement; all satisfied so far; no payment, nothing resolved, no arrival.
    counts = Counts(received=10, judged=9, in_time=8, satisfied=10, digitized=10)
    opened = [open_dossier("late", "overdue", -10), open_dossier("soon", "within_deadline", 5),
              open_dossier("later", "within_deadline", 200), open_dossier("sup", "awaiting_supplement", None)]

    def expect(in_time: int, judged: int, satisfied: int) -> float:  # on time 20, satisfaction 6, digitized 4
        return 100 * (20 * in_time / judged + min(6, 6 * satisfied / 10 / 0.9) + 4) / 30

    today = score_of(counts)
    assert today == pytest.approx(expect(8, 9, 10))
    by_tomorrow = at_risk(counts, opened, NOW + timedelta(hours=24))
    # All in time: the supplement's dossier counts in time too. By the horizon, from today: the
    # overdue one ends late (satisfaction), the one due in 5 h turns late (both); the one due in
    # 200 h is safe; the supplement's has no due.
    assert by_tomorrow["score_if_all_in_time"] == pytest.approx(expect(9, 10, 10))
    assert by_tomorrow["score_if_due_turn_late"] == pytest.approx(expect(7, 9, 8))
    assert by_tomorrow["points_at_risk"] == pytest.approx(expect(9, 10, 10) - expect(7, 9, 8))
    costs = {d["dossier_code"]: d["points"] for d in by_tomorrow["dossiers"]}
    assert costs == {"soon": pytest.approx(today - expect(7, 9, 9), abs=1e-4),
                     "late": pytest.approx(today - expect(8, 9, 9), abs=1e-4)}
    assert [d["dossier_code"] for d in by_tomorrow["dossiers"]] == ["soon", "late"]  # the costliest first
    by_quarter_end = at_risk(counts, opened, NOW + timedelta(days=60))
    assert by_quarter_end["score_if_due_turn_late"] == pytest.approx(expect(6, 9, 7))
    assert by_quarter_end["due_by_horizon"] == 3


OPEN_STATES = st.sampled_from(["within_deadline", "due_soon", "overdue", "awaiting_supplement", "paused"])


@st.composite
def cohorts(draw) -> tuple[Counts, list[OpenDossier]]:
    """A consistent cohort: ended dossiers and open ones, counted as the figures count them."""
    ended_in_time, ended_late, withdrawn = (draw(st.integers(0, 30)) for _ in range(3))
    states = draw(st.lists(OPEN_STATES, max_size=12))
    opened = [open_dossier(f"d{n}", s, None if s in ("awaiting_supplement", "paused") else
                           draw(st.floats(-100, 500)) if s != "overdue" else -5, draw(st.booleans()))
              for n, s in enumerate(states)]
    in_time_open = sum(s in ("within_deadline", "due_soon") for s in states)
    stopped = sum(s in ("awaiting_supplement", "paused") for s in states)
    received = ended_in_time + ended_late + withdrawn + len(states)
    unsatisfied_ended = draw(st.integers(0, ended_in_time))
    counts = Counts(received=received, withdrawn=withdrawn, judged=received - withdrawn - stopped,
                    in_time=ended_in_time + in_time_open,
                    satisfied=ended_in_time - unsatisfied_ended + sum(not d.unsatisfied for d in opened),
                    payments=draw(st.integers(0, 5)), digitized=draw(st.integers(0, received)))
    return counts, opened


@given(cohorts(), st.floats(0, 1000))
def test_all_in_time_is_never_below_today_nor_today_below_all_late(cohort, hours):
    counts, opened = cohort
    found = at_risk(counts, opened, NOW + timedelta(hours=hours))
    today = score_of(counts)
    if today is None:
        return
    assert found["score_if_all_in_time"] >= today - 1e-9 >= found["score_if_due_turn_late"] - 2e-9
    assert all(d["points"] >= -1e-9 for d in found["dossiers"])


def test_commune_default_leaves_end_to_end_online_out():
    assert COMMUNE_NOT_APPLICABLE == frozenset({"end_to_end_online"})
