"""The QĐ 766/QĐ-TTg scorecard as the national portal computes it, over what dossier and feedback events
can measure, and the points each commune is about to lose (docs/domain.md §6).

Pure: the caller counts a commune (`Counts`: each sub-indicator's numerator and denominator, from its
dossiers and its feedback) and its open dossiers (`OpenDossier`).

A sub-indicator scores min(max, max × ratio ÷ full marks). The score is the points of the scored
sub-indicators over their maxima, scaled to 100. A sub-indicator is not scored when the deployment
says it does not apply (the province-scope ones, for a commune) or when its ratio has no denominator
(no fee-bearing dossier, no feedback): "no data". What no event can measure is named with its points.
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Literal

from shared.report import rate

GROUPS = {  # the decision's groups, as the portal's scoring sheet splits them (100 points in all)
    "publicity": ("Công khai, minh bạch", 18),
    "progress": ("Tiến độ, kết quả giải quyết", 20),
    "online": ("Cung cấp dịch vụ trực tuyến", 12),
    "payment": ("Thanh toán trực tuyến", 10),
    "digitization": ("Số hóa hồ sơ", 22),
    "satisfaction": ("Mức độ hài lòng", 18),
}


@dataclass(frozen=True)
class SubIndicator:
    key: str
    code: str  # the portal's: its formula document's number, or its METRICS sheet's name
    name: str
    group: str
    max_points: float
    full_marks_at: float = 1.0  # the ratio that earns every point
    scope: Literal["commune", "province"] = "commune"


MEASURED = (
    SubIndicator("dossier_sync", "DOSSIER_SYNC", "Hồ sơ đồng bộ đúng hạn", "publicity", 6),
    SubIndicator("on_time", "2.1", "Tỷ lệ hồ sơ xử lý trước hạn, đúng hạn", "progress", 20),
    SubIndicator("end_to_end_online", "3.1", "Hồ sơ trực tuyến toàn trình", "online", 12, scope="province"),
    SubIndicator("online_payment", "3.6", "Tỷ lệ hồ sơ thanh toán trực tuyến", "payment", 10),
    SubIndicator("electronic_result", "4.1", "Hồ sơ có kết quả giải quyết điện tử", "digitization", 6),
    SubIndicator("digitized_dossier", "4.2", "Hồ sơ thực hiện số hóa", "digitization", 4, full_marks_at=0.8),
    SubIndicator("reused_data", "4.3", "Khai thác, sử dụng lại dữ liệu số hóa", "digitization", 2, full_marks_at=0.8),
    SubIndicator("personal_store", "4.4", "Kết nối kho dữ liệu cá nhân", "digitization", 4),
    SubIndicator("population_data", "4.5", "Ứng dụng dữ liệu dân cư", "digitization", 2, scope="province"),
    SubIndicator("feedback_on_time", "5.2", "Tiến độ xử lý phản ánh, kiến nghị", "satisfaction", 6),
    SubIndicator("feedback_satisfaction", "5.3", "Hài lòng trong xử lý phản ánh, kiến nghị", "satisfaction", 6),
    SubIndicator("dossier_satisfaction", "5.4", "Hài lòng trong tiếp nhận, giải quyết TTHC", "satisfaction", 6,
                 full_marks_at=0.9),
)
NOT_MEASURED = (  # facts about procedures and their publication, not about dossiers
    SubIndicator("published_on_time", "1.1", "TTHC công bố đúng hạn", "publicity", 6),
    SubIndicator("updated_on_time", "1.2", "TTHC cập nhật, công khai đúng hạn", "publicity", 4),
    SubIndicator("published_complete", "1.3", "TTHC công khai đầy đủ bộ phận tạo thành", "publicity", 2),
    SubIndicator("certified_copies", "CHUNG_THUC", "Chứng thực bản sao điện tử", "digitization", 2),
    SubIndicator("population_procedures", "TTHC_DAN_CU", "TTHC kết nối, chia sẻ dữ liệu dân cư", "digitization", 2),
)
NOT_MEASURED_NOTE = "Facts about procedures and their publication (the national TTHC database), not about dossiers."
# Scored for provinces only (the portal's scoring sheet): reported for a commune, left out of its score.
COMMUNE_NOT_APPLICABLE = frozenset(s.key for s in MEASURED if s.scope == "province")


@dataclass(frozen=True, slots=True)
class Tally:
    numerator: int = 0
    denominator: int = 0

    @property
    def ratio(self) -> float | None:
        return rate(self.numerator, self.denominator)


@dataclass(frozen=True)
class Counts:
    """What a commune's cohort counts for each sub-indicator (docs/domain.md §6), as of an instant."""

    dossier_sync: Tally = Tally()
    on_time: Tally = Tally()  # on time by the portal's 2.1 ÷ received
    end_to_end_online: Tally = Tally()
    online_payment: Tally = Tally()
    electronic_result: Tally = Tally()
    digitized_dossier: Tally = Tally()
    reused_data: Tally = Tally()
    personal_store: Tally = Tally()
    population_data: Tally = Tally()
    feedback_on_time: Tally = Tally()
    feedback_satisfaction: Tally = Tally()
    unhappy: int = 0  # dossiers rated unsatisfied or named by a feedback (5.4)

    @property
    def received(self) -> int:
        return self.on_time.denominator

    @property
    def late(self) -> int:
        return self.on_time.denominator - self.on_time.numerator


def tallies(c: Counts) -> dict[str, Tally]:
    """Every measured sub-indicator's numerator and denominator. 5.4 = max(0, 1 − (late rate + unhappy
    rate)), both over the dossiers received: (received − late − unhappy, at least 0) ÷ received."""
    found = {f.name: getattr(c, f.name) for f in fields(c) if f.name != "unhappy"}
    found["dossier_satisfaction"] = Tally(max(0, c.received - c.late - c.unhappy), c.received)
    return found


def points(indicator: SubIndicator, ratio: float) -> float:
    return min(indicator.max_points, indicator.max_points * ratio / indicator.full_marks_at)


def score_of(c: Counts, not_applicable: frozenset[str] = COMMUNE_NOT_APPLICABLE) -> float | None:
    """The score alone: points of the scored sub-indicators over their maxima, × 100."""
    earned = maxima = 0.0
    found = tallies(c)
    for indicator in MEASURED:
        ratio = found[indicator.key].ratio
        if ratio is not None and indicator.key not in not_applicable:
            earned += points(indicator, ratio)
            maxima += indicator.max_points
    return 100 * earned / maxima if maxima else None


def scorecard(c: Counts, not_applicable: frozenset[str] = COMMUNE_NOT_APPLICABLE) -> dict[str, Any]:
    """A commune's card: every sub-indicator with its numerator, denominator, ratio and points (or why it
    is not scored), the groups' points, what the events cannot measure, and the score."""
    sub = []
    for indicator, tally in ((s, tallies(c)[s.key]) for s in MEASURED):
        ratio = tally.ratio
        status = "not_applicable" if indicator.key in not_applicable else "no_data" if ratio is None else "scored"
        sub.append({"key": indicator.key, "code": indicator.code, "name": indicator.name, "group": indicator.group,
                    "scope": indicator.scope, "max": indicator.max_points, "full_marks_at": indicator.full_marks_at,
                    "numerator": tally.numerator, "denominator": tally.denominator, "ratio": ratio,
                    "points": points(indicator, ratio) if status == "scored" else None, "status": status})
    next(s for s in sub if s["key"] == "dossier_satisfaction")["parts"] = {"late": c.late, "unhappy": c.unhappy}
    groups = []
    for key, (name, maximum) in GROUPS.items():
        scored = [s for s in sub if s["group"] == key and s["status"] == "scored"]
        groups.append({"key": key, "name": name, "max": maximum, "measured_max": sum(s["max"] for s in scored),
                       "points": sum(s["points"] for s in scored)})
    return {
        "score": score_of(c, not_applicable),
        "measured_max": sum(g["measured_max"] for g in groups),
        "groups": groups,
        "sub_indicators": sub,
        "not_measured": [{"key": n.key, "code": n.code, "name": n.name, "group": n.group, "points": n.max_points}
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
    """An open dossier of the cohort, as the at-risk reading needs it (the portal's 2.1)."""

    code: str
    open_state: str  # by the decree: within_deadline | due_soon | overdue | awaiting_supplement | paused
    due_at: datetime | None  # when it turns late for the portal: None if it cannot before it moves on
    hours_left: float | None  # working hours from the instant to the due; None without a due (or past the horizon)
    on_time: bool  # counted on time by 2.1 today


def at_risk(c: Counts, open_dossiers: Iterable[OpenDossier], horizon: datetime,
            not_applicable: frozenset[str] = COMMUNE_NOT_APPLICABLE, top: int = 20) -> dict[str, Any]:
    """The score if every open dossier ends in time, the score if every open dossier due by `horizon`
    turns late, and the dossiers that would cost the most points, soonest due first.

    By the portal's 2.1, an open dossier is already judged: on time until its appointment (plus the
    supplement time it is owed) passes, late after. Ending in time keeps today's score; by the horizon, a
    dossier on time whose due passes turns late, which costs 2.1 and 5.4 points (5.4 counts the late rate).
    A dossier awaiting its one supplement or paused for a financial obligation cannot turn late meanwhile.
    A dossier's points are what its turning late alone would cost today's score."""
    dossiers = list(open_dossiers)
    turning = [d for d in dossiers if d.on_time and d.due_at is not None and d.due_at <= horizon]
    worst = replace(c, on_time=Tally(c.on_time.numerator - len(turning), c.on_time.denominator))
    today, worst_score = score_of(c, not_applicable), score_of(worst, not_applicable)
    one_late = score_of(replace(c, on_time=Tally(c.on_time.numerator - 1, c.on_time.denominator)), not_applicable)
    cost = today - one_late if today is not None and one_late is not None else 0.0
    costs = [{"dossier_code": d.code, "due_at": d.due_at.isoformat(), "open_state": d.open_state,
              "hours_left": round(d.hours_left, 2) if d.hours_left is not None else None, "points": round(cost, 4)}
             for d in turning if d.due_at is not None]
    costs.sort(key=lambda row: (row["due_at"], row["dossier_code"]))  # each costs the same: soonest first
    return {
        "score_if_all_in_time": today,
        "score_if_due_turn_late": worst_score,
        "points_at_risk": today - worst_score if today is not None and worst_score is not None else 0.0,
        "open": len(dossiers),
        "due_by_horizon": len(turning),
        "dossiers": costs[:top],
    }
