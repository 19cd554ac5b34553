"""A dossier's timeline as the metrics service holds it: packed into bytes, read back equal.

A province-year is 500,000 dossiers held in memory (docs/scaling.md). As objects, a timeline of six
Facts, each with its datetimes and their own time zones, takes about 2 KB; packed, about 100 bytes.
`Tracked` (services/metrics/figures.py) keeps its dossier's timeline packed beside its last Facts
unpacked, and unpacks the rest only for a report that judges the dossier at an earlier instant.

The format, per Facts, oldest first: `since` (10 bytes: see below), three bytes of codes and flags, then whatever the flags say follows: a datetime's own UTC offset (when not
the dossier's, the first 4 bytes of the whole), the due and the step's due (unless absent or the
previous Facts' own), the apologies, the unit (unless the previous Facts' own). Every value reads
back equal, UTC offsets included (a report prints them).
"""

import struct
import sys
from datetime import datetime, timedelta, timezone
from typing import get_args

from shared.facts import Facts, PaymentGateway, PaymentMethod, Rating, State, Timeline, Timeliness
from shared.instants import offset_of, zone

# Every field of Facts, as packed (tests/unit/test_metrics_compact.py checks none is missing: a new fact is packed
# here too, or it would read back as its default).
PACKED = ("since", "state", "due_at", "timeliness", "payment_method", "digitized", "rating", "apologies_compliant",
          "apologies_non_compliant", "unit", "step_due_at", "payment_gateway", "result_issued",
          "result_sent_to_personal_store")
STATES: tuple[str, ...] = get_args(State)
# Index 0 is None for these.
TIMELINESS: tuple[str | None, ...] = (None, *get_args(Timeliness))
METHODS: tuple[str | None, ...] = (None, *get_args(PaymentMethod))
RATINGS: tuple[str | None, ...] = (None, *get_args(Rating))
GATEWAYS: tuple[str | None, ...] = (None, *get_args(PaymentGateway))

_HEAD = struct.Struct("<10sBBB")  # since, then the three bytes below
_INSTANT = struct.Struct("<10s")
_OFFSET = struct.Struct("<i")  # a UTC offset in seconds
_APOLOGIES = struct.Struct("<qq")  # what processing counts is small; a status record could say more
_LENGTH = struct.Struct("<I")
# Byte 1: state, timeliness, payment method, digitized. Byte 2: rating, gateway, then these flags.
# Byte 3: how the due and the step's due follow, whose offsets are their own, whether the unit is the previous one.
ISSUED, SENT, APOLOGIES, UNIT = 1 << 4, 1 << 5, 1 << 6, 1 << 7
ABSENT, SAME, FOLLOWS = 0, 1, 2  # a due: None, the previous Facts' own, or its bytes follow
SINCE_OFFSET, DUE_OFFSET, STEP_OFFSET, UNIT_SAME = 1 << 4, 1 << 5, 1 << 6, 1 << 7

# A datetime is written as its local date and time: the 10 bytes of its pickled state (year to
# microsecond, and `fold`), which `datetime(state, tzinfo)` reads back; its UTC offset apart, its tzinfo
# shared (shared/instants.py).


def pack(timeline: Timeline) -> bytes:
    """The timeline in bytes; `unpack` gives it back equal."""
    base = timeline[0].since.utcoffset() if timeline else timedelta()
    assert base is not None, "aware datetimes"
    out = [_OFFSET.pack(base.days * 86400 + base.seconds)]
    previous = _NOTHING
    for f in timeline:
        out.append(b"")  # the head, once its flags are known
        head = len(out) - 1
        flags = 0 if f.since.utcoffset() == base else _offset(out, f.since, SINCE_OFFSET)
        flags |= _due(out, f.due_at, previous.due_at, base, DUE_OFFSET)
        flags |= _due(out, f.step_due_at, previous.step_due_at, base, STEP_OFFSET, shift=2)
        second = _SECOND[f.rating, f.payment_gateway, f.result_issued, f.result_sent_to_personal_store]
        if f.apologies_compliant or f.apologies_non_compliant:
            second |= APOLOGIES
            out.append(_APOLOGIES.pack(f.apologies_compliant, f.apologies_non_compliant))
        if f.unit is not None:
            second |= UNIT
            if previous.unit == f.unit:
                flags |= UNIT_SAME
            else:
                name = f.unit.encode()
                out += [_LENGTH.pack(len(name)), name]
        first = _FIRST[f.state, f.timeliness, f.payment_method, f.digitized]
        out[head] = _HEAD.pack(f.since.__reduce__()[1][0], first, second, flags)
        previous = f
    return b"".join(out)


def unpack(data: bytes, due_at: datetime | None = None) -> Timeline:
    """The timeline `pack` put in `data`, its datetimes sharing their tzinfo (`zone`); a due equal to `due_at`, written
    alike, is that object (a dossier's last Facts sharing its receipt's due, as `Tracked` holds it)."""
    (base,), at = _OFFSET.unpack_from(data), _OFFSET.size
    found: list[Facts] = []
    previous = _NOTHING
    while at < len(data):
        state, first, second, flags = _HEAD.unpack_from(data, at)
        at += _HEAD.size
        since, at = _read_datetime(data, at, state, base, flags & SINCE_OFFSET)
        due, at = _read_due(data, at, flags & 3, previous.due_at, base, flags & DUE_OFFSET)
        if due_at is not None and due == due_at and due.tzinfo is due_at.tzinfo:  # type: ignore[union-attr]
            due = due_at
        step, at = _read_due(data, at, flags >> 2 & 3, previous.step_due_at, base, flags & STEP_OFFSET)
        compliant = non_compliant = 0
        if second & APOLOGIES:
            compliant, non_compliant = _APOLOGIES.unpack_from(data, at)
            at += _APOLOGIES.size
        unit = None
        if second & UNIT:
            if flags & UNIT_SAME:
                unit = previous.unit
            else:
                (length,) = _LENGTH.unpack_from(data, at)
                at += _LENGTH.size
                unit, at = sys.intern(data[at:at + length].decode()), at + length
        previous = Facts(since, STATES[first & 7], due, TIMELINESS[first >> 3 & 3], METHODS[first >> 5 & 3],  # type: ignore[arg-type]
                         bool(first >> 7), RATINGS[second & 3], compliant, non_compliant, unit, step,  # type: ignore[arg-type]
                         GATEWAYS[second >> 2 & 3], bool(second & ISSUED), bool(second & SENT))  # type: ignore[arg-type]
        found.append(previous)
    return tuple(found)


# The first two bytes of a Facts' head, by the values they code.
_FIRST = {(state, timeliness, method, digitized): s | t << 3 | m << 5 | digitized << 7
          for s, state in enumerate(STATES) for t, timeliness in enumerate(TIMELINESS)
          for m, method in enumerate(METHODS) for digitized in (False, True)}
_SECOND = {(rating, gateway, issued, sent): r | g << 2 | ISSUED * issued | SENT * sent
           for r, rating in enumerate(RATINGS) for g, gateway in enumerate(GATEWAYS)
           for issued in (False, True) for sent in (False, True)}
_NOTHING = Facts(datetime(1970, 1, 1, tzinfo=timezone.utc), "processing", None, None, None, False, None, 0, 0)


def _offset(out: list[bytes], instant: datetime, flag: int) -> int:
    """Append a datetime's own UTC offset; its flag."""
    out.append(_OFFSET.pack(offset_of(instant)))
    return flag


def _due(out: list[bytes], due: datetime | None, before: datetime | None, base: timedelta, own_offset: int,
         shift: int = 0) -> int:
    """Append a due's bytes unless absent or `before` again; how it follows (ABSENT, SAME, FOLLOWS, shifted
    by `shift`) and its own offset's flag."""
    if due is None:
        return ABSENT
    state, offset = due.__reduce__()[1][0], due.utcoffset()
    if before is not None and before.__reduce__()[1][0] == state and before.utcoffset() == offset:
        return SAME << shift
    out.append(state)
    return FOLLOWS << shift | (0 if offset == base else _offset(out, due, own_offset))


def _read_datetime(data: bytes, at: int, state: bytes, base: int, own_offset: int) -> tuple[datetime, int]:
    offset = base
    if own_offset:
        (offset,), at = _OFFSET.unpack_from(data, at), at + _OFFSET.size
    return datetime(state, zone(offset)), at  # type: ignore[call-overload]


def _read_due(data: bytes, at: int, how: int, before: datetime | None, base: int, own_offset: int
              ) -> tuple[datetime | None, int]:
    if how == ABSENT:
        return None, at
    if how == SAME:
        return before, at
    (state,), at = _INSTANT.unpack_from(data, at), at + _INSTANT.size
    return _read_datetime(data, at, state, base, own_offset)
