"""Step timeliness (issue 24, item 4): the step holding a dossier is overdue from the local day after its
own due (the dossier's date rule, docs/domain.md §4, applied to the step), and only counts while the
dossier itself is in time; the units view counts those steps per unit and lists them."""

from datetime import date, datetime, timedelta, timezone

import pytest

from services.metrics.figures import Figures
from services.metrics.queries import step_overdue
from shared.facts import Facts
from tests.fixtures.sample import VN
from tests.unit.test_metrics_figures import CAL, COMMUNE, MONDAY, one, status_data

WEDNESDAY = datetime(2025, 7, 9, 10, 0, tzinfo=VN)


def facts(state="processing", due=WEDNESDAY + timedelta(days=7), step_due=WEDNESDAY, unit="Tư pháp") -> Facts:
    return Facts(since=MONDAY, state=state, due_at=due, timeliness=None, payment_method=None, digitized=False,
                 rating=None, apologies_compliant=0, apologies_non_compliant=0, unit=unit, step_due_at=step_due)


@pytest.mark.parametrize("at, kwargs, overdue", [
    # The step due Wednesday 10:00: still in time all of Wednesday, overdue from Thursday 00:00 local.
    (WEDNESDAY + timedelta(hours=7), {}, False),
    (datetime(2025, 7, 9, 23, 59, 59, tzinfo=VN), {}, False),
    (datetime(2025, 7, 10, 0, 0, tzinfo=VN), {}, True),
    # The same instants in UTC: the local date decides (Wed 17:00 UTC is Thu 00:00 in Vietnam).
    (datetime(2025, 7, 9, 16, 59, 59, tzinfo=timezone.utc), {}, False),
    (datetime(2025, 7, 9, 17, 0, 0, tzinfo=timezone.utc), {}, True),
    # Due soon (the dossier's due within 24 h) is still in time.
    (datetime(2025, 7, 15, 9, 0, tzinfo=VN), {"due": datetime(2025, 7, 16, 8, 0, tzinfo=VN)}, True),
    # The dossier overdue itself: counted as an overdue dossier, not as a step.
    (datetime(2025, 7, 17, 9, 0, tzinfo=VN), {"due": datetime(2025, 7, 16, 8, 0, tzinfo=VN)}, False),
    # Neither on time nor overdue (awaiting a supplement, paused), ended, or a step with no due of its own.
    (datetime(2025, 7, 11, 9, 0, tzinfo=VN), {"state": "awaiting_supplement", "due": None}, False),
    (datetime(2025, 7, 11, 9, 0, tzinfo=VN), {"state": "paused"}, False),
    (datetime(2025, 7, 11, 9, 0, tzinfo=VN), {"state": "resolved"}, False),
    (datetime(2025, 7, 11, 9, 0, tzinfo=VN), {"step_due": None}, False),
])
def test_a_step_is_overdue_from_the_day_after_its_due_while_the_dossier_is_in_time(at, kwargs, overdue):
    assert step_overdue(facts(**kwargs), at, CAL) is overdue


def transferred(to_unit: str, hours: float, step_due: datetime | None) -> tuple:
    data = {"from_unit": "Một cửa", "to_unit": to_unit} | ({"step_due_at": step_due.isoformat()} if step_due else {})
    return "dossier.transferred", timedelta(hours=hours), data


def test_the_units_view_counts_and_lists_the_steps_overdue_in_dossiers_still_in_time():
    """Four dossiers received Monday 10:00 with 5 working days (due Mon 14/7 10:00), as of Thu 10/7 09:00:
    Tư pháp holds two whose step was due Tue and Wed (both overdue), Địa chính one due today (not yet),
    and Văn phòng one overdue itself (1 working day) whose step is overdue too: not counted as a step."""
    figures = Figures(CAL)
    day = lambda d, h=10: datetime(2025, 7, d, h, 0, tzinfo=VN)  # noqa: E731
    lives = [
        one(code="000.00.38.H56-250707-0001", hours=40, steps=[transferred("Tư pháp", 1, day(8))]),
        one(code="000.00.38.H56-250707-0002", hours=40, steps=[transferred("Tư pháp", 2, day(9, 16))]),
        one(code="000.00.38.H56-250707-0003", hours=40, steps=[transferred("Địa chính", 1, day(10, 17))]),
        one(code="000.00.38.H56-250707-0004", hours=8, steps=[transferred("Văn phòng", 1, day(7, 16))]),
        one(code="000.00.38.H56-250707-0005", hours=40, steps=[transferred("Địa chính", 1, None)]),
    ]
    for events in lives:
        figures.apply(status_data(events), MONDAY)
    as_of = day(10, 9)
    rows = {r["unit"]: r for r in figures.units(COMMUNE, date(2025, 7, 7), date(2025, 7, 7), as_of)}
    assert {u: r["steps_overdue"] for u, r in rows.items()} == {
        "Bộ phận tiếp nhận (một cửa)": 0, "Tư pháp": 2, "Địa chính": 0, "Văn phòng": 0}
    assert rows["Văn phòng"]["overdue"] == 1 and rows["Tư pháp"]["open"] == {"within_deadline": 2}
    assert [r["unit"] for r in figures.units(COMMUNE, date(2025, 7, 7), date(2025, 7, 7), as_of)][:2] == [
        "Văn phòng", "Tư pháp"]  # the overdue dossiers' unit first, then the late steps'
    listed = figures.overdue_steps(COMMUNE, date(2025, 7, 7), date(2025, 7, 7), as_of)
    assert listed == [
        {"dossier_code": "000.00.38.H56-250707-0001", "unit": "Tư pháp", "step_due_at": "2025-07-08T10:00:00+07:00",
         "due_at": "2025-07-14T10:00:00+07:00"},
        {"dossier_code": "000.00.38.H56-250707-0002", "unit": "Tư pháp", "step_due_at": "2025-07-09T16:00:00+07:00",
         "due_at": "2025-07-14T10:00:00+07:00"}]
    # A list of at most `limit` (the API shows 1,000: a commune's answer stays small), the oldest due first.
    assert figures.overdue_steps(COMMUNE, date(2025, 7, 7), date(2025, 7, 7), as_of, limit=1) == listed[:1]
    # As of Wednesday evening the second step is still on its own due date.
    assert [s["dossier_code"] for s in figures.overdue_steps(COMMUNE, date(2025, 7, 7), date(2025, 7, 7),
                                                              day(9, 23))] == ["000.00.38.H56-250707-0001"]
