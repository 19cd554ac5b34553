"""The metrics service's figures: reports from timelines equal the fold, counts, the clock, exposition."""

from collections import Counter
from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.sample import VN, event
from services.metrics.exposition import render
from services.metrics.figures import Counted, Figures, held, held_from, verdict_of
from shared.calendar import WorkingCalendar
from shared.contracts import SignatureData, status_changed, status_of
from shared.dossier import fold
from shared.events import parse_event
from shared.report import commune_report

CAL = WorkingCalendar.load()
COMMUNE = "14923"  # Xã Bá Thước, Thanh Hóa
MONDAY = datetime(2025, 7, 7, 10, 0, tzinfo=VN)


def status_data(events) -> Counted:
    """What processing announces once it has folded these events, as the figures take it."""
    folded = fold(events, CAL)
    record = status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(events))
    return Counted.of(record.data)


def life(code: str, received: datetime, steps, **receipt):
    events = [event("dossier.received", code, received, id_=f"{code}-r", **receipt)]
    events += [event(t, code, received + offset, id_=f"{code}-{n}", **data) for n, (t, offset, data) in
               enumerate(steps)]
    return [parse_event(e) for e in events]


STEPS = [
    ("dossier.digitized", {}),
    ("dossier.supplement_requested", {}),
    ("dossier.supplement_received", {}),
    ("dossier.obligation_requested", {}),
    ("dossier.payment_completed", {"method": "offline"}),
    ("dossier.payment_completed", {"method": "online"}),
    ("dossier.obligation_fulfilled", {}),
    ("dossier.apology_issued", {}),
    ("dossier.withdrawn", {}),
    ("dossier.stopped", {}),
    ("dossier.resolved", {}),
    ("dossier.returned", {}),
    ("dossier.rated", {"rating": "unsatisfied"}),
    ("dossier.rated", {"rating": "satisfied"}),
]
HOURS = st.integers(min_value=0, max_value=24 * 12).map(lambda h: timedelta(hours=h))
DOSSIERS = st.lists(
    st.tuples(
        HOURS,  # received after MONDAY
        st.sampled_from([{"channel": "direct", "online_level": None}, {"channel": "online", "online_level": "full"},
                         {"channel": "postal", "online_level": None}]),
        st.sampled_from([2, 8, 24, 40]),  # working hours
        st.lists(st.tuples(st.sampled_from(STEPS), HOURS), max_size=6),
    ),
    min_size=1, max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(DOSSIERS, HOURS, st.integers(min_value=0, max_value=6))
def test_a_report_from_timelines_equals_the_report_from_folds_as_of_the_instant(dossiers, after, days):
    histories = []
    for n, (received, receipt, hours, steps) in enumerate(dossiers):
        histories.append(life(f"000.00.38.H56-250707-{n:04d}", MONDAY + received,
                              [(t, offset, data) for (t, data), offset in steps],
                              processing_time={"value": hours, "unit": "working_hours"}, **receipt))
    figures = Figures(CAL)
    for events in histories:
        figures.apply(status_data(events), MONDAY)
    as_of = MONDAY + after
    start, end = date(2025, 7, 7), date(2025, 7, 7) + timedelta(days=days)
    folded = [fold(events, CAL, as_of=as_of).dossier for events in histories]
    expected = commune_report([d for d in folded if d], start, end, as_of, CAL)
    assert figures.report(COMMUNE, start, end, as_of) == expected


def one(code="000.00.38.H56-250707-0001", steps=(), hours=8, received=MONDAY, **receipt):
    return life(code, received, steps, processing_time={"value": hours, "unit": "working_hours"}, **receipt)


def test_counts_follow_the_latest_status_of_each_dossier_only():
    figures = Figures(CAL)
    received = one()
    resolved = one(steps=[("dossier.resolved", timedelta(hours=2), {}),
                          ("dossier.rated", timedelta(hours=3), {"rating": "satisfied"})])
    assert figures.apply(status_data(received), MONDAY)
    assert figures.apply(status_data(resolved), MONDAY + timedelta(hours=3))
    assert not figures.apply(status_data(received), MONDAY)  # an older status changes nothing
    counts = {k: v for k, v in figures.counts.items() if v}
    assert counts == {
        ("received", COMMUNE, "HT", "online", "full"): 1,
        ("completed", COMMUNE, "HT", "early"): 1,
        ("ratings", COMMUNE, "HT", "satisfied"): 1,
    }


def test_the_clock_moves_open_dossiers_at_the_right_instants_and_announces_each_change():
    figures = Figures(CAL)
    figures.apply(status_data(one(hours=16)), MONDAY)  # due Wed 9/7 10:00
    assert figures.counts["open", COMMUNE, "HT", "within_deadline"] == 1
    assert figures.tick(MONDAY + timedelta(hours=23)) == []
    [soon] = figures.tick(MONDAY + timedelta(days=1))  # Tue 10:00: 24 h before the due
    assert (soon.at, soon.old, soon.new) == (MONDAY + timedelta(days=1), "within_deadline", "due_soon")
    assert figures.counts["open", COMMUNE, "HT", "due_soon"] == 1
    [late] = figures.tick(datetime(2025, 7, 10, 0, 0, tzinfo=VN))  # the day after the due's
    assert (late.old, late.new) == ("due_soon", "overdue")
    assert figures.counts["open", COMMUNE, "HT", "overdue"] == 1
    assert figures.counts["open", COMMUNE, "HT", "due_soon"] == 0
    assert figures.tick(datetime(2025, 7, 20, tzinfo=VN)) == []


def test_after_a_restart_every_change_missed_meanwhile_is_announced():
    figures = Figures(CAL)
    later = datetime(2025, 7, 11, tzinfo=VN)
    figures.apply(status_data(one(hours=16)), later)  # loaded after the due passed
    assert figures.counts["open", COMMUNE, "HT", "overdue"] == 1
    assert [(t.old, t.new) for t in figures.tick(later)] == [("within_deadline", "due_soon"), ("due_soon", "overdue")]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20 * 24), st.integers(1, 60)), min_size=1, max_size=40), st.integers(1, 9),
       st.integers(0, 40 * 24))
def test_a_tick_taken_a_few_dossiers_at_a_time_moves_what_one_tick_moves(lives, at_most, hours_later):
    """What a restart's first tick does, a thousand dossiers at a time (services/metrics/ticker.py): the same changes,
    each dossier's in order, and the same counts."""
    def loaded() -> Figures:
        figures = Figures(CAL)
        for n, (received, hours) in enumerate(lives):
            code = f"000.00.38.H56-250707-{n:04d}"
            figures.apply(status_data(one(code, hours=hours, received=MONDAY + timedelta(hours=received))), MONDAY)
        return figures

    later = MONDAY + timedelta(hours=hours_later)
    whole, chunked = loaded(), loaded()
    at_once = [(t.receipt.dossier_code, t.at, t.old, t.new) for t in whole.tick(later)]
    in_steps = []
    while chunked.due_by(later):
        in_steps += [(t.receipt.dossier_code, t.at, t.old, t.new) for t in chunked.tick(later, at_most)]
    assert sorted(in_steps) == sorted(at_once)
    for code in {c for c, *_ in at_once}:
        assert [t for t in in_steps if t[0] == code] == [t for t in at_once if t[0] == code]
    assert +chunked.counts == +whole.counts and not chunked.due_by(later)


def test_a_change_of_facts_reschedules_the_clock():
    figures = Figures(CAL)
    figures.apply(status_data(one(hours=16)), MONDAY)
    ended = one(hours=16, steps=[("dossier.resolved", timedelta(hours=1), {})])
    figures.apply(status_data(ended), MONDAY + timedelta(hours=1))
    assert figures.tick(datetime(2025, 7, 20, tzinfo=VN)) == []
    assert sum(v for k, v in figures.counts.items() if k[0] == "open") == 0


def test_the_exposition_has_the_contract_names_and_can_drop_the_sector():
    figures = Figures(CAL)
    figures.apply(status_data(one()), MONDAY)
    figures.apply(status_data(one(code="000.00.38.H56-250707-0002", sector="DD")), MONDAY)
    families = {f.name: f for f in text_string_to_metric_families(render(figures.counts).decode())}
    assert set(families) >= {"dossier_received", "dossier_open", "dossier_commune_info", "dossier_completed"}
    # Only what never decreases is a counter (contract v1.1).
    assert {n for n, f in families.items() if f.type == "counter"} == {"dossier_received", "dossier_digitized"}
    [info] = families["dossier_commune_info"].samples
    assert info.labels == {"commune": COMMUNE, "name": "Xã Bá Thước", "province": "38"}
    by_sector = [s for s in families["dossier_received"].samples if s.name == "dossier_received_total"]
    assert sorted(s.labels["sector"] for s in by_sector) == ["DD", "HT"]
    merged = {f.name: f for f in text_string_to_metric_families(render(figures.counts, sector_label=False).decode())}
    [total] = [s for s in merged["dossier_received"].samples if s.name == "dossier_received_total"]
    assert total.value == 2 and "sector" not in total.labels


def test_a_document_counts_once_under_its_latest_verdict():
    figures = Figures(CAL)
    data = {"dossier_code": "X", "document_id": "KQ-1", "commune_code": COMMUNE, "sector": "HT", "reasons": [],
            "document_sha256": "ab" * 32, "signatures": []}

    def verdict(verdict: str, hour: int, **more) -> tuple[SignatureData, datetime]:
        return SignatureData(**data | more, verdict=verdict), datetime(2026, 3, 2, hour, tzinfo=VN)

    assert figures.apply_verdict(verdict_of(*verdict("invalid", 10)))
    assert figures.apply_verdict(verdict_of(*verdict("valid", 11)))
    assert not figures.apply_verdict(verdict_of(*verdict("invalid", 10)))  # older
    assert verdict_of(*verdict("valid", 12, commune_code=None)) is None  # no commune to count it in
    counts = {k[-1]: v for k, v in figures.counts.items() if k[0] == "signatures"}
    assert counts == {"invalid": 0, "valid": 1}


def test_where_dossiers_wait_counts_the_working_hours_each_unit_held_them_and_what_it_holds_now():
    figures = Figures(CAL)
    ended = one(steps=[("dossier.transferred", timedelta(hours=1), {"from_unit": "Một cửa", "to_unit": "Tư pháp"}),
                       ("dossier.resolved", timedelta(days=1), {})])
    waiting = one(code="000.00.38.H56-250707-0002", hours=8, steps=[
        ("dossier.transferred", timedelta(hours=1), {"from_unit": "Một cửa", "to_unit": "Địa chính"})])
    for events in (ended, waiting):
        figures.apply(status_data(events), MONDAY)
    as_of = datetime(2025, 7, 9, 9, 0, tzinfo=VN)  # Wed 09:00: the second is overdue since Wed 00:00
    rows = {r["unit"]: r for r in figures.units(COMMUNE, date(2025, 7, 7), date(2025, 7, 7), as_of)}
    # Received Mon 10:00, transferred at 11:00: 1 h at reception each. The first resolved Tue 10:00:
    # Tư pháp held it Mon 11-12, 13-17 and Tue 08-10 (7 h). Địa chính holds the second since Mon 11:00.
    assert rows["Bộ phận tiếp nhận (một cửa)"]["working_hours_held"] == 2.0
    assert rows["Tư pháp"]["working_hours_held"] == 7.0 and rows["Tư pháp"]["open"] == {}
    assert rows["Địa chính"]["working_hours_held"] == 5.0 + 8.0 + 1.0
    assert rows["Địa chính"]["open"] == {"overdue": 1} and rows["Địa chính"]["overdue"] == 1
    assert list(rows)[0] == "Địa chính"  # the desk holding the late files first


@settings(max_examples=100, deadline=None)
@given(DOSSIERS, HOURS, st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=24 * 12))
def test_dossiers_ended_before_the_horizon_leave_memory_and_read_back_give_the_same_reports(
        dossiers, after, days, horizon_hours):
    """What compaction does (services/metrics/core.py): the ended dossiers leave, their counts stay,
    and a report over the memory with the archive read back equals the report before they left."""
    histories = [life(f"000.00.38.H56-250707-{n:04d}", MONDAY + received, [(t, offset, data) for (t, data), offset in steps],
                      processing_time={"value": hours, "unit": "working_hours"}, **receipt)
                 for n, (received, receipt, hours, steps) in enumerate(dossiers)]
    figures = Figures(CAL)
    for events in histories:
        figures.apply(status_data(events), MONDAY + timedelta(days=30))
    sign = verdict_of(SignatureData(dossier_code=histories[0][0].subject, document_id="KQ-1", commune_code=COMMUNE,
                                    sector="HT", verdict="valid", reasons=[], document_sha256="ab" * 32,
                                    signatures=[]), MONDAY + timedelta(days=20))
    figures.apply_verdict(sign)
    as_of, start, end = MONDAY + after, date(2025, 7, 7), date(2025, 7, 7) + timedelta(days=days)
    before = (figures.report(COMMUNE, start, end, as_of), figures.counts_of(COMMUNE, start, end, as_of)[1])
    counts = figures.counts.copy()

    ended = figures.ended_before(MONDAY + timedelta(hours=horizon_hours))
    archived = [(status_data_of(figures, t.code), figures.verdicts_of(t.code)) for t in ended]
    assert figures.counted_by((t, figures.verdicts_of(t.code)) for t in ended) == _counts_of(ended, figures)
    figures.forget({t.code for t in ended})
    assert all(t.code not in figures.dossiers for t in ended) and figures.counts == counts
    view = figures.including(archived)
    assert (view.report(COMMUNE, start, end, as_of), view.counts_of(COMMUNE, start, end, as_of)[1]) == before
    figures.tick(MONDAY + timedelta(days=60))  # a forgotten dossier's entry in the clock is passed over, not read


def status_data_of(figures: Figures, code: str) -> Counted:
    return figures.dossiers[code].counted


def _counts_of(ended, figures: Figures) -> Counter:
    counts: Counter = Counter()
    for t in ended:
        single = Figures(CAL)
        single.apply(status_data_of(figures, t.code), MONDAY + timedelta(days=30))
        for v in figures.verdicts_of(t.code):
            single.apply_verdict(v)
        counts.update({k: v for k, v in single.counts.items() if v})
    return counts


def test_a_dossier_read_back_from_the_archive_counts_once_beside_a_newer_one_in_memory():
    figures = Figures(CAL)
    resolved = one(steps=[("dossier.resolved", timedelta(hours=2), {})])
    rated = one(steps=[("dossier.resolved", timedelta(hours=2), {}), ("dossier.rated", timedelta(days=400),
                                                                       {"rating": "unsatisfied"})])
    archived = status_data(resolved)
    figures.apply(status_data(rated), MONDAY + timedelta(days=400))
    view = figures.including([(archived, [])])
    report = view.report(COMMUNE, date(2025, 7, 7), date(2025, 7, 7), MONDAY + timedelta(days=401))
    assert report["received"] == 1 and report["ratings"]["unsatisfied"] == 1


@settings(max_examples=100, deadline=None)
@given(DOSSIERS)
def test_a_status_record_is_held_as_its_counted_announcement_is(dossiers):
    """`held_from` makes the receipt once; what it holds is what `held(Counted.of(...))` held."""
    for n, (after, receipt, hours, steps) in enumerate(dossiers):
        code = f"000.00.38.H56-250707-{n:04d}"
        events = life(code, MONDAY + after, [(t, offset, data) for (t, data), offset in steps],
                      processing_time={"value": hours, "unit": "working_hours"}, **receipt)
        folded = fold(events, CAL)
        data = status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(events)).data
        assert held_from(data) == held(Counted.of(data))
