"""The report queries over the figures' timelines (docs/contract.md §5, §8): a commune's cohort as of
an instant, its report, the scorecard, the points at risk, where dossiers wait. Read-only: `Figures`
(services/metrics/figures.py) extends this with what it keeps, and a report may read a view with the
archive's dossiers beside memory's (`Figures.including`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from shared.calendar import WorkingCalendar
from shared.communes import Commune
from shared.facts import OPEN, Facts, facts_as_of
from shared.feedback import FeedbackCounts
from shared.report import progress, report_of, score
from shared.scorecard import COMMUNE_NOT_APPLICABLE, Counts, OpenDossier, at_risk, score_of, scorecard
from shared.scorecard import rank as rank_with_ties

if TYPE_CHECKING:
    from services.metrics.figures import Tracked, Verdict

RECEPTION = "Bộ phận tiếp nhận (một cửa)"  # who holds a dossier before its first transfer


def scorecard_counts(report: dict[str, Any], members: list[tuple["Tracked", Facts]],
                     signed_valid: Callable[[str], bool]) -> Counts:
    """What the scorecard counts of a cohort (docs/domain.md §6), beside its report (§5)."""
    payments = report["payments"]
    in_time, judged = progress(report["received"], report["withdrawn"], report["completed"], report["open"])
    with_result = [t for t, f in members if f.state in ("resolved", "returned")]
    return Counts(
        received=report["received"],
        withdrawn=report["withdrawn"],
        in_time=in_time,
        judged=judged,
        online_full=report["online_full"],
        payments=payments["online"] + payments["offline"],
        payments_online=payments["online"],
        satisfied=sum(f.state != "withdrawn" and f.rating != "unsatisfied" and f.timeliness != "late"
                      for _, f in members),
        resolved=len(with_result),
        signed_valid=sum(signed_valid(t.code) for t in with_result),
        digitized=report["digitized"],
        events=sum(t.counted.arrivals for t, _ in members),
        events_synced=sum(t.counted.arrivals_synced for t, _ in members),
    )


class ReportQueries:
    calendar: WorkingCalendar
    _by_commune: dict[str, list["Tracked"]]
    _signatures: MutableMapping[tuple[str, str], "Verdict"]
    _documents: MutableMapping[str, set[str]]

    # -- reports ---------------------------------------------------------------------------------

    def cohort(self, commune_code: str, start: date, end: date, as_of: datetime) -> Iterable[tuple[Tracked, Facts]]:
        """The dossiers of a commune received (local date) in [start, end], with their Facts at `as_of`."""
        for tracked in self._by_commune.get(commune_code, ()):
            if start <= tracked.received_date <= end and tracked.counted.received_at <= as_of:
                facts = facts_as_of(tracked.timeline, as_of)
                if facts is not None:
                    yield tracked, facts

    def report(self, commune_code: str, start: date, end: date, as_of: datetime) -> dict[str, Any]:
        return report_of(((t.counted, f) for t, f in self.cohort(commune_code, start, end, as_of)), as_of,
                         self.calendar)

    def counts_of(self, commune_code: str, start: date, end: date, as_of: datetime
                  ) -> tuple[dict[str, Any], Counts, list[tuple["Tracked", Facts]]]:
        """A commune's report, what its scorecard counts, and its cohort, as of `as_of`."""
        members = list(self.cohort(commune_code, start, end, as_of))
        report = report_of(((t.counted, f) for t, f in members), as_of, self.calendar)
        counts = scorecard_counts(report, members, lambda code: self._signed_valid(code, as_of))
        return report, counts, members

    def feedback(self, commune_code: str, start: date, end: date, as_of: datetime) -> FeedbackCounts:
        """A commune's PAKN in [start, end] as of `as_of` (docs/domain.md §9), from the PAKN the figures
        keep (`Figures.feedback_book`, services/metrics/feedback.py)."""
        return self.feedback_book.counts(commune_code, start, end, as_of, self.calendar)  # type: ignore[attr-defined]

    def _signed_valid(self, code: str, as_of: datetime) -> bool:
        """Whether a document of the dossier has `valid` as its latest verdict (given by `as_of`)."""
        return any(v.verdict == "valid" and v.signed_at <= as_of
                   for doc in self._documents.get(code, ()) if (v := self._signatures[code, doc]))

    def scorecard(self, province: list[Commune], start: date, end: date, as_of: datetime,
                  not_applicable: frozenset[str] = COMMUNE_NOT_APPLICABLE) -> list[dict[str, Any]]:
        """The province's communes scored as QĐ 766 scores them and ranked, ties sharing a rank (§6)."""
        cards, reports = {}, {}
        for c in province:
            reports[c.code], counts, _ = self.counts_of(c.code, start, end, as_of)
            cards[c.code] = scorecard(counts, not_applicable) | score(reports[c.code])  # v1 fields beside
            cards[c.code]["score"] = score_of(counts, not_applicable)  # v1.1: the decision's score
        ranks = rank_with_ties({code: card["score"] for code, card in cards.items()})
        names = {c.code: c.name for c in province}
        rows = [{"rank": ranks[code], "of": len(province), "commune_code": code, "name": names[code],
                 "received": reports[code]["received"], "rates": reports[code]["rates"], **card}
                for code, card in cards.items()]
        return sorted(rows, key=lambda row: (row["rank"], row["commune_code"]))

    def at_risk(self, commune_code: str, start: date, end: date, as_of: datetime, horizon: datetime,
                not_applicable: frozenset[str]) -> dict[str, Any]:
        """The points a commune is about to lose (§6): its score if every open dossier ends in time,
        if every one due by `horizon` turns late, and the dossiers that cost the most."""
        _, counts, members = self.counts_of(commune_code, start, end, as_of)
        opened = []
        for tracked, f in members:
            state = f.open_state(as_of, self.calendar)
            if state is None:
                continue
            left = None  # the working hours left: of those due by the horizon, the only ones shown
            if f.due_at is not None and f.due_at <= horizon:
                left = (self.calendar.working_between(as_of, f.due_at).total_seconds() / 3600
                        if f.due_at > as_of else 0.0)
            opened.append(OpenDossier(tracked.code, state, f.due_at, left, f.rating == "unsatisfied"))
        return {"score": score_of(counts, not_applicable)} | at_risk(counts, opened, horizon, not_applicable)

    def units(self, commune_code: str, start: date, end: date, as_of: datetime) -> list[dict[str, Any]]:
        """Where the cohort's dossiers waited: per unit, the working hours it held them (up to their end
        or `as_of`), the open dossiers it holds now by open state, and how many of those are overdue."""
        held: dict[str, float] = {}
        holding: dict[str, Counter[str]] = {}
        for tracked, now in self.cohort(commune_code, start, end, as_of):
            entries = [f for f in tracked.timeline if f.since <= as_of]
            for f, following in zip(entries, [*entries[1:], None], strict=True):
                if f.state not in OPEN:
                    break  # ended or withdrawn: no one holds it any more
                until = following.since if following else as_of
                hours = self.calendar.working_between(f.since, until).total_seconds() / 3600
                held[f.unit or RECEPTION] = held.get(f.unit or RECEPTION, 0.0) + hours
            if (state := now.open_state(as_of, self.calendar)) is not None:
                holding.setdefault(now.unit or RECEPTION, Counter())[state] += 1
        return sorted(({"unit": unit, "working_hours_held": round(held.get(unit, 0.0), 2),
                        "open": dict(holding.get(unit, Counter())),
                        "overdue": holding.get(unit, Counter())["overdue"]}
                       for unit in held.keys() | holding.keys()),
                      key=lambda row: (-row["overdue"], -sum(row["open"].values()), -row["working_hours_held"]))

