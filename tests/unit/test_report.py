"""docs/domain.md §5-§6: the cohort report and the scorecard, against hand-computed tables."""

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.sample import event
from shared.calendar import WorkingCalendar
from shared.dossier import fold
from shared.events import parse_event
from shared.report import commune_report, rank, score

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()
AS_OF = datetime(2025, 7, 15, 12, 0, tzinfo=VN)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN)


def dossier(code_seq: int, received: str, steps=(), days: float = 1, as_of: datetime = AS_OF, **receipt):
    code = f"000.00.38.H56-250707-{code_seq:04d}"
    events = [event("dossier.received", code, at(received), processing_time={"value": days, "unit": "working_days"},
                    **receipt)]
    events += [event(t, code, at(time), **data) for t, time, data in steps]
    return fold([parse_event(e) for e in events], CAL, as_of=as_of).dossier


ONLINE_FULL = {"channel": "online", "online_level": "full"}
ONLINE_PARTIAL = {"channel": "online", "online_level": "partial"}
DIRECT = {"channel": "direct", "online_level": None}
POSTAL = {"channel": "postal", "online_level": None}

# Received Monday 7/7/2025 10:00 with 1 working day: due Tuesday 8/7 10:00.
COHORT = [
    dossier(1, "2025-07-07 10:00", [("dossier.resolved", "2025-07-07 16:00", {})], **DIRECT),  # early
    dossier(2, "2025-07-07 10:00", [
        ("dossier.digitized", "2025-07-07 10:05", {}),
        ("dossier.resolved", "2025-07-08 15:00", {}),  # on the due's date: on time
        ("dossier.payment_completed", "2025-07-08 15:10", {"method": "online"}),
        ("dossier.rated", "2025-07-08 16:00", {"rating": "very_satisfied"}),
    ], **ONLINE_FULL),
    dossier(3, "2025-07-07 10:00", [("dossier.resolved", "2025-07-10 09:00", {}),  # late
                                    ("dossier.digitized", "2025-07-07 11:00", {})], **ONLINE_PARTIAL),
    dossier(4, "2025-07-07 10:00", [("dossier.withdrawn", "2025-07-07 11:00", {})], **POSTAL),
    dossier(5, "2025-07-08 09:00", [("dossier.digitized", "2025-07-08 09:00", {})], **ONLINE_FULL),  # overdue now
    dossier(6, "2025-07-14 09:00", days=5, **DIRECT),  # within deadline at 15/7 12:00
    dossier(7, "2025-07-14 09:00", days=0.5, **DIRECT),  # due 14/7 14:00: overdue on 15/7
    dossier(8, "2025-07-09 09:00", [("dossier.supplement_requested", "2025-07-09 10:00", {})], **ONLINE_FULL),
    dossier(9, "2025-07-09 09:00", [
        ("dossier.obligation_requested", "2025-07-09 10:00", {}),
        ("dossier.payment_completed", "2025-07-09 10:30", {"method": "offline"}),
        ("dossier.rated", "2025-07-09 11:00", {"rating": "unsatisfied"}),
    ], **DIRECT),
    dossier(10, "2025-07-15 08:00", days=0.5, **ONLINE_FULL),  # due 15/7 12:00 = as_of: due soon
    dossier(11, "2025-06-30 09:00", **DIRECT),  # before the cohort
    dossier(12, "2025-07-15 13:00", **DIRECT, as_of=AS_OF + timedelta(hours=2)),  # after as_of
    dossier(13, "2025-07-10 09:00", [("dossier.resolved", "2025-07-15 13:00", {})], **DIRECT),  # ends after as_of
]


def test_the_cohort_report_as_of_an_instant():
    report = commune_report([d for d in COHORT if d], date(2025, 7, 1), date(2025, 7, 31), AS_OF, CAL)
    assert report == {
        "received": 11,  # 1-10 and 13: 11 is before the cohort, 12 after as_of
        "by_channel": {"direct": 5, "online": 5, "postal": 1},
        "online_full": 4,
        "completed": {"early": 1, "on_time": 1, "late": 1},
        "withdrawn": 1,
        "open": {"within_deadline": 1, "due_soon": 1, "overdue": 3, "awaiting_supplement": 1, "paused": 1},
        "payments": {"online": 1, "offline": 1},
        "digitized": 3,
        "ratings": {"very_satisfied": 1, "satisfied": 0, "unsatisfied": 1},
        "apologies": {"compliant": 0, "non_compliant": 0},
        "received_elsewhere": 0,
        "rates": {
            "online": 5 / 11,
            "online_full": 4 / 11,
            "on_time": (1 + 1 + 1 + 1) / (11 - 1 - 1 - 1),  # early, on time, within, due soon / judged
            "online_payment": 1 / 2,
            "digitization": 3 / 11,
            "satisfaction": 1 / 2,
        },
    }


def test_a_dossier_another_centre_took_counts_for_its_commune_and_as_received_elsewhere():
    """v1.2 (CONTRACT §10, NĐ 118): `received_by_unit` names the centre that took it."""
    own = dossier(1, "2025-07-14 09:00", **DIRECT)
    elsewhere = dossier(2, "2025-07-14 09:00", received_by_unit="000.00.12.H56", **DIRECT)
    report = commune_report([own, elsewhere], date(2025, 7, 1), date(2025, 7, 31), AS_OF, CAL)
    assert (report["received"], report["received_elsewhere"]) == (2, 1)
    assert elsewhere.received.received_by_unit == "000.00.12.H56"


def test_an_empty_cohort_has_null_rates():
    report = commune_report([], date(2025, 7, 1), date(2025, 7, 31), AS_OF, CAL)
    assert report["received"] == 0
    assert set(report["rates"].values()) == {None}


def test_the_seed_check_of_ba_thuoc():
    """docs/domain.md §5: 5,932 received, 5,825 early or on time, 106 open within deadline, 1 overdue."""
    as_of = datetime(2025, 11, 11, 17, 0, tzinfo=VN)
    resolved = dossier(1, "2025-07-01 08:00", [("dossier.resolved", "2025-07-01 15:00", {})], as_of=as_of, **DIRECT)
    open_ = dossier(2, "2025-11-11 09:00", days=5, as_of=as_of, **DIRECT)
    overdue = dossier(3, "2025-11-03 09:00", as_of=as_of, **DIRECT)
    cohort = [resolved] * 5825 + [open_] * 106 + [overdue]
    report = commune_report(cohort, date(2025, 7, 1), date(2025, 11, 11), as_of, CAL)
    assert report["received"] == 5932
    assert report["completed"]["early"] + report["completed"]["on_time"] == 5825
    assert (report["open"]["within_deadline"], report["open"]["overdue"]) == (106, 1)
    assert report["rates"]["on_time"] == 5931 / 5932


def rates(**values):
    return {"rates": {k: None for k in ("online", "online_full", "on_time", "online_payment", "digitization",
                                        "satisfaction")} | values}


def test_the_scorecard_counts_what_applies_and_names_what_it_leaves_out():
    card = score(rates(on_time=1.0, online_full=0.5, online_payment=None, satisfaction=0.81, digitization=1.0))
    # 20 + 6 + (6 × 0.81/0.9 = 5.4) + 6 = 37.4 of the 44 applicable points (no payments: left out).
    assert card["points"] == {"progress": 20, "online_service": 6, "online_payment": None,
                              "satisfaction": pytest.approx(5.4), "digitization": 6}
    assert card["applicable_max"] == 44
    assert card["score"] == pytest.approx(100 * 37.4 / 44)
    assert card["left_out"][0] == "Thanh toán trực tuyến"


def test_satisfaction_has_full_marks_from_90_percent():
    assert score(rates(satisfaction=0.95))["points"]["satisfaction"] == 6


def test_communes_are_ranked_best_first_ties_by_code_no_score_last():
    ranked = rank({"14923": {"score": 90.0}, "14900": {"score": 95.0}, "14950": {"score": None},
                   "14901": {"score": 90.0}})
    assert [(r["rank"], r["of"], r["commune_code"]) for r in ranked] == [
        (1, 4, "14900"), (2, 4, "14901"), (3, 4, "14923"), (4, 4, "14950")
    ]


def test_a_cohort_counts_only_dossiers_folded_as_of_its_instant():
    """A dossier folded later than as_of would leak its later end: the caller folds as of as_of."""
    d = COHORT[12]
    assert (d.state, d.timeliness) == ("processing", None)
    later = replace(d, state="resolved", timeliness="early", ended_at=at("2025-07-15 13:00"))
    assert later.open_state(AS_OF, CAL) is None
