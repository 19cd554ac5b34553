"""What a commune's dossiers count for the QĐ 766 scorecard as the portal computes it (docs/domain.md §6):
each dossier judged once by both on-time views (shared.on_time), then every sub-indicator's numerator
and denominator (shared.scorecard.Counts), the dossiers where the views disagree, and the open dossiers
the points at risk read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.calendar import WorkingCalendar
from shared.catalogue import Catalogue
from shared.facts import Facts
from shared.feedback import FeedbackCounts
from shared.on_time import Decree, Judged, disagreement, judge_decree, judge_portal
from shared.report import rate
from shared.scorecard import Counts, OpenDossier, Tally

if TYPE_CHECKING:
    from services.metrics.figures import Tracked

DISAGREEMENTS_LISTED = 200  # a report lists at most this many dossiers where the views disagree


@dataclass(frozen=True, slots=True)
class Judgement:
    """A dossier of the cohort: its Facts as of the report, and how each view judges it."""

    tracked: Tracked
    facts: Facts
    portal: Judged
    decree: Decree


def judgements(members: Iterable[tuple[Tracked, Facts]], cut: datetime, as_of: datetime,
               calendar: WorkingCalendar) -> list[Judgement]:
    """The cohort judged: by the portal at the cut, by the decree as of `as_of` (its §5 report)."""
    return [Judgement(t, f, judge_portal(t.timeline, cut, calendar, t.counted.receipt_due_at),
                      judge_decree(f, as_of, calendar)) for t, f in members]


def counts(judged: list[Judgement], catalogue: Catalogue, signed_valid: Callable[[str], bool],
           feedback: FeedbackCounts, dossier_sync: Tally) -> Counts:
    """Every sub-indicator's numerator and denominator over the judged cohort (docs/domain.md §6); a
    procedure missing from the catalogue counts as not eligible, paper result, fee-bearing."""
    n: dict[str, int] = dict.fromkeys(("on_time", "eligible", "full", "fee_bearing", "paid_online", "paper_ended",
                                       "valid_result", "digitized", "reused", "personal", "population", "unhappy"), 0)
    for j in judged:
        r, f, procedure = j.tracked.counted, j.facts, catalogue.get(j.tracked.counted.procedure_code)
        paper = procedure is None or procedure.paper_result
        electronic = f.result_issued or signed_valid(r.dossier_code)
        n["on_time"] += j.portal.on_time
        if procedure is not None and procedure.full_online_eligible:
            n["eligible"] += 1
            n["full"] += r.channel == "online" and r.online_level == "full"
        if (procedure is None or procedure.fee_bearing) and r.fees_total != 0:
            n["fee_bearing"] += 1
            n["paid_online"] += f.payment_method == "online"
        if paper and f.state in ("resolved", "returned"):
            n["paper_ended"] += 1
            n["valid_result"] += signed_valid(r.dossier_code)
        n["digitized"] += (r.component_digitized or f.digitized) and (electronic or not paper)
        n["reused"] += r.component_reused
        n["personal"] += r.component_from_personal_store or f.result_sent_to_personal_store
        n["population"] += r.vneid_authenticated or r.population_data
        n["unhappy"] += f.rating == "unsatisfied" or r.dossier_code in feedback.complained
    received = len(judged)
    return Counts(
        dossier_sync=dossier_sync,
        on_time=Tally(n["on_time"], received),
        end_to_end_online=Tally(n["full"], n["eligible"]),
        online_payment=Tally(n["paid_online"], n["fee_bearing"]),
        electronic_result=Tally(n["valid_result"], n["paper_ended"]),
        digitized_dossier=Tally(n["digitized"], received),
        reused_data=Tally(n["reused"], received),
        personal_store=Tally(n["personal"], received),
        population_data=Tally(n["population"], received),
        feedback_on_time=Tally(feedback.on_time, feedback.taken),
        feedback_satisfaction=Tally(feedback.satisfied, feedback.first_received),
        unhappy=n["unhappy"],
    )


def missing_procedures(judged: list[Judgement], catalogue: Catalogue) -> list[str]:
    """The cohort's procedures the catalogue lacks: counted as not eligible, paper result, fee-bearing."""
    return sorted({j.tracked.counted.procedure_code for j in judged} - catalogue.procedures.keys())


def on_time_views(judged: list[Judgement], calendar: WorkingCalendar, listed: int = DISAGREEMENTS_LISTED
                  ) -> dict[str, Any]:
    """Both on-time views of the cohort side by side, and the dossiers where they disagree, with why."""
    in_time = sum(j.decree == "in_time" for j in judged)
    judged_by_decree = sum(j.decree != "not_judged" for j in judged)
    on_time = sum(j.portal.on_time for j in judged)
    differ = []
    for j in judged:
        reasons = disagreement(j.decree, j.portal, calendar)
        if reasons is not None:
            differ.append({"dossier_code": j.tracked.code, "decree": j.decree,
                           "portal": "on_time" if j.portal.on_time else "late", "reasons": list(reasons),
                           "end": j.portal.end.isoformat(), "effective_end": j.portal.effective_end.isoformat(),
                           "appointment": j.portal.appointment.isoformat() if j.portal.appointment else None})
    differ.sort(key=lambda row: row["dossier_code"])
    return {
        "decree": {"in_time": in_time, "judged": judged_by_decree, "ratio": rate(in_time, judged_by_decree)},
        "portal": {"on_time": on_time, "received": len(judged), "ratio": rate(on_time, len(judged))},
        "disagreements": len(differ),
        "dossiers": differ[:listed],
    }


def open_dossiers(judged: list[Judgement], as_of: datetime, horizon: datetime, calendar: WorkingCalendar
                  ) -> list[OpenDossier]:
    """The cohort's open dossiers, with when each turns late for the portal: its appointment plus the
    supplement time subtracted from its end; never while its one supplement or an obligation is awaited."""
    found = []
    for j in judged:
        state = j.facts.open_state(as_of, calendar)
        if state is None:
            continue
        due = None
        if "open_at_cut" in j.portal.reasons and j.portal.appointment is not None:
            due = j.portal.appointment + (j.portal.end - j.portal.effective_end)
        left = None  # the working hours left: of those due by the horizon, the only ones shown
        if due is not None and due <= horizon:
            left = calendar.working_between(as_of, due).total_seconds() / 3600 if due > as_of else 0.0
        found.append(OpenDossier(j.tracked.code, state, due, left, j.portal.on_time))
    return found
