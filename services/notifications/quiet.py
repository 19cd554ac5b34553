"""Quiet hours (e.g. 21:00–07:00 local): when a message may go, and the morning a number's full day
hands its messages to.

Pure: no I/O.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from shared.calendar import WorkingCalendar


@dataclass(frozen=True)
class QuietHours:
    calendar: WorkingCalendar
    start: time
    end: time

    @classmethod
    def of(cls, calendar: WorkingCalendar, start: str, end: str) -> "QuietHours":
        """From the settings' local times ("21:00", "07:00"); equal times mean no quiet hours."""
        return cls(calendar, time.fromisoformat(start), time.fromisoformat(end))

    def not_before(self, now: datetime) -> datetime:
        """`now`, or the end of the quiet hours if `now` falls in them."""
        local = self.calendar.local(now)
        at = local.time()
        quiet = (self.start <= at or at < self.end) if self.start > self.end else self.start <= at < self.end
        if not quiet:
            return now
        day = local.date() if at < self.end else local.date() + timedelta(days=1)
        return datetime.combine(day, self.end, local.tzinfo)

    def next_morning(self, now: datetime) -> datetime:
        """The end of the next night's quiet hours: when a number over its daily limit is written to again."""
        local = self.calendar.local(now)
        return datetime.combine(local.date() + timedelta(days=1), self.end, local.tzinfo)
