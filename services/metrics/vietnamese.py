"""How the operators' page reads and writes dates and numbers: the Vietnamese way.

Dates are typed dd/mm/yyyy, instants dd/mm/yyyy HH:MM, both local to Asia/Ho_Chi_Minh (docs/domain.md
§3); numbers group thousands with a dot and use a decimal comma (5.932; 67,84 %). Anything a person
types either parses or raises `InvalidInput` with a message to show them, never another exception.
"""

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")
FIRST_YEAR, LAST_YEAR = 2000, 2099  # dossier systems date from 2018; this keeps arithmetic far from datetime's ends
NO_VALUE = "—"

# ASCII digits only: `\d` would take "١٢" (and `int` would read it).
_DAY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_MOMENT = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})(?:\s+([0-9]{1,2}):([0-9]{2}))?")
DAY_PATTERN = "[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}"  # the same, for the inputs' `pattern`
MOMENT_PATTERN = r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}(\s+[0-9]{1,2}:[0-9]{2})?"


class InvalidInput(ValueError):
    """What a person typed does not parse; the message (Vietnamese) tells them what to type."""


def parse_day(text: str, field: str) -> date:
    """A dd/mm/yyyy date (one-digit day and month allowed)."""
    found = _DAY.fullmatch(text.strip())
    if not found:
        raise InvalidInput(f"{field}: “{shorten(text)}” không phải ngày dạng dd/mm/yyyy, ví dụ 01/07/2025.")
    return _date(found.group(1, 2, 3), text, field)


def parse_moment(text: str, field: str) -> datetime:
    """A local instant, dd/mm/yyyy HH:MM; a date alone means the end of that day ("tính đến ngày")."""
    found = _MOMENT.fullmatch(text.strip())
    if not found:
        raise InvalidInput(f"{field}: “{shorten(text)}” không phải thời điểm dạng dd/mm/yyyy HH:MM "
                           "(ví dụ 11/11/2025 17:00) hoặc ngày dd/mm/yyyy.")
    day = _date(found.group(1, 2, 3), text, field)
    if found.group(4) is None:
        return datetime.combine(day, time.max, VN)
    hour, minute = int(found.group(4)), int(found.group(5))
    if hour > 23 or minute > 59:
        raise InvalidInput(f"{field}: “{shorten(text)}” có giờ không hợp lệ (giờ 0–23, phút 0–59).")
    return datetime.combine(day, time(hour, minute), VN)


def _date(parts: tuple[str, str, str], text: str, field: str) -> date:
    day, month, year = (int(p) for p in parts)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidInput(f"{field}: năm {year} nằm ngoài khoảng {FIRST_YEAR}–{LAST_YEAR}.")
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidInput(f"{field}: ngày “{shorten(text)}” không có trên lịch.") from None


def shorten(text: str) -> str:
    """What was typed, cut short: a message repeats it, it must not carry a page of it."""
    text = text.strip()
    return text if len(text) <= 30 else text[:30] + "…"


def number(value: float | int | None, decimals: int = 0) -> str:
    """5932 → "5.932"; 85.16 with 2 decimals → "85,16"."""
    if value is None:
        return NO_VALUE
    english = f"{value:,.{decimals}f}"
    return english.translate(str.maketrans({",": ".", ".": ","}))


def percent(ratio: float | None, decimals: int = 2) -> str:
    """A fraction as a percentage: 0.678354 → "67,84 %" (a space before %, as Vietnamese writes it)."""
    return NO_VALUE if ratio is None else f"{number(ratio * 100, decimals)} %"


def day(value: date) -> str:
    return f"{value:%d/%m/%Y}"


def moment(value: datetime) -> str:
    """An instant as its local time: dd/mm/yyyy HH:MM."""
    return f"{value.astimezone(VN):%d/%m/%Y %H:%M}"


def moment_input(value: datetime) -> str:
    """What `parse_moment` reads back as the same instant: the day alone for a day's end."""
    local = value.astimezone(VN)
    return day(local) if local.time() == time.max else moment(local)
