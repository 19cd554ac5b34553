"""Working time (docs/domain.md §3): working days, working windows, and due dates counted in them.

Durations are `timedelta`s so that adding and measuring working time is exact; a procedure's
processing time in working days is 8 working hours a day.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays as computed_holidays
import structlog
import yaml

log = structlog.get_logger()

DEFAULT_CALENDAR = Path(__file__).parent / "calendars" / "vn.yaml"
ZERO = timedelta(0)


@dataclass(frozen=True)
class WorkingCalendar:
    timezone: ZoneInfo
    windows: tuple[tuple[time, time], ...]  # sorted, non-overlapping, within one day
    holidays: frozenset[date]
    working_days: frozenset[date]  # make-up days (ngày làm bù), e.g. a swapped Saturday
    years: frozenset[int]  # years the two lists cover; others use a computed calendar
    _warned: set[int] = field(default_factory=set, compare=False, repr=False)

    @classmethod
    def load(cls, path: Path | str | None = None) -> "WorkingCalendar":
        """The calendar file named by DOSSIER_CALENDAR (YAML or JSON), or the shipped default."""
        raw = yaml.safe_load(Path(path or DEFAULT_CALENDAR).read_text())
        windows = tuple(sorted((time.fromisoformat(a), time.fromisoformat(b)) for a, b in raw["working_windows"]))
        for (start, end), following in zip(windows, [*windows[1:], None], strict=True):
            if not start < end or (following and end > following[0]):
                raise ValueError(f"working windows must be increasing and disjoint: {raw['working_windows']}")
        return cls(
            timezone=ZoneInfo(raw.get("timezone", "Asia/Ho_Chi_Minh")),
            windows=windows,
            holidays=frozenset(date.fromisoformat(d) for d in raw.get("holidays", [])),
            working_days=frozenset(date.fromisoformat(d) for d in raw.get("working_days", [])),
            years=frozenset(raw.get("years", [])),
        )

    def is_working_day(self, day: date) -> bool:
        if day.year in self.years:
            return day in self.working_days or (day.weekday() < 5 and day not in self.holidays)
        if day.year not in self._warned:
            self._warned.add(day.year)
            log.warning("calendar file does not cover this year; using computed Vietnamese holidays", year=day.year)
        return day.weekday() < 5 and day not in _computed_vn_holidays(day.year)

    def local(self, t: datetime) -> datetime:
        if t.tzinfo is None:
            raise ValueError("working time needs an aware datetime")
        return t.astimezone(self.timezone)

    def end_of_day(self, day: date) -> datetime:
        """The last instant of a local day: a period's end."""
        return datetime.combine(day, time.max, self.timezone)

    def _windows_of(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        if self.is_working_day(day):
            for start, end in self.windows:
                yield (
                    datetime.combine(day, start, self.timezone),
                    datetime.combine(day, end, self.timezone),
                )

    def _windows_from(self, t: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working windows that end after t, in order, the first one clipped to start at t."""
        t = self.local(t)
        day = t.date()
        while True:
            for start, end in self._windows_of(day):
                if end > t:
                    yield max(start, t), end
            day += timedelta(days=1)

    def start(self, t: datetime) -> datetime:
        """t itself inside a working window, else the start of the next working window after t."""
        return next(self._windows_from(t))[0]

    def add_working(self, t: datetime, duration: timedelta) -> datetime:
        """Walk forward from start(t) consuming `duration` of working time, window by window.

        A duration that ends exactly at a window's end gives that end (12:00, 17:00), not the
        next window's start.
        """
        if duration < ZERO:
            raise ValueError("working time to add must not be negative")
        remaining = duration
        for start, end in self._windows_from(t):
            if remaining <= end - start:
                return start + remaining
            remaining -= end - start
        raise AssertionError("unreachable: windows never run out")

    def working_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time in [a, b]; zero when b is not after a."""
        total = ZERO
        for start, end in self._windows_from(a):
            if start >= b:
                break
            total += min(end, b) - start
        return total


@cache
def _computed_vn_holidays(year: int) -> frozenset[date]:
    return frozenset(computed_holidays.country_holidays("VN", years=year))


def quarter_of(day: date) -> tuple[date, date]:
    """The first and last days of the quarter holding `day` (reports by quarter, docs/domain.md §6)."""
    first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    following = date(first.year + 1, 1, 1) if first.month == 10 else date(first.year, first.month + 3, 1)
    return first, following - timedelta(days=1)


def quarters_before(day: date, quarters: int) -> date:
    """The first day of the quarter `quarters` before the one holding `day` (metrics' horizon)."""
    first = quarter_of(day)[0]
    for _ in range(quarters):
        first = quarter_of(first - timedelta(days=1))[0]
    return first
