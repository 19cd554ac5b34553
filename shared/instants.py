"""One tzinfo per UTC offset, shared by every datetime of that offset.

pydantic gives each datetime it parses a tzinfo of its own (its `TzInfo`, 40 bytes), and so does
`fromisoformat`. With the standard library's `timezone` instead, two datetimes compare ten times faster
(0.05 against 0.47 µs, by hand on 2026-12-06) and `isoformat` is twice as fast: what processing's fold does
with an event's instants. The instant, its UTC offset and its JSON are the same.
"""

from datetime import datetime, timedelta, timezone

_ZONES: dict[int, timezone] = {}  # one tzinfo per UTC offset in seconds
_SHARED: dict[timezone, timezone] = {}  # the same, by a tzinfo of that offset (equal to it)


def zone(seconds: int) -> timezone:
    found = _ZONES.get(seconds)
    if found is None:
        found = _ZONES[seconds] = timezone(timedelta(seconds=seconds))
    return found


def offset_of(instant: datetime) -> int:
    offset = instant.utcoffset()
    assert offset is not None, "an aware datetime"
    return offset.days * 86400 + offset.seconds


def shared_zone(instant: datetime | None) -> datetime | None:
    """The same instant with the tzinfo every datetime of its UTC offset shares. Made from the datetime's
    pickled state: `replace` costs five times as much, and a metrics start shares a few million datetimes."""
    if instant is None:
        return None
    tz = instant.tzinfo
    found = _SHARED.get(tz) if type(tz) is timezone else None
    if found is None:
        found = zone(offset_of(instant))
        if type(tz) is timezone:
            _SHARED[tz] = found
    return instant if tz is found else datetime(instant.__reduce__()[1][0], found)  # type: ignore[call-overload]
