"""The benches' services run at fixed instants (bench/clock.py: BENCH_NOW, YEAR_END), whatever the
day: on the wall clock, their data (dated in 2025) fell behind the metrics horizon as the calendar moved on, and
what they measured changed (bench-scaling's check of the dossiers held failed from 2027-04-01)."""

import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from bench.clock import BENCH_NOW, YEAR_END, clock_at
from services.metrics.settings import MetricsSettings
from services.metrics.store import quarter
from shared.calendar import WorkingCalendar, quarters_before
from shared.settings import ServiceSettings
from tests.fixtures.sample import VN

CAL = WorkingCalendar.load()
FIRST_DAY_OF_DATA = date(2025, 1, 1)  # the earliest receipt of any bench's data


def horizon_at(now: datetime) -> str:
    """The quarter a metrics service at `now` keeps in memory from (services/metrics/compaction.py horizon_of)."""
    quarters = MetricsSettings.model_fields["metrics_horizon_quarters"].default
    return quarter(quarters_before(CAL.local(now).date(), quarters))


@pytest.mark.parametrize("now", [BENCH_NOW, YEAR_END], ids=["BENCH_NOW", "YEAR_END"])
def test_the_benches_data_is_within_the_horizon_of_their_now(now: datetime) -> None:
    assert horizon_at(now) <= quarter(FIRST_DAY_OF_DATA)
    assert now.date() >= date(2025, 12, 31)  # after the data: the year's dossiers all received


def test_on_the_wall_clock_the_data_falls_behind_the_horizon() -> None:
    """What the fixed instants prevent: a service started on 2027-04-01 archives the first quarter of 2025."""
    assert horizon_at(datetime(2027, 4, 1, tzinfo=VN)) > quarter(FIRST_DAY_OF_DATA)


@pytest.mark.parametrize("instant", [BENCH_NOW, YEAR_END, datetime(2031, 2, 14, 21, tzinfo=VN)])
def test_a_service_started_with_clock_at_reads_the_instant(instant: datetime) -> None:
    offset = float(clock_at(instant)["DOSSIER_CLOCK_OFFSET_SECONDS"])
    clock = ServiceSettings(environment="local", clock_offset_seconds=offset).clock
    assert abs(clock() - instant) < timedelta(seconds=5)


def test_reading_the_benches_instants_leaves_the_environment_alone() -> None:
    """The unit tests read them: bench/harness.py makes the environment the local stack's on import, and the unit
    tests of what a service refuses outside the local stack then passed for the wrong reason, or failed."""
    script = "import os; before = dict(os.environ); import bench.clock; assert dict(os.environ) == before"
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[2])
