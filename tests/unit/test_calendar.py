"""docs/domain.md §3: working days, windows and due dates, as tables and properties."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.calendar import WorkingCalendar, quarters_before

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN)


def h(hours: float) -> timedelta:
    return timedelta(hours=hours)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2025-07-07", True),  # Monday
        ("2025-07-05", False),  # Saturday
        ("2025-01-29", False),  # Mùng 1 Tết Ất Tỵ
        ("2025-04-07", False),  # Giỗ Tổ Hùng Vương
        ("2025-04-26", True),  # make-up Saturday for 2/5/2025
        ("2025-05-02", False),  # the Friday it bought
        ("2025-09-01", False),  # the day adjacent to Quốc khánh
        ("2026-02-16", False),  # Tết Bính Ngọ
        ("2026-04-27", False),  # substitute for Giỗ Tổ on Sunday 26/4
        ("2026-08-22", True),  # make-up Saturday
        ("2026-11-24", False),  # Ngày Văn hóa Việt Nam, from 2026
        ("2025-11-24", True),  # ... not before
    ],
)
def test_working_days(day, working):
    assert CAL.is_working_day(date.fromisoformat(day)) is working


@pytest.mark.parametrize(
    ("t", "start"),
    [
        ("2025-07-07 10:00", "2025-07-07 10:00"),  # inside a window: itself
        ("2025-07-07 08:00", "2025-07-07 08:00"),
        ("2025-07-07 07:15", "2025-07-07 08:00"),
        ("2025-07-07 12:00", "2025-07-07 13:00"),  # lunch
        ("2025-07-07 12:30", "2025-07-07 13:00"),
        ("2025-07-07 17:00", "2025-07-08 08:00"),
        ("2025-07-04 17:30", "2025-07-07 08:00"),  # Friday evening -> Monday 08:00 (docs/domain.md §3)
        ("2025-08-29 17:30", "2025-09-03 08:00"),  # Friday before 1/9 and 2/9 -> Wednesday
        ("2025-01-29 09:00", "2025-02-03 08:00"),  # received on Tết
        ("2025-04-25 17:10", "2025-04-26 08:00"),  # Friday evening -> the make-up Saturday
    ],
)
def test_start(t, start):
    assert CAL.start(at(t)) == at(start)


@pytest.mark.parametrize(
    ("t", "hours", "due"),
    [
        ("2025-07-07 10:00", 8, "2025-07-08 10:00"),  # docs/domain.md §3: Mon 10:00 + 1 day -> Tue 10:00
        ("2025-07-07 16:59", 1, "2025-07-08 08:59"),  # received 16:59 with 1 working hour
        ("2025-07-07 08:00", 4, "2025-07-07 12:00"),  # ends exactly at a window's end: 12:00
        ("2025-07-07 13:00", 4, "2025-07-07 17:00"),  # ... and 17:00, not the next start
        ("2025-07-07 10:00", 6, "2025-07-07 17:00"),
        ("2025-07-07 10:00", 0, "2025-07-07 10:00"),
        ("2025-07-07 18:00", 0, "2025-07-08 08:00"),
        ("2025-07-04 17:30", 8, "2025-07-07 17:00"),  # after hours Friday: from Monday 08:00
        ("2025-07-07 10:00", 40, "2025-07-14 10:00"),  # 5 working days span a weekend
        ("2025-07-07 10:00", 0.5 * 8, "2025-07-07 15:00"),  # half a day, over lunch
        ("2025-01-24 16:00", 8, "2025-02-03 16:00"),  # Friday before Tết Ất Tỵ: 1 h, then Monday 3/2
        ("2025-04-25 16:00", 4, "2025-04-26 11:00"),  # through the make-up Saturday
        ("2025-04-29 16:00", 4, "2025-05-05 11:00"),  # over 30/4, 1/5, swapped 2/5, weekend
        ("2024-12-31 16:00", 2, "2025-01-02 09:00"),  # a year the file does not cover, then 1/1
    ],
)
def test_add_working(t, hours, due):
    assert CAL.add_working(at(t), h(hours)) == at(due)


def test_times_in_other_offsets_are_read_in_local_time():
    utc = datetime(2025, 7, 7, 3, 0, tzinfo=ZoneInfo("UTC"))  # 10:00 in Hà Nội
    assert CAL.add_working(utc, h(8)) == at("2025-07-08 10:00")


@pytest.mark.parametrize(
    ("a", "b", "hours"),
    [
        ("2025-07-07 10:00", "2025-07-08 10:00", 8),
        ("2025-07-07 11:00", "2025-07-07 14:00", 2),  # lunch does not count
        ("2025-07-04 16:00", "2025-07-07 09:00", 2),  # the weekend does not count
        ("2025-07-07 10:00", "2025-07-07 09:00", 0),  # backwards: nothing
        ("2025-07-07 18:00", "2025-07-07 19:00", 0),
    ],
)
def test_working_between(a, b, hours):
    assert CAL.working_between(at(a), at(b)) == h(hours)


def test_a_calendar_file_with_its_own_windows(tmp_path):
    file = tmp_path / "cal.yaml"
    file.write_text(
        'timezone: Asia/Ho_Chi_Minh\nworking_windows: [["07:30", "11:30"], ["13:30", "16:30"]]\n'
        'holidays: ["2025-07-08"]\nworking_days: ["2025-07-12"]\nyears: [2025]\n'
    )
    cal = WorkingCalendar.load(file)
    assert cal.add_working(at("2025-07-07 15:30"), h(3)) == at("2025-07-09 09:30")
    assert cal.is_working_day(date(2025, 7, 12))


def test_overlapping_windows_are_refused(tmp_path):
    file = tmp_path / "cal.yaml"
    file.write_text('working_windows: [["08:00", "12:00"], ["11:00", "17:00"]]\n')
    with pytest.raises(ValueError, match="disjoint"):
        WorkingCalendar.load(file)


instants = st.datetimes(min_value=datetime(2024, 12, 1), max_value=datetime(2028, 2, 1), timezones=st.just(VN))
durations = st.integers(min_value=0, max_value=60 * 8 * 30).map(lambda m: timedelta(minutes=m))


@given(instants, durations)
def test_adding_then_measuring_working_time_gives_it_back(t, d):
    assert CAL.working_between(t, CAL.add_working(t, d)) == d


@given(instants, durations, durations)
def test_add_working_is_monotonic_in_the_duration(t, d1, d2):
    small, large = sorted((d1, d2))
    assert CAL.add_working(t, small) <= CAL.add_working(t, large)


@given(instants, instants, durations)
def test_add_working_is_monotonic_in_the_start(t1, t2, d):
    early, late = sorted((t1, t2))
    assert CAL.add_working(early, d) <= CAL.add_working(late, d)


@given(instants, durations)
def test_a_due_lies_in_a_working_window_or_at_its_end(t, d):
    due = CAL.add_working(t, d)
    assert CAL.is_working_day(due.date())
    assert any(start <= due.time() <= end for start, end in CAL.windows)


@pytest.mark.parametrize("day, quarters, first", [
    (date(2026, 12, 2), 0, date(2026, 10, 1)),
    (date(2026, 12, 2), 8, date(2024, 10, 1)),   # the metrics' default horizon
    (date(2026, 1, 1), 1, date(2025, 10, 1)),
    (date(2026, 3, 31), 4, date(2025, 1, 1)),
])
def test_quarters_before_gives_the_first_day_of_an_earlier_quarter(day, quarters, first):
    assert quarters_before(day, quarters) == first
