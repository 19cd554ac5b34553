"""The report queries over the figures' timelines (docs/contract.md §5, §8): a commune's cohort as of
an instant, its report, the scorecard, the points at risk, where dossiers wait. Read-only: `Figures`
(services/metrics/figures.py) extends this with what it keeps, and a report may read a view with the
archive's dossiers beside memory's (`Figures.including`).

Most dossiers of a past period are settled at its cut: ended (or open, only ever being processed) and
unchanged since. What such a dossier adds to every count of its cohort (the §5 report, each 766 numerator
and denominator, both on-time views, DOSSIER_SYNC) no longer depends on the cut or the instant, or, for an
open one, moves only at three instants (`scoring.open_times`). So `settle` computes it once per announcement
or verdict, packed into one int (`scoring.FIELDS`: fixed-width fields, so a commune's sum is a `+` a
dossier), and `_tally` sums those and judges only the others. The PAKN's share (5.4's complaints) is added
apart, by a look-up; the catalogue in force is checked at each sum (a new one prices the dossiers again)."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import partial
from typing import TYPE_CHECKING, Any

from services.metrics import scoring
from shared.calendar import WorkingCalendar
from shared.catalogue import Catalogue
from shared.communes import Commune
from shared.facts import OPEN, Facts, Timeline
from shared.feedback import FeedbackCounts
from shared.on_time import cut_of, disagreement, judge_decree, judge_portal
from shared.report import report_from, score
from shared.scorecard import COMMUNE_NOT_APPLICABLE, Counts, Tally, at_risk, score_of, scorecard
from shared.scorecard import rank as rank_with_ties

if TYPE_CHECKING:
    from services.metrics.figures import Tracked, Verdict

RECEPTION = "Bộ phận tiếp nhận (một cửa)"  # who holds a dossier before its first transfer


OVERDUE_STEPS_SHOWN = 1_000  # the overdue steps `/units` lists, the oldest due first
CARDS_KEPT = 1024  # scorecard rows remembered (166 communes × a few periods and instants; ~12 KB each)


@dataclass(frozen=True, slots=True)
class Tallied:
    """A commune's cohort summed (`ReportQueries._tally`)."""

    n: dict[str, int]  # its counts, decoded (services/metrics/scoring.py's FIELDS)
    judged: list[scoring.Judgement]  # its members not settled at the cut, judged one by one (every open one)
    earlier: list[Tracked]  # the commune's dossiers received before the period that DOSSIER_SYNC may count
    flagged: list[Tracked]  # its settled members the two on-time views disagree on (when asked)
    moving: list[Tracked]  # its open members summed by `open_times`, not judged
    cut: datetime


class ReportQueries:
    calendar: WorkingCalendar
    changes: Counter[str]
    _cards: dict[tuple, tuple]
    catalogue: Callable[[], Catalogue]  # the procedure catalogue in force (read again when its file changes)
    _by_commune: dict[str, list["Tracked"]]
    _signatures: MutableMapping[tuple[str, str], "Verdict"]
    _documents: MutableMapping[str, set[str]]
    _packings: dict[int, int]
    _catalogue_seen: Catalogue | None

    # -- reports ---------------------------------------------------------------------------------

    def cohort(self, commune_code: str, start: date, end: date, as_of: datetime) -> Iterable[tuple[Tracked, Facts]]:
        """The dossiers of a commune received (local date) in [start, end], with their Facts at `as_of`."""
        for tracked in self._by_commune.get(commune_code, ()):
            if start <= tracked.received_date <= end and tracked.receipt.received_at <= as_of:
                facts = tracked.facts_at(as_of)
                if facts is not None:
                    yield tracked, facts

    def report(self, commune_code: str, start: date, end: date, as_of: datetime) -> dict[str, Any]:
        return report_from(self._tally(commune_code, start, end, as_of).n)

    def counts_of(self, commune_code: str, start: date, end: date, as_of: datetime
                  ) -> tuple[dict[str, Any], Counts, list[scoring.Judgement]]:
        """A commune's report (§5), what its scorecard counts (§6), and the members of its cohort judged: those
        not settled at the cut, and every open one, as of `as_of`."""
        tallied = self._tally(commune_code, start, end, as_of)
        report, counts, judged = self._counts(tallied, commune_code, start, end, as_of)
        return report, counts, judged + scoring.judgements(((t, t.now) for t in tallied.moving), tallied.cut, as_of,
                                                           self.calendar)

    def _counts(self, tallied: Tallied, commune_code: str, start: date, end: date, as_of: datetime
                ) -> tuple[dict[str, Any], Counts, list[scoring.Judgement]]:
        feedback = self.feedback(commune_code, start, end, as_of)
        complained = self._complained_not_unsatisfied(commune_code, start, end, as_of, feedback.complained)
        earlier = self._synced_earlier(tallied.earlier, start, end, as_of)
        sync = Tally(tallied.n["synced"] + earlier.numerator, tallied.n["sync_total"] + earlier.denominator)
        return report_from(tallied.n), scoring.counts_from(tallied.n, feedback, sync, complained), tallied.judged

    # -- the cohort's sums: settled dossiers packed once, the others judged -------------------------------

    def settle(self, tracked: Tracked, timeline: Timeline | None = None) -> None:
        """After a dossier's announcement or verdict: whether it is settled (ended; or open, only ever being
        processed, with an appointment on its receipt) and since when; if so, what it adds to its cohort's
        counts from then on, packed: a report whose cut is at or after that instant sums it instead of judging
        it again (an open one's part that moves with time read off `open_times`). `timeline`: the dossier's,
        when at hand (else unpacked)."""
        timeline = timeline or tracked.timeline
        self.unsettle(tracked)
        last = tracked.now
        if last.state in OPEN:
            tracked.open_times = scoring.open_times(timeline, tracked.receipt.receipt_due_at, self.calendar)
            if tracked.open_times is None:
                return
        code = tracked.receipt.dossier_code
        signed = [self._signatures[code, doc].signed_at for doc in self._documents.get(code, ())]
        quiet = max([last.since, tracked.receipt.received_at, *signed])
        tracked.quiet_since = quiet.timestamp()
        if self._catalogue_seen is None:
            self._catalogue_seen = self.catalogue()
        self._pack(tracked, self._catalogue_seen, quiet, timeline)

    def unsettle(self, tracked: Tracked) -> None:
        """Judged by each report until settled again: what a start does while it loads (`settle` once consuming)."""
        tracked.packed, tracked.packed_with, tracked.quiet_since, tracked.open_times = 0, None, None, None

    def _pack(self, tracked: Tracked, catalogue: Catalogue, at: datetime | None = None,
              timeline: Timeline | None = None) -> None:
        assert tracked.quiet_since is not None
        since, calendar = tracked.quiet_since, self.calendar
        at = at or datetime.fromtimestamp(since, calendar.timezone)
        judged = scoring.Judgement(tracked, tracked.now, judge_portal(timeline or tracked.timeline, at, calendar,
                                                                      tracked.receipt.receipt_due_at),
                                   judge_decree(tracked.now, at, calendar))
        packed = scoring.contribution(judged, tracked.now.open_state(at, calendar), catalogue,
                                      lambda code: self._signed_valid(code, at), at, calendar)
        if tracked.open_times is not None:
            packed -= scoring.open_part(tracked.open_times, since, since)
        tracked.packed, tracked.packed_with = self._packings.setdefault(packed, packed), catalogue

    def _tally(self, commune_code: str, start: date, end: date, as_of: datetime, differing: bool = False) -> Tallied:
        """The sums of a commune's cohort (received, local date, in [start, end]) as of `as_of`: a dossier
        settled by the cut adds its packed contribution; the others are judged here. `differing`: also
        gather the settled dossiers the two on-time views disagree on."""
        catalogue = self._catalogue_seen = self.catalogue()
        calendar, cut = self.calendar, cut_of(end, as_of, self.calendar)
        opening = datetime.combine(start, time(), calendar.timezone).timestamp()
        cut_s, as_of_s = cut.timestamp(), as_of.timestamp()
        total, unsettled, earlier, flagged, moving = 0, [], [], [], []
        for t in self._by_commune.get(commune_code, ()):
            day, quiet = t.received_date, t.quiet_since
            if day < start:
                if quiet is None or quiet >= opening or t.open_times is not None:  # DOSSIER_SYNC may count it
                    earlier.append(t)
            elif day <= end:
                if quiet is not None and quiet <= cut_s:
                    if t.packed_with is not catalogue:
                        self._pack(t, catalogue)
                    packed = t.packed
                    if t.open_times is not None:
                        packed += scoring.open_part(t.open_times, cut_s, as_of_s)
                        moving.append(t)
                    total += packed
                    if differing and packed & 1:
                        flagged.append(t)
                else:
                    unsettled.append(t)
        judged = scoring.judgements(((t, f) for t in unsettled if t.receipt.received_at <= as_of
                                     if (f := t.facts_at(as_of)) is not None), cut, as_of, calendar)
        signed_valid = partial(self._signed_valid, as_of=as_of)
        for j in judged:
            total += scoring.contribution(j, j.facts.open_state(as_of, calendar), catalogue, signed_valid, cut, calendar)
        return Tallied(scoring.decode(total), judged, earlier, flagged, moving, cut)

    def _complained_not_unsatisfied(self, commune_code: str, start: date, end: date, as_of: datetime,
                                    complained: frozenset[str]) -> int:
        """5.4: the cohort's dossiers named by a PAKN and not rated unsatisfied (those are counted already)."""
        if not complained:
            return 0
        named = (t for t in self._by_commune.get(commune_code, ()) if t.receipt.dossier_code in complained)
        return sum(start <= t.received_date <= end and t.receipt.received_at <= as_of
                   and (f := t.facts_at(as_of)) is not None and f.rating != "unsatisfied" for t in named)

    def _synced_earlier(self, earlier: list[Tracked], start: date, end: date, as_of: datetime) -> Tally:
        """DOSSIER_SYNC (§6) of the commune's dossiers received before the period and open at its opening
        or returned in it (the period's own are in the sums): those whose every step reached intake within
        the sync window, of those whose arrivals intake recorded."""
        opening = datetime.combine(start, time(), self.calendar.timezone)
        closing = cut_of(end, as_of, self.calendar)
        synced = total = 0
        for tracked in earlier:
            c = tracked.receipt
            if c.received_at > closing or not c.arrivals:
                continue
            at_opening = tracked.facts_at(opening)
            returned = tracked.now.since >= opening and any(
                f.state == "returned" and opening <= f.since <= closing for f in tracked.timeline)
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
        tallied = self._tally(commune_code, start, end, as_of)
        report, counts, _ = self._counts(tallied, commune_code, start, end, as_of)
        missing = scoring.missing_procedures((t.receipt.procedure_code for t, _ in self.cohort(
            commune_code, start, end, as_of)), catalogue) if tallied.n["missing_procedure"] else []
        card = (score(report)  # v1's approximation, its fields beside
                | scorecard(counts, not_applicable)
                | {"on_time_views": scoring.on_time_views(tallied.n, (), self.calendar, listed=0),
                   "missing_procedures": missing})
        if len(self._cards) >= CARDS_KEPT:
            self._cards.clear()
        self._cards[key] = (stamp, (card, report))
        return card, report

    def on_time_views(self, commune_code: str, start: date, end: date, as_of: datetime) -> dict[str, Any]:
        """Both on-time views of a commune's cohort, and the dossiers where they disagree, with why (§6)."""
        tallied = self._tally(commune_code, start, end, as_of, differing=True)
        calendar = self.calendar
        flagged = scoring.judgements(((t, t.now) for t in tallied.flagged), tallied.cut, as_of, calendar)
        differing = [j for j in tallied.judged if disagreement(j.decree, j.portal, calendar) is not None]
        return scoring.on_time_views(tallied.n, [*flagged, *differing], calendar)

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

    def overdue_steps(self, commune_code: str, start: date, end: date, as_of: datetime,
                      limit: int = OVERDUE_STEPS_SHOWN) -> list[dict[str, Any]]:
        """The cohort's open dossiers still in time whose holding step is overdue at `as_of`, the oldest step
        due first, at most `limit` of them (each unit's row counts them all): the dossier's code, the unit
        holding it, the step's due and the dossier's (no personal data)."""
        found = heapq.nsmallest(limit, ((now.step_due_at, tracked.code, now) for tracked, now in
                                        self.cohort(commune_code, start, end, as_of)
                                        if step_overdue(now, as_of, self.calendar)), key=lambda row: row[:2])
        return [{"dossier_code": code, "unit": now.unit or RECEPTION, "step_due_at": step_due_at.isoformat(),
                 "due_at": now.due_at.isoformat()} for step_due_at, code, now in found]


IN_TIME = frozenset({"within_deadline", "due_soon"})


def step_overdue(facts: Facts, at: datetime, calendar: WorkingCalendar) -> bool:
    """Whether the step holding a dossier is overdue at `at` while the dossier itself is in time: the
    dossier within its deadline or due soon (docs/domain.md §4), and the local date of `at` after the local
    date of the step's own due (`step_due_at`, the same date rule applied to the step)."""
    if facts.step_due_at is None or facts.open_state(at, calendar) not in IN_TIME:
        return False
    return calendar.local(at).date() > calendar.local(facts.step_due_at).date()
