"""A settled dossier's packed contribution (services/metrics/queries.py `settle`, scoring.py's packing) counts
exactly what judging it again would: every answer of the figures equals the same figures with nothing
settled (every dossier judged one by one), and both views, DOSSIER_SYNC and 5.4 equal a plain count over
the cohort; whatever the cut, the instant, a verdict or a catalogue arriving late, a PAKN complaint."""

from dataclasses import replace
from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.metrics import scoring
from services.metrics.figures import Figures, Tracked, Verdict
from shared.catalogue import Catalogue, Procedure
from shared.communes import communes_of_province
from shared.facts import Timeline, facts_as_of
from shared.feedback import FeedbackCounts
from shared.on_time import cut_of, disagreement, judge_decree, judge_portal
from tests.unit.test_metrics_figures import CAL, COMMUNE, HOURS, MONDAY, life, status_data
from tests.unit.test_metrics_scorecard import CATALOGUE, DOSSIERS

PROVINCE = [c for c in communes_of_province("38") if c.code == COMMUNE]
OTHER_CATALOGUE = Catalogue(procedures={  # the flags turned over, one procedure left out
    "1.001193": Procedure(name="Đăng ký khai sinh", processing_time={"value": 1, "unit": "working_days"},
                          online_level="full", full_online_eligible=False, paper_result=False, fee_bearing=True),
})
VERDICTS = st.lists(st.tuples(st.integers(min_value=0, max_value=7), HOURS, st.sampled_from(["valid", "invalid"]),
                              st.booleans()), max_size=4)  # (dossier, signed after MONDAY, verdict, before status)


class Settable(Figures):
    """Figures whose PAKN name these dossiers (5.4) and whose catalogue can be swapped; `settling=False`:
    nothing is ever settled, every dossier is judged one by one (what the sums must equal)."""

    def __init__(self, settling: bool, complained: frozenset[str]):
        self.catalogue_now = CATALOGUE
        super().__init__(CAL, lambda: self.catalogue_now)
        self.settling, self.complained = settling, complained

    def settle(self, tracked: Tracked, timeline: Timeline | None = None) -> None:
        if self.settling:
            super().settle(tracked, timeline)

    def feedback(self, commune_code: str, start: date, end: date, as_of: datetime) -> FeedbackCounts:
        return FeedbackCounts(complained=self.complained)


def answers(figures: Figures, start: date, end: date, as_of: datetime) -> tuple:
    report, counts, judged = figures.counts_of(COMMUNE, start, end, as_of)
    return (report, counts, figures.report(COMMUNE, start, end, as_of),
            figures.on_time_views(COMMUNE, start, end, as_of), figures.scorecard(PROVINCE, start, end, as_of),
            figures.at_risk(COMMUNE, start, end, as_of, as_of + timedelta(days=2), frozenset()))


def plain_views(figures: Figures, start: date, end: date, as_of: datetime) -> tuple:
    """Both views, their disagreements, 5.4's unhappy and DOSSIER_SYNC's cohort part, counted over the
    cohort's timelines with shared.on_time's rules."""
    cut = cut_of(end, as_of, CAL)
    n = dict.fromkeys(("in_time", "judged", "on_time", "received", "differ", "unhappy", "sync", "synced"), 0)
    for t in figures.dossiers.values():
        f = facts_as_of(t.timeline, as_of)
        if not start <= t.received_date <= end or t.counted.received_at > as_of or f is None:
            continue
        portal = judge_portal(t.timeline, cut, CAL, t.counted.receipt_due_at)
        decree = judge_decree(f, as_of, CAL)
        n["received"] += 1
        n["in_time"] += decree == "in_time"
        n["judged"] += decree != "not_judged"
        n["on_time"] += portal.on_time
        n["differ"] += disagreement(decree, portal, CAL) is not None
        n["unhappy"] += f.rating == "unsatisfied" or t.code in figures.complained  # type: ignore[attr-defined]
        if t.counted.arrivals and t.counted.received_at <= cut:
            n["sync"] += 1
            n["synced"] += t.counted.arrivals_synced == t.counted.arrivals
    return tuple(n.values())


def fed(settling: bool, dossiers, verdicts, complained: frozenset[str]) -> Settable:
    figures = Settable(settling, complained)
    codes = []
    for n, (received, receipt, hours, on_receipt, steps) in enumerate(dossiers):
        code = f"000.00.38.H56-250707-{n:04d}"
        due_at = MONDAY + received + timedelta(hours=30) if on_receipt else None
        events = life(code, MONDAY + received, [(t, offset, data) for (t, data), offset in steps],
                      processing_time={"value": hours, "unit": "working_hours"}, due_at=due_at and due_at.isoformat(),
                      **receipt)
        codes.append((code, replace(status_data(events), arrivals=n % 3, arrivals_synced=min(n % 3, 1))))
    for index, signed, verdict, early in verdicts:
        if early and index < len(codes):
            figures.apply_verdict(Verdict(codes[index][0], "KQ-1", MONDAY + signed, COMMUNE, "HT", verdict,
                                          MONDAY + signed))
    for _, counted in codes:
        figures.apply(counted, MONDAY)
    for n, (index, signed, verdict, early) in enumerate(verdicts):
        if not early and index < len(codes):  # a verdict after the dossier settled
            figures.apply_verdict(Verdict(codes[index][0], "KQ-1", MONDAY + signed + timedelta(minutes=n), COMMUNE,
                                          "HT", verdict, MONDAY + signed))
    return figures


@settings(max_examples=150, deadline=None)
@given(DOSSIERS, VERDICTS, st.sets(st.integers(min_value=0, max_value=7)), HOURS, st.integers(min_value=0, max_value=6))
def test_the_sums_of_settled_dossiers_equal_judging_every_dossier_again(dossiers, verdicts, complained, after, days):
    named = frozenset(f"000.00.38.H56-250707-{n:04d}" for n in complained)
    settled, judged = fed(True, dossiers, verdicts, named), fed(False, dossiers, verdicts, named)
    start, end = date(2025, 7, 7), date(2025, 7, 7) + timedelta(days=days)
    for as_of in (MONDAY + after, CAL.end_of_day(end) + timedelta(microseconds=1), MONDAY + timedelta(days=30)):
        assert answers(settled, start, end, as_of) == answers(judged, start, end, as_of)
        report, counts, _ = settled.counts_of(COMMUNE, start, end, as_of)
        views = settled.on_time_views(COMMUNE, start, end, as_of)
        assert (views["decree"]["in_time"], views["decree"]["judged"], views["portal"]["on_time"], report["received"],
                views["disagreements"], counts.unhappy, counts.dossier_sync.denominator,
                counts.dossier_sync.numerator) == plain_views(settled, start, end, as_of)
        assert len(views["dossiers"]) == views["disagreements"]  # fewer than 200: every one listed
    for shift in range(1, 13, 2):  # later periods: DOSSIER_SYNC counts those open at the opening, or returned in it
        later = start + timedelta(days=shift)
        for as_of in (MONDAY + after, MONDAY + timedelta(days=30)):
            assert answers(settled, later, later + timedelta(days=days), as_of) == answers(
                judged, later, later + timedelta(days=days), as_of)
    settled.catalogue_now = judged.catalogue_now = OTHER_CATALOGUE  # the packed contributions priced again
    assert answers(settled, start, end, MONDAY + after) == answers(judged, start, end, MONDAY + after)


def resolved(code: str = "000.00.38.H56-250707-0001", rated: str | None = None) -> Tracked:
    steps = [("dossier.resolved", timedelta(hours=2), {})]
    steps += [("dossier.rated", timedelta(hours=3), {"rating": rated})] if rated else []
    return life(code, MONDAY, steps, processing_time={"value": 8, "unit": "working_hours"}, procedure_code="1.001193")


def test_a_dossier_is_settled_from_its_last_change_and_again_from_a_later_verdict():
    figures = Settable(True, frozenset())
    figures.apply(status_data(resolved()), MONDAY)
    [tracked] = figures.dossiers.values()
    assert tracked.quiet_since == (MONDAY + timedelta(hours=2)).timestamp() and tracked.open_times is None
    day = MONDAY.date()
    electronic = scoring.decode(tracked.packed)["valid_result"]
    figures.apply_verdict(Verdict(tracked.code, "KQ-1", MONDAY + timedelta(days=2), COMMUNE, "HT", "valid",
                                  MONDAY + timedelta(days=1)))
    assert tracked.quiet_since == (MONDAY + timedelta(days=1)).timestamp()  # the verdict's instant
    assert (electronic, scoring.decode(tracked.packed)["valid_result"]) == (0, 1)
    before, after = MONDAY + timedelta(hours=12), MONDAY + timedelta(days=1, hours=1)
    assert figures.counts_of(COMMUNE, day, day, before)[1].electronic_result.numerator == 0  # judged: not yet signed
    assert figures.counts_of(COMMUNE, day, day, after)[1].electronic_result.numerator == 1
    assert [j.tracked for j in figures._tally(COMMUNE, day, day, before).judged] == [tracked]
    assert figures._tally(COMMUNE, day, day, after).judged != []  # the cut (Monday's end) is before the verdict
    two_days = day + timedelta(days=1)
    assert figures._tally(COMMUNE, day, two_days, after).judged == []  # settled by the cut: summed, not judged


def test_a_plain_open_dossier_turns_late_with_the_instant_and_one_with_a_supplement_is_judged_each_time():
    figures = Settable(True, frozenset())
    due = MONDAY + timedelta(hours=30)
    plain = life("000.00.38.H56-250707-0001", MONDAY, [], processing_time={"value": 8, "unit": "working_hours"},
                 due_at=due.isoformat())
    waiting = life("000.00.38.H56-250707-0002", MONDAY, [("dossier.supplement_requested", timedelta(hours=1), {})],
                   processing_time={"value": 8, "unit": "working_hours"}, due_at=due.isoformat())
    figures.apply(status_data(plain), MONDAY)
    figures.apply(status_data(waiting), MONDAY)
    first, second = figures.dossiers.values()
    assert first.open_times is not None and second.quiet_since is None
    day = MONDAY.date()
    for as_of, on_time, state in ((MONDAY + timedelta(hours=1), 1, "within_deadline"), (due, 1, "due_soon"),
                                  (due + timedelta(days=2), 0, "overdue")):
        report, counts, judged = figures.counts_of(COMMUNE, day, day + timedelta(days=5), as_of)
        assert sorted(j.tracked.code for j in judged) == [first.code, second.code]  # both open, for the risk
        tallied = figures._tally(COMMUNE, day, day + timedelta(days=5), as_of)
        assert ([j.tracked for j in tallied.judged], tallied.moving) == ([second], [first])  # the plain one summed
        assert (counts.on_time.numerator, report["open"][state]) == (on_time + 1, 1)  # the request ends it for 2.1
