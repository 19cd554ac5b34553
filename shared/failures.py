"""How many unexpected failures a partition may dead-letter before its consumer stops it (arroyo's DlqLimit).

A record that is itself bad (it does not parse, or the rules reject it) is dead-lettered and never
counts here. A record whose handling raises anything else may be a poison record, or the sign of a bug
or an outage that fails every record: dead-lettering those would empty the partition into the
dead-letter topic and commit past it. So each partition keeps its recent outcomes; too many unexpected
failures in a row, or too large a share of the last `window` records, and the partition stops (not
committed, tried again later) instead.
"""

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class FailureLimit:
    consecutive: int = 10  # unexpected failures in a row
    ratio: float = 0.5  # share of unexpected failures among the last `window` records handled
    window: int = 100


class PartitionHealth:
    """One partition's recent outcomes, judged against the limit."""

    def __init__(self, limit: FailureLimit):
        self.limit = limit
        self._recent: deque[bool] = deque(maxlen=limit.window)  # True: an unexpected failure
        self._failed = 0  # failures in `_recent`
        self.consecutive = 0

    def _add(self, failed: bool) -> None:
        if len(self._recent) == self._recent.maxlen and self._recent[0]:
            self._failed -= 1
        self._recent.append(failed)
        self._failed += failed

    def passed(self, count: int = 1) -> None:
        self.consecutive = 0
        for _ in range(min(count, self.limit.window)):
            self._add(False)

    def failed(self) -> None:
        self.consecutive += 1
        self._add(True)

    def over(self) -> str | None:
        """Why the partition must stop, or None."""
        if self.consecutive >= self.limit.consecutive:
            return f"{self.consecutive} unexpected failures in a row"
        if len(self._recent) == self.limit.window and self._failed > self.limit.ratio * self.limit.window:
            return f"{self._failed} unexpected failures in the last {self.limit.window} records"
        return None
