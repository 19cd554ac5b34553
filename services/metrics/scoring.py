"""What a commune's dossiers count for the QĐ 766 scorecard as the portal computes it (docs/domain.md §6):
each dossier judged once by both on-time views (shared.on_time), then every sub-indicator's numerator
and denominator (shared.scorecard.Counts), the dossiers where the views disagree, and the open dossiers
the points at risk read. A dossier's share of every count is one packed int (`contribution`, `FIELDS`),
which services/metrics/queries.py keeps for a settled dossier and sums per commune."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.calendar import WorkingCalendar
from shared.catalogue import Catalogue
from shared.facts import Facts, Timeline, open_state_changes
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
    return [Judgement(t, f, judge_portal(t.timeline, cut, calendar, t.receipt.receipt_due_at),
                      judge_decree(f, as_of, calendar)) for t, f in members]


# What a dossier adds to its commune's counts, packed in one int: field i holds bits [WIDTH·i, WIDTH·(i+1)).
# A commune's totals are then the plain sum of its dossiers' ints (no field can carry into the next: a
# commune holds far fewer than 2**32 dossiers), decoded once (`decode`). Bit 0 is the disagreement flag, so
# `packed & 1` tells a dossier the views disagree on.
FIELDS = (
    "disagreements", "received", "direct", "online", "postal", "online_full", "elsewhere",  # §5 report, then §6
    "early", "on_time", "late", "withdrawn", "within_deadline", "due_soon", "overdue", "awaiting_supplement",
    "paused", "pay_online", "pay_offline", "digitized", "very_satisfied", "satisfied", "unsatisfied",
    "apologies_compliant", "apologies_non_compliant",
    "portal_on_time", "eligible", "full", "fee_bearing", "paid_online", "paper_ended", "valid_result",
    "digitized_dossier", "reused", "personal", "population", "decree_in_time", "decree_judged",
    "missing_procedure", "sync_total", "synced",
)
WIDTH = 32
MASK = (1 << WIDTH) - 1
BIT = {name: 1 << (WIDTH * i) for i, name in enumerate(FIELDS)}


def decode(total: int) -> dict[str, int]:
    """Each field of a sum of packed contributions."""
    return {name: (total >> (WIDTH * i)) & MASK for i, name in enumerate(FIELDS)}


def contribution(j: Judgement, open_now: str | None, catalogue: Catalogue, signed_valid: Callable[[str], bool],
                 cut: datetime, calendar: WorkingCalendar) -> int:
    """What a judged dossier adds to every count of its cohort (its §5 report, each 766 numerator and
    denominator, both on-time views, DOSSIER_SYNC), packed (`FIELDS`); `open_now` is its open state as of
    the report. A procedure missing from the catalogue counts as not eligible, paper result, fee-bearing.
    5.4's complaints depend on the PAKN and are not in it: the caller adds them."""
    r, f, procedure = j.tracked.receipt, j.facts, catalogue.get(j.tracked.receipt.procedure_code)
    paper = procedure is None or procedure.paper_result
    signed = signed_valid(r.dossier_code)
    bits = BIT["received"] + BIT[r.channel] + BIT["online_full"] * (r.channel == "online" and r.online_level == "full")
    bits += BIT["elsewhere"] * (r.received_by_unit is not None) + BIT["withdrawn"] * (f.state == "withdrawn")
    for field in (f.timeliness, open_now, f.rating):
        bits += BIT[field] if field else 0
    bits += BIT["pay_" + f.payment_method] if f.payment_method else 0
    bits += (BIT["digitized"] * f.digitized + BIT["apologies_compliant"] * f.apologies_compliant
             + BIT["apologies_non_compliant"] * f.apologies_non_compliant + BIT["portal_on_time"] * j.portal.on_time)
    if procedure is not None and procedure.full_online_eligible:
        bits += BIT["eligible"] + BIT["full"] * (r.channel == "online" and r.online_level == "full")
    if (procedure is None or procedure.fee_bearing) and r.fees_total != 0:
        bits += BIT["fee_bearing"] + BIT["paid_online"] * (f.payment_method == "online")
    if paper and f.state in ("resolved", "returned"):
        bits += BIT["paper_ended"] + BIT["valid_result"] * signed
    bits += BIT["digitized_dossier"] * bool((r.component_digitized or f.digitized)
                                            and (f.result_issued or signed or not paper))
    bits += (BIT["reused"] * r.component_reused
             + BIT["personal"] * bool(r.component_from_personal_store or f.result_sent_to_personal_store)
             + BIT["population"] * bool(r.vneid_authenticated or r.population_data))
    bits += BIT["decree_in_time"] * (j.decree == "in_time") + BIT["decree_judged"] * (j.decree != "not_judged")
    bits += BIT["disagreements"] * (disagreement(j.decree, j.portal, calendar) is not None)
    bits += BIT["missing_procedure"] * (procedure is None)
    if r.arrivals and r.received_at <= cut:
        bits += BIT["sync_total"] + BIT["synced"] * (r.arrivals_synced == r.arrivals)
    return bits


def open_times(timeline: Timeline, appointment: datetime | None, calendar: WorkingCalendar
               ) -> tuple[float, float, float] | None:
    """For an open dossier only ever being processed (no supplement, pause or end) with an appointment on its
    receipt, the instants (Unix seconds) its judgement turns at once nothing else changes: its appointment
    (2.1 finds it on time while the cut is not after it), then due soon and overdue (the decree, as of the
    report). None for the others (judged one by one)."""
    if appointment is None or any(f.state != "processing" for f in timeline) or timeline[-1].due_at is None:
        return None
    (soon, _), (overdue, _) = open_state_changes("processing", timeline[-1].due_at, calendar)
    return appointment.timestamp(), soon.timestamp(), overdue.timestamp()


def _moving(on_time: bool, phase: int) -> int:
    late = phase == 2
    return (BIT[("within_deadline", "due_soon", "overdue")[phase]] + BIT["decree_judged"]
            + BIT["decree_in_time"] * (not late) + BIT["portal_on_time"] * on_time + BIT["disagreements"] * (on_time == late))


MOVING = {(on_time, phase): _moving(on_time, phase) for on_time in (False, True) for phase in (0, 1, 2)}


def open_part(times: tuple[float, float, float], cut: float, as_of: float) -> int:
    """What moves with time in the contribution of an open dossier with these `open_times`: its open state and
    the decree's view as of `as_of`, 2.1 at `cut`, whether the two disagree."""
    appointment, soon, overdue = times
    return MOVING[cut <= appointment, 2 if as_of >= overdue else 1 if as_of >= soon else 0]


def counts_from(n: dict[str, int], feedback: FeedbackCounts, dossier_sync: Tally, complained: int) -> Counts:
    """Every sub-indicator's numerator and denominator (docs/domain.md §6) from a cohort's decoded sums;
    `complained`: its dossiers named by a PAKN and not rated unsatisfied (5.4)."""
    received = n["received"]
    return Counts(
        dossier_sync=dossier_sync,
        on_time=Tally(n["portal_on_time"], received),
        end_to_end_online=Tally(n["full"], n["eligible"]),
        online_payment=Tally(n["paid_online"], n["fee_bearing"]),
        electronic_result=Tally(n["valid_result"], n["paper_ended"]),
        digitized_dossier=Tally(n["digitized_dossier"], received),
        reused_data=Tally(n["reused"], received),
        personal_store=Tally(n["personal"], received),
        population_data=Tally(n["population"], received),
        feedback_on_time=Tally(feedback.on_time, feedback.taken),
        feedback_satisfaction=Tally(feedback.satisfied, feedback.first_received),
        unhappy=n["unsatisfied"] + complained,
    )


MISSING_LISTED = 50  # a row names at most this many procedures the catalogue lacks (senders choose the codes)


def missing_procedures(codes: Iterable[str], catalogue: Catalogue) -> list[str]:
    """The cohort's procedures the catalogue lacks, the first `MISSING_LISTED` in order: counted as not
    eligible, paper result, fee-bearing."""
    return sorted(set(codes) - catalogue.procedures.keys())[:MISSING_LISTED]


def on_time_views(n: dict[str, int], differing: Iterable[Judgement], calendar: WorkingCalendar,
                  listed: int = DISAGREEMENTS_LISTED) -> dict[str, Any]:
    """Both on-time views of a cohort side by side from its decoded sums, and the first `listed` of its
    dossiers where they disagree (`differing`), with why."""
    rows = []
    for j in sorted(differing, key=lambda j: j.tracked.code)[:listed]:
        reasons = disagreement(j.decree, j.portal, calendar) or ()
        rows.append({"dossier_code": j.tracked.code, "decree": j.decree,
                     "portal": "on_time" if j.portal.on_time else "late", "reasons": list(reasons),
                     "end": j.portal.end.isoformat(), "effective_end": j.portal.effective_end.isoformat(),
                     "appointment": j.portal.appointment.isoformat() if j.portal.appointment else None})
    in_time, judged, on_time, received = n["decree_in_time"], n["decree_judged"], n["portal_on_time"], n["received"]
    return {
        "decree": {"in_time": in_time, "judged": judged, "ratio": rate(in_time, judged)},
        "portal": {"on_time": on_time, "received": received, "ratio": rate(on_time, received)},
        "disagreements": n["disagreements"],
        "dossiers": rows,
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
