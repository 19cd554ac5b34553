"""Sliding windows of events per key, in memory: the lookup's attempts per client, the SMS replies per
number (a bound per replica against floods; what must hold across replicas is counted in the database)."""

import time
from collections import OrderedDict, deque
from typing import Any


class Windows:
    """A sliding window per key: at most `limit` events in `seconds`, in memory (per replica: a bound
    on guessing and on replies, not an accounting).

    Keys are kept in the order of their last event, so each `add` forgets, from the front, every key
    whose events are all past: what it holds is the keys active within the window, however many
    distinct keys came before (a flood of addresses or numbers, each seen once)."""

    def __init__(self, limit: int, seconds: float, clock: Any = time.monotonic):
        self.limit, self.seconds = limit, seconds
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._clock = clock

    def wait(self, key: str) -> float | None:
        """The seconds until `key` may have one more event; None if it may now."""
        window = self._seen.get(key)
        while window and window[0] <= self._clock() - self.seconds:
            window.popleft()
        if not window:
            self._seen.pop(key, None)  # what is forgotten takes no memory
            return None if self.limit > 0 else self.seconds
        return window[0] + self.seconds - self._clock() if len(window) >= self.limit else None

    def add(self, key: str) -> None:
        now = self._clock()
        self._seen.setdefault(key, deque(maxlen=max(self.limit, 1))).append(now)  # what `wait` reads, no more
        self._seen.move_to_end(key)
        while self._seen:
            oldest = next(iter(self._seen))
            if self._seen[oldest][-1] > now - self.seconds:
                break
            del self._seen[oldest]

    def __len__(self) -> int:
        """The keys it holds."""
        return len(self._seen)
