"""The report API's period (services/metrics/app.py parse_period): what it refuses with a 400."""

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from services.metrics.app import parse_period

NOW = datetime(2026, 12, 4, 21, tzinfo=UTC)


@pytest.mark.parametrize("start, end, says", [
    ("2025-07-01", "9999-12-31", "to must be before 9999-12-31"),  # the day after `to` ends the period
    ("2025-07-02", "2025-07-01", "is after to"),
    ("2025-07-01", None, "required dates"),
])
def test_a_period_that_cannot_be_reported_is_a_400_saying_why(start, end, says):
    """Security review: to=9999-12-31 answered 500 (the period's end, the next day, does not exist)."""
    with pytest.raises(HTTPException) as refused:
        parse_period(start, end, None, lambda: NOW)
    assert refused.value.status_code == 400 and says in refused.value.detail


def test_a_period_is_its_two_dates_and_now_unless_told():
    assert parse_period("2025-07-01", "2025-09-30", None, lambda: NOW)[2] == NOW
