"""Which collections a metrics replica's store owns (services/metrics/store.py): several replicas may share a
database, each under its own prefix, and one must never read, drop or rebuild another's."""

import pytest

from services.metrics.store import Collections

NAMES = ["state", "returned", "archive", "feedback", "feedback_archive", "log_2025q3", "carried_12"]


def store(replica: str) -> Collections:
    return Collections.of(replica)


@pytest.mark.parametrize("replica, other", [("", "north"), ("", "log"), ("", "carried"), ("", "returned"), ("north", "north_2"),
                                            ("log", "log_2025q3"), ("a", "a_b")])
def test_a_replica_owns_its_own_collections_and_none_of_another(replica: str, other: str) -> None:
    mine, theirs = store(replica), store(other)
    for name in NAMES:
        assert mine.owns(f"{mine.prefix}_{name}") and theirs.owns(f"{theirs.prefix}_{name}")
        assert not mine.owns(f"{theirs.prefix}_{name}"), f"{mine.prefix} would take {theirs.prefix}_{name}"
        assert not theirs.owns(f"{mine.prefix}_{name}")


def test_the_logs_and_carried_collections_are_told_apart() -> None:
    default = store("")
    assert default.is_log("metrics_log_2025q3") and not default.is_log("metrics_log_log_2025q3")
    assert default.is_carried("metrics_carried_3") and not default.is_carried("metrics_carried_x_carried_3")
    assert not default.owns("metrics_log_2025q5") and not default.owns("metrics_other")
