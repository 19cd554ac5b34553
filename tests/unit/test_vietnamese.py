"""Dates and numbers the Vietnamese way (services/metrics/vietnamese.py): what operators type parses
or is refused with a message, never another exception; what they read has Vietnamese separators."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.metrics.vietnamese import (VN, InvalidInput, day, moment, moment_input, number, parse_day,
                                         parse_moment, percent)


@pytest.mark.parametrize("typed, expected", [
    ("01/07/2025", date(2025, 7, 1)),
    ("1/7/2025", date(2025, 7, 1)),
    ("  11/11/2025 ", date(2025, 11, 11)),
    ("29/02/2028", date(2028, 2, 29)),
])
def test_a_date_is_read_day_first(typed, expected):
    assert parse_day(typed, "Từ ngày") == expected


@pytest.mark.parametrize("typed, says", [
    ("31/02/2025", "không có trên lịch"),
    ("2025-07-01", "dạng dd/mm/yyyy"),
    ("07/01/25", "dạng dd/mm/yyyy"),
    ("", "dạng dd/mm/yyyy"),
    ("01/07/1999", "ngoài khoảng 2000–2099"),
    ("١٢/٠٧/٢٠٢٥", "dạng dd/mm/yyyy"),  # Arabic-Indic digits: int() would read them
    ("01/13/2025", "không có trên lịch"),
])
def test_what_is_not_a_date_is_refused_with_a_vietnamese_message_naming_the_field(typed, says):
    with pytest.raises(InvalidInput) as refused:
        parse_day(typed, "Từ ngày")
    assert str(refused.value).startswith("Từ ngày") and says in str(refused.value)


def test_a_long_input_is_cut_short_in_the_message():
    with pytest.raises(InvalidInput) as refused:
        parse_day("x" * 10_000, "Đến ngày")
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize("typed, expected", [
    ("11/11/2025 17:00", datetime(2025, 11, 11, 17, 0, tzinfo=VN)),
    ("11/11/2025  7:05", datetime(2025, 11, 11, 7, 5, tzinfo=VN)),
    ("11/11/2025", datetime.combine(date(2025, 11, 11), time.max, VN)),  # "tính đến ngày": the whole day
])
def test_an_instant_is_local_and_a_date_alone_means_the_end_of_that_day(typed, expected):
    assert parse_moment(typed, "Tính đến") == expected


@pytest.mark.parametrize("typed", ["11/11/2025 24:00", "11/11/2025 17:60", "11/11/2025 17", "11/11/2025T17:00",
                                   "2025-11-11T17:00:00+07:00"])
def test_a_bad_instant_is_refused(typed):
    with pytest.raises(InvalidInput, match="^Tính đến"):
        parse_moment(typed, "Tính đến")


@given(st.text())
def test_any_text_is_a_date_or_a_validation_error(typed):
    for parse in (parse_day, parse_moment):
        try:
            parse(typed, "Từ ngày")
        except InvalidInput as refused:
            assert str(refused).startswith("Từ ngày")


@given(st.from_regex(r"\A[0-9]{1,3}/[0-9]{1,3}/[0-9]{3,5}( [0-9]{1,3}:[0-9]{1,3})?\Z"))
def test_text_shaped_like_a_date_is_a_date_or_a_validation_error(typed):
    """The shapes that pass the pattern check but may not be on the calendar."""
    for parse in (parse_day, parse_moment):
        try:
            parse(typed, "Đến ngày")
        except InvalidInput:
            pass


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
def test_a_date_shown_reads_back_as_itself(value):
    assert parse_day(day(value), "Từ ngày") == value


@given(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)))
def test_an_instant_as_the_links_carry_it_reads_back_as_itself(value):
    """The page's links carry `moment_input`: to the minute, or a day's end."""
    to_the_minute = value.replace(second=0, microsecond=0)
    assert parse_moment(moment_input(to_the_minute), "Tính đến") == to_the_minute
    day_end = datetime.combine(to_the_minute.astimezone(VN).date(), time.max, VN)
    assert moment_input(day_end) == day(day_end.date())
    assert parse_moment(moment_input(day_end), "Tính đến") == day_end


def test_instants_are_shown_in_vietnam_time():
    assert moment(datetime(2025, 11, 11, 10, 0, tzinfo=UTC)) == "11/11/2025 17:00"
    assert moment(datetime(2025, 11, 11, 17, 0, tzinfo=VN) + timedelta(hours=7)) == "12/11/2025 00:00"


@pytest.mark.parametrize("value, decimals, shown", [
    (5932, 0, "5.932"), (35292, 0, "35.292"), (1234567, 0, "1.234.567"), (0, 0, "0"), (120, 0, "120"),
    (85.16014434082581, 2, "85,16"), (30552.58, 2, "30.552,58"), (None, 0, "—"),
])
def test_numbers_group_thousands_with_dots_and_use_a_decimal_comma(value, decimals, shown):
    assert number(value, decimals) == shown


@pytest.mark.parametrize("ratio, shown", [(0.6783546864463924, "67,84 %"), (0.9998314227916386, "99,98 %"),
                                          (1.0, "100,00 %"), (0.0, "0,00 %"), (None, "—")])
def test_percentages_have_a_decimal_comma_and_a_space(ratio, shown):
    assert percent(ratio) == shown


@given(st.integers(min_value=0, max_value=10**12))
def test_a_whole_number_reads_back_once_its_dots_are_dropped(value):
    shown = number(value)
    assert int(shown.replace(".", "")) == value and "," not in shown
    assert all(len(group) == 3 for group in shown.split(".")[1:])
