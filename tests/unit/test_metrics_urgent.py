"""`dossier_urgent_due_timestamp_seconds`: the first overdue and due-soon dossiers of each commune,
by due, as the officers' alerts name them (docs/alerts.md)."""

from datetime import datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from services.metrics.exposition import render, render_urgent
from services.metrics.figures import Figures
from tests.fixtures.sample import VN
from tests.unit.test_metrics_figures import CAL, COMMUNE, MONDAY, one, status_data


def urgent(figures: Figures) -> dict[tuple[str, str, str], float]:
    [family] = [f for f in text_string_to_metric_families(render_urgent(figures.counts).decode())
                if f.name == "dossier_urgent_due_timestamp_seconds"]
    return {(s.labels["commune"], s.labels["state"], s.labels["dossier"]): s.value for s in family.samples}


def test_metrics_carries_no_dossier_code():
    """They are served to Prometheus' scrape token alone (/metrics/dossiers, docs/security.md)."""
    figures = Figures(CAL)
    figures.apply(status_data(one(code(1), hours=1)), MONDAY)
    assert code(1) not in render(figures.counts).decode() and code(1) in render_urgent(figures.counts).decode()


def code(n: int) -> str:
    return f"000.00.38.H56-250707-{n:04d}"


def test_the_first_five_overdue_and_due_soon_dossiers_of_a_commune_by_due_and_none_other():
    figures = Figures(CAL)
    for n in range(7):  # due Monday 11:00 ... 17:00
        figures.apply(status_data(one(code(n), hours=n + 1)), MONDAY)
    figures.apply(status_data(one(code(10), hours=40)), MONDAY)  # due in a week: within its deadline
    figures.apply(status_data(one(code(11), hours=1, commune_code="14797")), MONDAY)
    assert set(urgent(figures)) == {(COMMUNE, "due_soon", code(n)) for n in range(5)} | {
        ("14797", "due_soon", code(11))}
    assert urgent(figures)[COMMUNE, "due_soon", code(0)] == datetime(2025, 7, 7, 11, tzinfo=VN).timestamp()

    figures.tick(datetime(2025, 7, 8, 0, 0, tzinfo=VN))  # the day after Monday's dues: overdue
    assert set(urgent(figures)) == {(COMMUNE, "overdue", code(n)) for n in range(5)} | {
        (COMMUNE, "due_soon", code(6)), ("14797", "overdue", code(11))}  # 6 is due Tuesday 09:00


def test_a_dossier_leaves_the_gauge_when_it_ends_and_the_counts_keep_no_trace_of_it():
    figures = Figures(CAL)
    figures.apply(status_data(one(code(1), hours=2)), MONDAY)
    assert list(urgent(figures)) == [(COMMUNE, "due_soon", code(1))]
    resolved = one(code(1), hours=2, steps=[("dossier.resolved", timedelta(hours=1), {})])
    figures.apply(status_data(resolved), MONDAY + timedelta(hours=1))
    assert urgent(figures) == {}
    assert not [key for key in figures.counts if key[0] == "urgent"]

