"""The report queries over the figures' timelines (docs/contract.md §5, §8): a commune's cohort as of
an instant, its report, the scorecard, the points at risk, where dossiers wait. Read-only: `Figures`
(services/metrics/figures.py) extends this with what it keeps, and a report may read a view with the
archive's dossiers beside memory's (`Figures.including`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from services.metrics import scoring
from shared.calendar import WorkingCalendar
from shared.catalogue import Catalogue
from shared.communes import Commune
from shared.facts import OPEN, Facts, facts_as_of
from shared.feedback import FeedbackCounts
from shared.on_time import cut_of
from shared.report import report_of, score
from shared.scorecard import COMMUNE_NOT_APPLICABLE, Counts, Tally, at_risk, score_of, scorecard
from shared.scorecard import rank as rank_with_ties

if TYPE_CHECKING:
    from services.metrics.figures import Tracked, Verdict

RECEPTION = "Bộ phận tiếp nhận (một cửa)"  # who holds a dossier before its first transfer


CARDS_KEPT = 4096  # scorecard rows remembered (166 communes × a few periods and instants)


class ReportQueries:
    calendar: WorkingCalendar
    changes: Counter[str]
    _cards: dict[tuple, tuple]
    catalogue: Callable[[], Catalogue]  # the procedure catalogue in force (read again when its file changes)
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
                  ) -> tuple[dict[str, Any], Counts, list[scoring.Judgement]]:
        """A commune's report (§5), what its scorecard counts (§6), and its cohort judged, as of `as_of`."""
        members = list(self.cohort(commune_code, start, end, as_of))
        report = report_of(((t.counted, f) for t, f in members), as_of, self.calendar)
        judged = scoring.judgements(members, cut_of(end, as_of, self.calendar), as_of, self.calendar)
        counts = scoring.counts(judged, self.catalogue(), lambda code: self._signed_valid(code, as_of),
                                self.feedback(commune_code, start, end, as_of),
                                self.dossier_sync(commune_code, start, end, as_of))
        return report, counts, judged

    def dossier_sync(self, commune_code: str, start: date, end: date, as_of: datetime) -> Tally:
        """DOSSIER_SYNC (§6): of the commune's dossiers received, open or returned in the period (and whose
        arrivals intake recorded), those whose every step reached intake within the sync window."""
        opening = datetime.combine(start, time(), self.calendar.timezone)
        closing = cut_of(end, as_of, self.calendar)
        synced = total = 0
        for tracked in self._by_commune.get(commune_code, ()):
            c = tracked.counted
            if c.received_at > closing or not c.arrivals:
                continue
            if tracked.received_date < start:
                at_opening = facts_as_of(tracked.timeline, opening)
                returned = any(f.state == "returned" and opening <= f.since <= closing for f in tracked.timeline)
                if not returned and (at_opening is None or at_opening.state not in OPEN):
                    continue
            total += 1
            synced += c.arrivals_synced == c.arrivals
        return Tally(synced, total)

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
        """The province's communes scored as the portal scores QĐ 766 and ranked, ties sharing a rank (§6):
        each with its groups, every sub-indicator's numerator and denominator, and both on-time views."""
        cards, reports = {}, {}
        for c in province:
            cards[c.code], reports[c.code] = self._card(c.code, start, end, as_of, not_applicable)
        ranks = rank_with_ties({code: card["score"] for code, card in cards.items()})
        names = {c.code: c.name for c in province}
        rows = [{"rank": ranks[code], "of": len(province), "commune_code": code, "name": names[code],
                 "received": reports[code]["received"], "rates": reports[code]["rates"], **card}
                for code, card in cards.items()]
        return sorted(rows, key=lambda row: (row["rank"], row["commune_code"]))

    def _card(self, commune_code: str, start: date, end: date, as_of: datetime, not_applicable: frozenset[str]
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A commune's scorecard row and its report, remembered until something they count changes: a
        dossier, a verdict or a PAKN of the commune, the catalogue."""
        catalogue = self.catalogue()
        key = (commune_code, start, end, as_of, not_applicable)
        stamp = (self.changes[commune_code], self.feedback_book.changes, id(catalogue))  # type: ignore[attr-defined]
        kept = self._cards.get(key)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        report, counts, judged = self.counts_of(commune_code, start, end, as_of)
        card = (score(report)  # v1's approximation, its fields beside
                | scorecard(counts, not_applicable)
                | {"on_time_views": scoring.on_time_views(judged, self.calendar, listed=0),
                   "missing_procedures": scoring.missing_procedures(judged, catalogue)})
        if len(self._cards) >= CARDS_KEPT:
            self._cards.clear()
        self._cards[key] = (stamp, (card, report))
        return card, report

    def on_time_views(self, commune_code: str, start: date, end: date, as_of: datetime) -> dict[str, Any]:
        """Both on-time views of a commune's cohort, and the dossiers where they disagree, with why (§6)."""
        members = self.cohort(commune_code, start, end, as_of)
        judged = scoring.judgements(members, cut_of(end, as_of, self.calendar), as_of, self.calendar)
        return scoring.on_time_views(judged, self.calendar)

    def at_risk(self, commune_code: str, start: date, end: date, as_of: datetime, horizon: datetime,
                not_applicable: frozenset[str]) -> dict[str, Any]:
        """The points a commune is about to lose (§6), by the portal's 2.1: its score today, if every open
        dossier due by `horizon` turns late, and those dossiers."""
        _, counts, judged = self.counts_of(commune_code, start, end, as_of)
        opened = scoring.open_dossiers(judged, as_of, horizon, self.calendar)
        return {"score": score_of(counts, not_applicable)} | at_risk(counts, opened, horizon, not_applicable)

    def units(self, commune_code: str, start: date, end: date, as_of: datetime) -> list[dict[str, Any]]:
        """Where the cohort's dossiers waited: per unit, the working hours it held them (up to their end
        or `as_of`), the open dossiers it holds now by open state, how many of those are overdue, and how
        many are in time while the step holding them is overdue (`steps_overdue`, `overdue_steps`)."""
        held: dict[str, float] = {}
        holding: dict[str, Counter[str]] = {}
        late_steps: Counter[str] = Counter()
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
                late_steps[now.unit or RECEPTION] += step_overdue(now, as_of, self.calendar)
        return sorted(({"unit": unit, "working_hours_held": round(held.get(unit, 0.0), 2),
                        "open": dict(holding.get(unit, Counter())),
                        "overdue": holding.get(unit, Counter())["overdue"], "steps_overdue": late_steps[unit]}
                       for unit in held.keys() | holding.keys()),
                      key=lambda row: (-row["overdue"], -row["steps_overdue"], -sum(row["open"].values()),
                                       -row["working_hours_held"]))

    def overdue_steps(self, commune_code: str, start: date, end: date, as_of: datetime) -> list[dict[str, Any]]:
        """The cohort's open dossiers still in time whose holding step is overdue at `as_of`, the oldest step
        due first: the dossier's code, the unit holding it, the step's due and the dossier's (no personal data)."""
        found = [{"dossier_code": tracked.code, "unit": now.unit or RECEPTION, "step_due_at": now.step_due_at,
                  "due_at": now.due_at}
                 for tracked, now in self.cohort(commune_code, start, end, as_of)
                 if step_overdue(now, as_of, self.calendar)]
        return [row | {"step_due_at": row["step_due_at"].isoformat(), "due_at": row["due_at"].isoformat()}
                for row in sorted(found, key=lambda row: (row["step_due_at"], row["dossier_code"]))]


IN_TIME = frozenset({"within_deadline", "due_soon"})


def step_overdue(facts: Facts, at: datetime, calendar: WorkingCalendar) -> bool:
    """Whether the step holding a dossier is overdue at `at` while the dossier itself is in time: the
    dossier within its deadline or due soon (docs/domain.md §4), and the local date of `at` after the local
    date of the step's own due (`step_due_at`, the same date rule applied to the step)."""
    if facts.step_due_at is None or facts.open_state(at, calendar) not in IN_TIME:
        return False
    return calendar.local(at).date() > calendar.local(facts.step_due_at).date()
