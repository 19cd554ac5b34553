"""When a partition's unexpected failures stop it (shared/failures.py): in a row, or as a share of a window."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.failures import FailureLimit, PartitionHealth

LIMIT = FailureLimit(consecutive=3, ratio=0.5, window=6)


def judged(outcomes: str) -> str | None:
    """`outcomes` oldest first: `.` a record passed, `x` an unexpected failure."""
    health = PartitionHealth(LIMIT)
    for outcome in outcomes:
        health.failed() if outcome == "x" else health.passed()
    return health.over()


@pytest.mark.parametrize("outcomes, stops", [
    ("", None),
    ("x", None),  # one poison record: dead-lettered, the partition flows
    ("xx", None),
    ("xxx", "3 unexpected failures in a row"),
    ("xx.xx", None),  # a record passing in between: not in a row, and the window is not full
    ("x.x.x.", None),  # half of the window: not more than half
    ("x.x.xx", "4 unexpected failures in the last 6 records"),
    ("x.xx.x", "4 unexpected failures in the last 6 records"),
    ("xx.xx." + "......", None),  # the failures slid out of the window
    ("......" + "xx.", None),
])
def test_a_partition_stops_after_failures_in_a_row_or_over_a_share_of_the_window(outcomes, stops):
    assert judged(outcomes) == stops


def test_a_batch_that_passes_counts_each_of_its_records_and_ends_a_row():
    health = PartitionHealth(LIMIT)
    health.failed(), health.failed()
    health.passed(500)  # a whole batch passed
    health.failed(), health.failed()
    assert health.over() is None and health.consecutive == 2


@given(st.text(alphabet=".x", max_size=60))
def test_a_partition_stops_only_when_it_has_failed_that_often(outcomes):
    stops = judged(outcomes) is not None
    run = len(outcomes) - len(outcomes.rstrip("x"))
    last = outcomes[-LIMIT.window:]
    assert stops == (run >= LIMIT.consecutive or (len(outcomes) >= LIMIT.window and last.count("x") > 3))
