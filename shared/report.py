"""The indicators the seeds quote (docs/domain.md §5) and the QĐ 766 scorecard approximation (docs/domain.md §6).

Pure. `report_of` counts a cohort given as each dossier's receipt and its Facts as of `as_of` (the
metrics service reads them off its timelines); `commune_report` does the same from dossiers folded as
of `as_of` (shared.dossier.fold), the plain re-computation the tests compare with.
The JSON shape is the report API's (docs/contract.md §5).
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.calendar import WorkingCalendar
from shared.dossier import Dossier
from shared.facts import Facts, Received

Member = tuple[Received, Facts]  # a dossier of a cohort: what its receipt said, and its Facts as of the report

CHANNELS = ("direct", "online", "postal")
TIMELINESS = ("early", "on_time", "late")
OPEN_STATES = ("within_deadline", "due_soon", "overdue", "awaiting_supplement", "paused")
PAYMENT_METHODS = ("online", "offline")
RATINGS = ("very_satisfied", "satisfied", "unsatisfied")


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def progress(received: int, withdrawn: int, completed: Mapping[str, int], open_now: Mapping[str, int]
             ) -> tuple[int, int]:
    """766 tiến độ: (ended early or on time, or open and not overdue; those whose clock runs)."""
    return (completed["early"] + completed["on_time"] + open_now["within_deadline"] + open_now["due_soon"],
            received - withdrawn - open_now["awaiting_supplement"] - open_now["paused"])


def commune_report(
    dossiers: Iterable[Dossier], start: date, end: date, as_of: datetime, calendar: WorkingCalendar
) -> dict[str, Any]:
    """`report_of` the cohort received (local date) in [start, end] of dossiers folded as of `as_of`."""
    return report_of([(d.received, d.facts(d.received_at)) for d in dossiers
                      if start <= d.received_date <= end and d.received_at <= as_of], as_of, calendar)


def report_of(cohort: Iterable[Member], as_of: datetime, calendar: WorkingCalendar) -> dict[str, Any]:
    """Counts and rates over a cohort, as of `as_of`: one pass over it."""
    n: Counter[str] = Counter()
    for r, f in cohort:
        n["received"] += 1
        n[r.channel] += 1
        n["online_full"] += r.channel == "online" and r.online_level == "full"
        n["elsewhere"] += r.received_by_unit is not None
        for field in (f.timeliness, f.open_state(as_of, calendar), f.rating):
            if field:
                n[field] += 1
        if f.payment_method:
            n["pay_" + f.payment_method] += 1
        n["withdrawn"] += f.state == "withdrawn"
        n["digitized"] += f.digitized
        n["apologies_compliant"] += f.apologies_compliant
        n["apologies_non_compliant"] += f.apologies_non_compliant
    return report_from(n)


def report_from(n: Mapping[str, int]) -> dict[str, Any]:
    """The report of a cohort from its counts, named: `received`, each channel, `online_full`, `elsewhere`,
    each timeliness and open state, `withdrawn`, `pay_online`, `pay_offline`, `digitized`, each rating,
    `apologies_compliant`, `apologies_non_compliant` (what report_of counts, and the metrics service sums)."""
    received, withdrawn, paid = n["received"], n["withdrawn"], n["pay_online"] + n["pay_offline"]
    completed, open_now = {t: n[t] for t in TIMELINESS}, {s: n[s] for s in OPEN_STATES}
    ratings = {r: n[r] for r in RATINGS}
    in_time, judged = progress(received, withdrawn, completed, open_now)
    return {
        "received": received,
        "by_channel": {c: n[c] for c in CHANNELS},
        "online_full": n["online_full"],
        "completed": completed,
        "withdrawn": withdrawn,
        "open": open_now,
        "payments": {m: n["pay_" + m] for m in PAYMENT_METHODS},
        "digitized": n["digitized"],
        "ratings": ratings,
        "apologies": {
            "compliant": n["apologies_compliant"],
            "non_compliant": n["apologies_non_compliant"],
        },
        # v1.2: taken by another centre than the commune's own (NĐ 118); still the commune's figures.
        "received_elsewhere": n["elsewhere"],
        "rates": {
            "online": rate(n["online"], received),
            "online_full": rate(n["online_full"], received),
            "on_time": rate(in_time, judged),
            "online_payment": rate(n["pay_online"], paid),
            "digitization": rate(n["digitized"], received),
            "satisfaction": rate(ratings["very_satisfied"] + ratings["satisfied"], sum(ratings.values())),
        },
    }


@dataclass(frozen=True)
class Component:
    key: str
    name: str  # the QĐ 766 criterion
    max_points: float
    rate: str  # which report rate measures it
    full_marks_at: float = 1.0


# The part of the QĐ 766/QĐ-TTg index that dossier events can measure (docs/domain.md §6): 54 of 100 points.
COMPONENTS = (
    Component("progress", "Tiến độ giải quyết", 20, "on_time"),
    Component("online_service", "Dịch vụ công trực tuyến", 12, "online_full"),
    Component("online_payment", "Thanh toán trực tuyến", 10, "online_payment"),
    Component("satisfaction", "Mức độ hài lòng", 6, "satisfaction", full_marks_at=0.9),
    Component("digitization", "Số hóa hồ sơ", 6, "digitization"),
)
NOT_MEASURED = (
    "Công khai, minh bạch (publicity and transparency): not in the events",
    "the parts of Mức độ hài lòng and Số hóa hồ sơ beyond the event-measured rates",
)


def score(report: dict[str, Any]) -> dict[str, Any]:
    """Points per component (max × rate), summed over the applicable maximum and scaled to 100.

    A component whose rate has no denominator (no payments, no ratings) is not applicable: it is
    left out of both the points and the maximum, and named.
    """
    points: dict[str, float | None] = {}
    applicable = earned = 0.0
    for c in COMPONENTS:
        rate = report["rates"][c.rate]
        if rate is None:
            points[c.key] = None
            continue
        points[c.key] = c.max_points * min(1.0, rate / c.full_marks_at)
        applicable += c.max_points
        earned += points[c.key]
    return {
        "score": 100 * earned / applicable if applicable else None,
        "points": points,
        "applicable_max": applicable,
        "left_out": [c.name for c in COMPONENTS if points[c.key] is None] + list(NOT_MEASURED),
    }


def rank(scores: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Communes ranked by score, best first ("xếp thứ 17/166"); no score ranks last; ties by code."""
    ordered = sorted(scores.items(), key=lambda item: (item[1]["score"] is None, -(item[1]["score"] or 0), item[0]))
    return [{"rank": n, "of": len(ordered), "commune_code": code, **card} for n, (code, card) in
            enumerate(ordered, start=1)]


def as_table(name: str, report: dict[str, Any]) -> str:
    """The indicators as a plain table, Vietnamese names first."""
    rows = [("Tiếp nhận (received)", report["received"])]
    rows += [(f"  kênh {c}", report["by_channel"][c]) for c in CHANNELS]
    rows += [("  trực tuyến toàn trình (online_full)", report["online_full"])]
    rows += [(f"Đã giải quyết {t}", report["completed"][t]) for t in TIMELINESS]
    rows += [("Rút hồ sơ (withdrawn)", report["withdrawn"])]
    rows += [(f"Đang giải quyết {s}", report["open"][s]) for s in OPEN_STATES]
    rows += [(f"Thanh toán {m}", report["payments"][m]) for m in PAYMENT_METHODS]
    rows += [("Số hóa (digitized)", report["digitized"])]
    rows += [(f"Đánh giá {r}", report["ratings"][r]) for r in RATINGS]
    rows += [(f"Xin lỗi {k}", v) for k, v in report["apologies"].items()]
    rows += [("Tiếp nhận tại trung tâm khác (received_elsewhere)", report["received_elsewhere"])]
    rows += [(f"Tỷ lệ {k}", "—" if v is None else f"{100 * v:.2f} %") for k, v in report["rates"].items()]
    width = max(len(label) for label, _ in rows)
    lines = [f"{name}: {report['from']} → {report['to']}, as of {report['as_of']}"]
    lines += [f"{label:<{width}}  {value:>10}" for label, value in rows]
    return "\n".join(lines)
