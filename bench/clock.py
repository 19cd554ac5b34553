"""The instants the benches' services take for now, whatever the day a bench runs (bench/harness.py
`start_service(now=…)`). Nothing here touches the environment on import: unit tests read it
(tests/unit/test_bench_clock.py)."""

from datetime import datetime

from tests.fixtures.sample import VN

# For a bench whose data is dated in 2025: just after that year, so the services' metrics horizon (8 quarters
# back), the quarter whose points at risk a start computes, the clock's changes and processing's retention are the
# same in every run. On the real clock such a bench measured another thing once the year fell behind the horizon,
# and bench-scaling's check of the dossiers held would have failed from 2027-04-01 (in `make test` too).
BENCH_NOW = datetime(2026, 1, 1, tzinfo=VN)
# bench-metrics' now: the province-year's last evening (its in-process loads, its service's start and restarts).
YEAR_END = datetime(2025, 12, 31, 17, tzinfo=VN)


def clock_at(instant: datetime) -> dict[str, str]:
    """The variables that make a service's clock read `instant` now (an offset from the wall clock, which goes on
    ticking: the local stack's DOSSIER_CLOCK_OFFSET_SECONDS)."""
    return {"DOSSIER_CLOCK_OFFSET_SECONDS": f"{(instant - datetime.now(instant.tzinfo)).total_seconds():.3f}"}
