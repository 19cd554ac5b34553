"""What time it is for the services: the one place "now" comes from.

The real clock in production. A test, a rehearsal or the demo can move it by a fixed offset
(`DOSSIER_CLOCK_OFFSET_SECONDS`), so that every service of a stack lives at, say, a Friday 21:00 or the
eve of Tết while time still advances, second by second, as it does for real: a dossier due in an hour
turns overdue after that hour whatever instant the clock was started at. Durations (timeouts,
latencies, rate-limit windows) are measured on the monotonic clock, not here; so is the validity of
a signer's certificate (pyHanko judges it against the real time: a signature is valid or not in the
world, not in a rehearsal).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Clock:
    """The real clock moved by `offset`. Call it (or `now()`) for the current instant, in UTC."""

    offset: timedelta = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    __call__ = now

    @classmethod
    def starting_at(cls, instant: datetime) -> "Clock":
        """A clock that reads `instant` now and advances from there."""
        if instant.tzinfo is None:
            raise ValueError("the clock's start needs a UTC offset")
        return cls(instant - datetime.now(UTC))
