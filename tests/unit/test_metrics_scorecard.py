"""The metrics service's QĐ 766 ratios (services.metrics.queries, scoring) equal a plain re-computation
over the dossiers folded as of the instant: the portal's 2.1 re-derived from each dossier's applied
steps, the other sub-indicators from the folded state and the catalogue."""

from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.metrics.figures import Figures
from shared.catalogue import Catalogue, Procedure
from shared.dossier import Dossier, fold
from shared.on_time import cut_of
from shared.scorecard import Tally, tallies
from tests.unit.test_metrics_figures import CAL, COMMUNE, HOURS, MONDAY, STEPS, life, status_data

CATALOGUE = Catalogue(procedures={
    "1.001193": Procedure(name="Đăng ký khai sinh", processing_time={"value": 1, "unit": "working_days"},
                          online_level="full", full_online_eligible=True, paper_result=True, fee_bearing=False),
    "2.000908": Procedure(name="Chứng thực bản sao", processing_time={"value": 1, "unit": "working_days"},
                          online_level="partial", full_online_eligible=False, paper_result=False, fee_bearing=True),
})
RECEIPTS = st.fixed_dictionaries({
    "procedure_code": st.sampled_from(["1.001193", "2.000908", "9.999999"]),  # the last one: not in the catalogue
    "channel": st.sampled_from(["direct", "online", "postal"]),
    "online_level": st.sampled_from(["full", "partial"]),
    "components": st.lists(st.fixed_dictionaries({"code": st.just("TP1"), "digitized": st.booleans(),
                                                  "reused": st.booleans(), "from_personal_store": st.booleans()}),
                           max_size=2),
    "vneid_authenticated": st.booleans(),
    "fees": st.lists(st.fixed_dictionaries({"code": st.just("LP"), "amount": st.sampled_from([0, 20000])}),
                     max_size=2),
}).map(lambda r: r | {"online_level": r["online_level"] if r["channel"] == "online" else None})
MORE_STEPS = [*STEPS, ("dossier.result_issued", {"document_id": "KQ-1", "code": "1/KS"}),
              ("dossier.supplement_requested", {}), ("dossier.resolved", {})]
DOSSIERS = st.lists(st.tuples(HOURS, RECEIPTS, st.sampled_from([2, 8, 24]), st.booleans(),
                              st.lists(st.tuples(st.sampled_from(MORE_STEPS), HOURS), max_size=7)),
                    min_size=1, max_size=8)


def plain_on_time(d: Dossier, appointment: datetime, cut: datetime) -> bool:
    """2.1 (docs/domain.md §6) from a dossier's applied steps up to the cut."""
    steps = sorted(d.history, key=lambda s: s.time)
    times: dict[str, list[datetime]] = {}
    for s in steps:
        times.setdefault(s.type, []).append(s.time)
    requests, returns = times.get("dossier.supplement_requested", []), times.get("dossier.supplement_received", [])
    if len(requests) > 1:
        return False
    ends = [times[t][0] for t in ("dossier.resolved", "dossier.returned", "dossier.stopped", "dossier.withdrawn")
            if t in times]
    end = ends[0] if ends else requests[0] if requests and not returns else cut
    away = sum((back - asked for asked, back in zip(requests, returns) if back <= end), timedelta())
    resuming = {"dossier.obligation_fulfilled", "dossier.supplement_requested", "dossier.stopped", "dossier.withdrawn"}
    for paused in times.get("dossier.obligation_requested", []):
        if paused > end:
            break
        resumed = next((s.time for s in steps if s.time > paused and s.type in resuming), end)
        left = CAL.working_between(paused, appointment) if appointment > paused else timedelta()
        if left:
            appointment = CAL.add_working(min(resumed, end), left)
    return end - away <= appointment


def plain(histories, start: date, end: date, as_of: datetime) -> dict[str, Tally]:
    cut = cut_of(end, as_of, CAL)
    n = dict.fromkeys(("received", "on_time", "eligible", "full", "fee", "paid", "paper", "valid", "digitized",
                       "reused", "personal", "population"), 0)
    for events, due_at in histories:
        d = fold(events, CAL, as_of=as_of).dossier
        if d is None or not start <= d.received_date <= end:
            continue
        r, procedure = d.received, CATALOGUE.get(d.received.procedure_code)
        paper = procedure is None or procedure.paper_result
        n["received"] += 1
        n["on_time"] += plain_on_time(fold(events, CAL, as_of=cut).dossier,
                                      due_at or CAL.add_working(r.received_at, d.processing_time), cut)
        if procedure is not None and procedure.full_online_eligible:
            n["eligible"] += 1
            n["full"] += r.channel == "online" and r.online_level == "full"
        if (procedure is None or procedure.fee_bearing) and r.fees_total != 0:
            n["fee"] += 1
            n["paid"] += d.payment_method == "online"
        n["paper"] += paper and d.state in ("resolved", "returned")
        n["digitized"] += (r.component_digitized or d.digitized) and (d.result_issued or not paper)
        n["reused"] += r.component_reused
        n["personal"] += r.component_from_personal_store or d.result_sent_to_personal_store
        n["population"] += r.vneid_authenticated or r.population_data
    received = n["received"]
    return {"on_time": Tally(n["on_time"], received), "end_to_end_online": Tally(n["full"], n["eligible"]),
            "online_payment": Tally(n["paid"], n["fee"]), "electronic_result": Tally(0, n["paper"]),
            "digitized_dossier": Tally(n["digitized"], received), "reused_data": Tally(n["reused"], received),
            "personal_store": Tally(n["personal"], received), "population_data": Tally(n["population"], received)}


@settings(max_examples=150, deadline=None)
@given(DOSSIERS, HOURS, st.integers(min_value=0, max_value=6))
def test_the_766_ratios_equal_a_plain_recomputation_over_the_folded_dossiers(dossiers, after, days):
    histories = []
    for n, (received, receipt, hours, on_receipt, steps) in enumerate(dossiers):
        due_at = MONDAY + received + timedelta(hours=30) if on_receipt else None
        events = life(f"000.00.38.H56-250707-{n:04d}", MONDAY + received,
                      [(t, offset, data) for (t, data), offset in steps],
                      processing_time={"value": hours, "unit": "working_hours"}, due_at=due_at and due_at.isoformat(),
                      **receipt)
        histories.append((events, due_at))
    figures = Figures(CAL, lambda: CATALOGUE)
    for events, _ in histories:
        figures.apply(status_data(events), MONDAY)
    as_of = MONDAY + after
    start, end = date(2025, 7, 7), date(2025, 7, 7) + timedelta(days=days)
    _, counts, _ = figures.counts_of(COMMUNE, start, end, as_of)
    found = tallies(counts)
    expected = plain(histories, start, end, as_of)
    assert {key: found[key] for key in expected} == expected


def test_a_scorecard_row_is_computed_again_once_something_it_counts_changed():
    from datetime import time

    from services.metrics.figures import Verdict
    from shared.communes import communes_of_province
    province = [c for c in communes_of_province("38") if c.code == COMMUNE]
    figures = Figures(CAL, lambda: CATALOGUE)
    code = "000.00.38.H56-250707-0001"
    received = life(code, MONDAY, [], processing_time={"value": 8, "unit": "working_hours"})
    figures.apply(status_data(received), MONDAY)
    day, as_of = MONDAY.date(), datetime.combine(MONDAY.date() + timedelta(days=3), time(12), MONDAY.tzinfo)

    def row() -> dict:
        return figures.scorecard(province, day, day, as_of)[0]

    first = row()
    assert row() is not first and row()["score"] == first["score"]  # remembered: the same numbers
    resolved = life(code, MONDAY, [("dossier.resolved", timedelta(hours=2), {})],
                    processing_time={"value": 8, "unit": "working_hours"})
    figures.apply(status_data(resolved), MONDAY)
    electronic = next(s for s in row()["sub_indicators"] if s["key"] == "electronic_result")
    assert (electronic["numerator"], electronic["denominator"]) == (0, 1)  # the new announcement counted
    figures.apply_verdict(Verdict(code, "KQ-1", MONDAY + timedelta(hours=3), COMMUNE, "HT", "valid", MONDAY))
    electronic = next(s for s in row()["sub_indicators"] if s["key"] == "electronic_result")
    assert (electronic["numerator"], electronic["denominator"]) == (1, 1)  # and the verdict


def test_a_row_names_at_most_fifty_procedures_the_catalogue_lacks():
    """Security review: senders choose procedure codes; a row listed every unknown one."""
    from services.metrics.scoring import missing_procedures
    codes = [f"9.{n:06d}" for n in range(500)] + ["1.001193"]
    assert missing_procedures(codes, CATALOGUE) == sorted(codes[:-1])[:50]
