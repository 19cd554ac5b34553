"""The QĐ 766/QĐ-TTg scorecard as the decision scores it, over what dossier events can measure, and
the points each commune is about to lose (docs/domain.md §6).

Pure: the caller counts a commune's cohort (`Counts`, from shared.report's report and the dossiers'
signatures and event arrivals) and its open dossiers (`OpenDossier`).

A sub-indicator scores min(max, max × ratio ÷ full marks). The score is the points of the scored
sub-indicators over their maxima, scaled to 100. A sub-indicator is not scored when the deployment
says it does not apply (end-to-end online is scored for provinces only) or when its ratio has no
denominator (no payment, nothing resolved); the events cannot measure the decision's others at all.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.report import rate

GROUPS = {  # the decision's five groups and their points (100 in all)
    "publicity": ("Công khai, minh bạch", 18),
    "progress": ("Tiến độ giải quyết", 20),
    "online": ("Dịch vụ công trực tuyến", 22),
    "satisfaction": ("Mức độ hài lòng", 18),
    "digitization": ("Số hóa hồ sơ", 22),
}


@dataclass(frozen=True)
class SubIndicator:
    key: str
    name: str
    group: str
    max_points: float
    full_marks_at: float = 1.0  # the ratio that earns every point


MEASURED = (
    SubIndicator("on_time", "Giải quyết hồ sơ đúng hạn", "progress", 20),
    SubIndicator("end_to_end_online", "Dịch vụ công trực tuyến toàn trình", "online", 12),
    SubIndicator("online_payment", "Thanh toán trực tuyến", "online", 10),
    SubIndicator("dossier_satisfaction", "Mức độ hài lòng về giải quyết hồ sơ", "satisfaction", 6, full_marks_at=0.9),
    SubIndicator("electronic_result", "Kết quả giải quyết điện tử (ký số)", "digitization", 6),
    SubIndicator("digitized_dossier", "Số hóa thành phần hồ sơ", "digitization", 4),
    SubIndicator("status_sync", "Đồng bộ trạng thái hồ sơ (ước tính)", "publicity", 6),
)
NOT_MEASURED = (
    SubIndicator("complaints", "Xử lý phản ánh, kiến nghị (PAKN)", "satisfaction", 12),
    SubIndicator("publication", "Công khai thủ tục hành chính", "publicity", 12),
    SubIndicator("data_reuse", "Tái sử dụng dữ liệu, kho dữ liệu cá nhân", "digitization", 12),
)
NOT_MEASURED_NOTE = ("Not in the dossier events. Where a unit has no complaints (PAKN), the national portal "
                     "shares their points between PAKN on time and dossier satisfaction: not measured here either.")
# Scored for provinces only, by the portal's scoring sheet: a commune gets its maximum, so it is
# reported here but left out of a commune's score (DOSSIER_METRICS_NOT_APPLICABLE).
COMMUNE_NOT_APPLICABLE = frozenset({"end_to_end_online"})


@dataclass(frozen=True)
class Counts:
    """What a commune's cohort counts for the scorecard (docs/domain.md §5-§6)."""

    received: int = 0
    withdrawn: int = 0
    judged: int = 0  # received − withdrawn − awaiting a supplement − paused
    in_time: int = 0  # ended early or on time, or open and not overdue
    online_full: int = 0
    payments: int = 0
    payments_online: int = 0
    satisfied: int = 0  # not withdrawn, with neither an `unsatisfied` rating nor a late end
    resolved: int = 0  # ended with a result (resolved, then maybe returned)
    signed_valid: int = 0  # of those, with a result whose signature verified `valid`
    digitized: int = 0
    events: int = 0  # events that reached intake (the ones with their arrival recorded)
    events_synced: int = 0  # of those, in sync with their time (shared.dossier.SYNC)


def ratios(c: Counts) -> dict[str, float | None]:
    return {
        "on_time": rate(c.in_time, c.judged),
        "end_to_end_online": rate(c.online_full, c.received),
        "online_payment": rate(c.payments_online, c.payments),
        "dossier_satisfaction": rate(c.satisfied, c.received - c.withdrawn),
        "electronic_result": rate(c.signed_valid, c.resolved),
        "digitized_dossier": rate(c.digitized, c.received),
        "status_sync": rate(c.events_synced, c.events),
    }


def points(indicator: SubIndicator, ratio: float) -> float:
    return min(indicator.max_points, indicator.max_points * ratio / indicator.full_marks_at)


def score_of(c: Counts, not_applicable: frozenset[str] = COMMUNE_NOT_APPLICABLE) -> float | None:
    """The score alone: points of the scored sub-indicators over their maxima, × 100."""
    earned = maxima = 0.0
    for indicator, ratio in zip(MEASURED, ratios(c).values(), strict=True):
        if ratio is not None and indicator.key not in not_applicable:
            earned += points(indicator, ratio)
            maxima += indicator.max_points
    return 100 * earned / maxima if maxima else None


def scorecard(c: Counts, not_applicable: frozenset[str] = COMMUNE_NOT_APPLICABLE) -> dict[str, Any]:
    """A commune's card: every sub-indicator with its ratio and points (or why it is not scored),
    the groups' points, what the events cannot measure, and the score."""
    sub = []
    for indicator, ratio in zip(MEASURED, ratios(c).values(), strict=True):
        if indicator.key in not_applicable:
            status = "not_applicable"
        elif ratio is None:
            status = "no_data"
        else:
            status = "scored"
        sub.append({"key": indicator.key, "name": indicator.name, "group": indicator.group,
                    "max": indicator.max_points, "full_marks_at": indicator.full_marks_at, "ratio": ratio,
                    "points": points(indicator, ratio) if status == "scored" else None, "status": status})
    groups = []
    for key, (name, maximum) in GROUPS.items():
        scored = [s for s in sub if s["group"] == key and s["status"] == "scored"]
        groups.append({"key": key, "name": name, "max": maximum, "measured_max": sum(s["max"] for s in scored),
                       "points": sum(s["points"] for s in scored)})
    return {
        "score": score_of(c, not_applicable),
        "groups": groups,
        "sub_indicators": sub,
        "not_measured": [{"key": n.key, "name": n.name, "group": n.group, "points": n.max_points}
                         for n in NOT_MEASURED],
    }


def rank(scores: dict[str, float | None]) -> dict[str, int]:
    """Competition ranking, best first, equal scores sharing a rank (1, 2, 2, 4); those without a score
    share the last rank."""
    ordered = sorted(scores.items(), key=lambda item: (item[1] is None, -(item[1] or 0), item[0]))
    ranks: dict[str, int] = {}
    for n, (code, value) in enumerate(ordered, start=1):
        previous = ordered[n - 2] if n > 1 else None
        ranks[code] = ranks[previous[0]] if previous and previous[1] == value else n
    return ranks


# -- points at risk ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class OpenDossier:
    """An open dossier of the cohort, as the at-risk reading needs it."""

    code: str
    open_state: str  # within_deadline | due_soon | overdue | awaiting_supplement | paused
    due_at: datetime | None
    hours_left: float | None  # working hours from the instant to the due; None without a due (or past the horizon)
    unsatisfied: bool  # rated `unsatisfied` already: a late end costs no satisfaction point more


def at_risk(c: Counts, open_dossiers: Iterable[OpenDossier], horizon: datetime,
            not_applicable: frozenset[str] = COMMUNE_NOT_APPLICABLE, top: int = 20) -> dict[str, Any]:
    """The score if every open dossier ends in time, the score if every open dossier due by `horizon`
    turns late, and the dossiers that would cost the most points, soonest due first.

    The figures already count an open dossier within its deadline as in time: ending in time, one
    awaiting a supplement or a payment would count in time too, and nothing else changes. By the
    horizon, from today's counts, a dossier in time whose due passes turns late (tiến độ and
    satisfaction), and an overdue one ends late (satisfaction: it is already out of tiến độ); a
    dossier without a due (a supplement, a payment awaited) cannot turn late before it resumes. So
    the first score is never below today's, the second never above. A dossier's points are what its
    turning late alone would cost today's score."""
    dossiers = list(open_dossiers)
    stopped = sum(d.open_state in ("awaiting_supplement", "paused") for d in dossiers)
    best = replace(c, judged=c.judged + stopped, in_time=c.in_time + stopped)
    turning = [d for d in dossiers if d.due_at is not None and d.due_at <= horizon
               and d.open_state in ("within_deadline", "due_soon", "overdue")]
    worst = c
    for d in turning:
        worst = _late(worst, d)
    today, best_score, worst_score = (score_of(x, not_applicable) for x in (c, best, worst))
    costs = []
    for d in turning:
        alone = score_of(_late(c, d), not_applicable)
        cost = today - alone if today is not None and alone is not None else 0.0
        costs.append({"dossier_code": d.code, "due_at": d.due_at.isoformat(), "open_state": d.open_state,
                      "hours_left": round(d.hours_left, 2) if d.hours_left is not None else None,
                      "points": round(cost, 4)})
    costs.sort(key=lambda row: (-row["points"], row["due_at"], row["dossier_code"]))  # the same order from any input
    return {
        "score_if_all_in_time": best_score,
        "score_if_due_turn_late": worst_score,
        "points_at_risk": best_score - worst_score if best_score is not None and worst_score is not None else 0.0,
        "open": len(dossiers),
        "due_by_horizon": len(turning),
        "dossiers": costs[:top],
    }


def _late(c: Counts, d: OpenDossier) -> Counts:
    """The counts if `d`, counted in time or open so far, ends late."""
    return replace(c, in_time=c.in_time - (d.open_state != "overdue"), satisfied=c.satisfied - (not d.unsatisfied))
