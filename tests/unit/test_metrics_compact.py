"""The timelines the metrics service holds packed (services/metrics/compact.py): read back equal, written
alike, and what a dossier costs in memory (issue 26: at most 1 KiB a dossier held)."""

import gc
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import AwareDatetime, TypeAdapter
from hypothesis import given
from hypothesis import strategies as st

from services.metrics import compact
from services.metrics.figures import Counted, Figures, Tracked, held
from services.metrics.store import FLAGS, KEPT, ROW, held_of, row_of
from shared.calendar import WorkingCalendar
from shared.contracts import status_changed, status_of
from shared.dossier import fold
from shared.events import parse_event
from shared.facts import Facts, facts_as_of
from shared.instants import shared_zone
from tests.fixtures.sample import VN, dossier_code, dossier_history

CAL = WorkingCalendar.load()
COUNTED_AT: TypeAdapter[AwareDatetime] = TypeAdapter(AwareDatetime)  # a datetime as pydantic parses it
START = datetime(2025, 7, 7, 8, 30, tzinfo=VN)

OFFSETS = st.sampled_from([VN, UTC, timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(hours=14))])
INSTANTS = st.builds(lambda d, tz: d.replace(tzinfo=tz),
                     st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)), OFFSETS)
MAYBE_INSTANT = st.none() | INSTANTS


def facts_list(draw_instant=INSTANTS):
    one = st.builds(
        Facts, since=draw_instant, state=st.sampled_from(compact.STATES), due_at=MAYBE_INSTANT,
        timeliness=st.sampled_from(compact.TIMELINESS), payment_method=st.sampled_from(compact.METHODS),
        digitized=st.booleans(), rating=st.sampled_from(compact.RATINGS),
        apologies_compliant=st.integers(-2**63, 2**63 - 1) | st.just(0), apologies_non_compliant=st.integers(0, 3),
        unit=st.none() | st.sampled_from(["Phòng Tư pháp", "UBND xã", "x" * 70_000]), step_due_at=MAYBE_INSTANT,
        payment_gateway=st.sampled_from(compact.GATEWAYS), result_issued=st.booleans(),
        result_sent_to_personal_store=st.booleans())
    return st.lists(one, max_size=12)


def written(timeline) -> list:
    """What a report prints of a timeline: every value, datetimes as ISO 8601 (their offsets)."""
    return [[v.isoformat() if isinstance(v, datetime) else v for v in (getattr(f, n) for n in Facts.__slots__)]
            for f in timeline]


def test_every_fact_is_packed():
    assert compact.PACKED == tuple(Facts.__dataclass_fields__)


@given(facts_list())
def test_a_packed_timeline_reads_back_equal_and_written_alike(timeline):
    timeline = tuple(timeline)
    back = compact.unpack(compact.pack(timeline))
    assert back == timeline
    assert written(back) == written(timeline)


@given(facts_list(), st.sampled_from([0, 1, 2]))
def test_repeated_dues_and_units_are_written_once(timeline, repeats):
    """A due, a step's due or a unit the previous Facts had costs nothing more."""
    if not timeline:
        return
    first = timeline[0]
    again = [Facts(first.since + timedelta(minutes=n + 1), first.state, first.due_at, None, None, False, None, 0, 0,
                   first.unit, first.step_due_at) for n in range(repeats)]
    longer = (first, *again)
    assert compact.unpack(compact.pack(longer)) == longer
    assert len(compact.pack(longer)) - len(compact.pack((first,))) == 13 * repeats  # each its head only


def stored(dossiers: int, first: int = 0) -> bytes:
    """Seven-step lives (as bench-e2e sends them), announced as processing does, as the store keeps them."""
    found = []
    for n in range(first, first + dossiers):
        events = [parse_event(e) for e in dossier_history(dossier_code(START, sequence=n + 1), START)]
        folded = fold(events, CAL)
        data = status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(events)).data
        found.append(Counted.of(data))
    return orjson.dumps(KEPT.dump_python(found, mode="json"))


def as_rows(blob: bytes) -> bytes:
    """Statuses as a start reads them since v1.4: the rows of the dossiers as held (services/metrics/store.py)."""
    return orjson.dumps([row_of(held(c)) for c in KEPT.validate_json(blob)])


READ = {"statuses": (lambda blob: blob, KEPT.validate_json),  # as a store before v1.4 kept them
        "rows": (as_rows, lambda blob: [held_of(row) for row in orjson.loads(blob)])}


@pytest.mark.parametrize("form", READ)
def test_a_dossier_held_costs_at_most_1_kib(form):
    """Measured on 400 seven-step lives read as the store gives them, after 100 others (what every Figures
    holds once, its catalogue and calendar, is not a dossier's)."""
    written, read = READ[form]
    first, more = written(stored(100)), written(stored(400, first=100))
    figures = Figures(CAL)
    for announced in read(first):
        figures.apply(announced, START + timedelta(days=30))
    gc.collect()
    tracemalloc.start()
    for announced in read(more):  # read as the service reads the store's blobs
        figures.apply(announced, START + timedelta(days=30))
    del announced
    gc.collect()
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert kept / 400 < 1024, f"{kept / 400:.0f} bytes a dossier"


def test_every_value_of_an_announcement_is_in_the_stored_row():
    """A new field of the announcement is written to the row too, or a start would read it back as its default."""
    written = {*ROW, *FLAGS} - {"flags", "now", "steps"} | {"timeline"}
    assert written == set(Counted.__dataclass_fields__)


WORDS = st.sampled_from(["14923", "HT", "1.001193", "Phòng Tư pháp", "x" * 300])
ANNOUNCEMENTS = st.builds(
    Counted, dossier_code=st.text(min_size=1, max_size=40), commune_code=WORDS, sector=WORDS, procedure_code=WORDS,
    channel=st.sampled_from(["direct", "online", "postal"]), online_level=st.sampled_from([None, "partial", "full"]),
    received_at=INSTANTS, received_by_unit=st.none() | WORDS, component_digitized=st.booleans(),
    component_reused=st.booleans(), component_from_personal_store=st.booleans(), vneid_authenticated=st.booleans(),
    population_data=st.booleans(), fees_total=st.none() | st.sampled_from([0.0, 5000.0, 12345.5, 1e12]),
    receipt_due_at=MAYBE_INSTANT, events=st.integers(1, 10**9), timeline=facts_list().filter(bool).map(tuple),
    appointment_at=MAYBE_INSTANT, arrivals=st.integers(0, 10**6), arrivals_synced=st.integers(0, 10**6),
    announced_until=MAYBE_INSTANT)


@given(ANNOUNCEMENTS)
def test_a_held_dossier_stored_as_a_row_reads_back_equal_and_written_alike(counted):
    announced = held(counted)
    back = held_of(orjson.loads(orjson.dumps(row_of(announced))))
    assert (back.receipt, back.now, back.steps, back.announced_until) == (
        announced.receipt, announced.now, announced.steps, announced.announced_until)
    assert compact.unpack(back.steps) == counted.timeline
    assert row_of(back) == row_of(announced)  # every datetime with its own UTC offset
    assert Tracked.of(back, START.date()).counted == replace(counted, announced_until=None)
    # Held as `held` holds it: one tzinfo per UTC offset, the last Facts' due the receipt's own when the same.
    r, f = back.receipt, back.now
    for instant in (r.received_at, r.receipt_due_at, r.appointment_at, f.since, f.due_at, f.step_due_at):
        assert instant is None or instant.tzinfo is compact.zone(compact.offset_of(instant))
    assert (f.due_at is r.receipt_due_at) == (announced.now.due_at is announced.receipt.receipt_due_at)


@given(INSTANTS, st.sampled_from(["pydantic", "iso", "named", "shared"]))
def test_an_instant_given_its_offsets_shared_tzinfo_is_the_same_instant_written_alike(instant, given_as):
    """`shared_zone` takes what pydantic parses, what `fromisoformat` reads, a named timezone and one already shared."""
    offset = instant.utcoffset()
    source = {"pydantic": lambda: COUNTED_AT.validate_python(instant.isoformat()),
              "iso": lambda: datetime.fromisoformat(instant.isoformat()),
              "named": lambda: instant.replace(tzinfo=timezone(offset, "somewhere")),
              "shared": lambda: instant.replace(tzinfo=compact.zone(compact.offset_of(instant)))}[given_as]()
    shared = shared_zone(source)
    assert shared == instant and shared.isoformat() == instant.isoformat()
    assert shared.tzinfo is compact.zone(compact.offset_of(instant))
    assert given_as != "shared" or shared is source


def test_a_tracked_dossier_gives_its_announcement_and_its_facts_at_any_instant_back():
    [counted] = KEPT.validate_json(stored(1))
    tracked = Tracked.of(held(counted), START.date())
    assert tracked.counted == counted and tracked.timeline == counted.timeline
    assert tracked.now == counted.timeline[-1] and tracked.receipt.timeline == ()
    for f in counted.timeline:
        for at in (f.since - timedelta(microseconds=1), f.since, f.since + timedelta(hours=1)):
            assert tracked.facts_at(at) == facts_as_of(counted.timeline, at)
