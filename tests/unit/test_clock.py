"""The services' clock (shared/clock.py), and the test data built on it holding at every instant."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from services.processing.app import with_open_state
from services.processing.history import view
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.dossier import fold
from shared.events import parse_event
from shared.settings import ServiceSettings
from tests.fixtures.sample import INSTANTS, VN, live_dossiers

CAL = WorkingCalendar.load()


def test_the_real_clock_reads_the_time():
    assert abs(Clock()() - datetime.now(UTC)) < timedelta(seconds=1)


@pytest.mark.parametrize("start", INSTANTS.values(), ids=INSTANTS)
def test_a_clock_started_at_an_instant_reads_it_and_advances(start):
    clock = Clock.starting_at(start)
    first = clock.now()
    assert timedelta(0) <= first - start < timedelta(seconds=1)
    time.sleep(0.01)
    assert clock() - first >= timedelta(seconds=0.01)


def test_a_clock_start_without_an_offset_is_refused():
    with pytest.raises(ValueError, match="UTC offset"):
        Clock.starting_at(datetime(2026, 2, 16, 17))


def test_the_settings_carry_the_clock_on_the_local_stack_only():
    moved = ServiceSettings(environment="local", clock_offset_seconds=-3600)
    assert abs(moved.clock() - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(seconds=1)
    assert ServiceSettings(environment="local").clock.offset == timedelta(0)
    assert ServiceSettings.model_validate(moved.model_dump()).clock == moved.clock
    with pytest.raises(ValueError, match="DOSSIER_CLOCK_OFFSET_SECONDS"):
        ServiceSettings(environment="production", clock_offset_seconds=60)


@pytest.mark.parametrize("now", INSTANTS.values(), ids=INSTANTS)
def test_the_live_dossiers_are_one_within_its_deadline_and_one_due_soon_at_every_instant(now):
    states = [with_open_state(view(fold([parse_event(e) for e in events], CAL).dossier), now, CAL)["open_state"]
              for events in live_dossiers(now).values()]
    assert states == ["within_deadline", "due_soon"]


def test_the_instants_are_the_hard_ones():
    """A Friday evening, a Saturday, the eve of Tết (inside its holiday: the next working day a week on)
    and a Monday morning, as the names say."""
    local = {name: instant.astimezone(VN) for name, instant in INSTANTS.items()}
    assert [local[n].strftime("%a %H:%M") for n in INSTANTS] == ["Fri 21:00", "Sat 12:00", "Mon 17:00", "Mon 08:00"]
    eve = local["tet-eve-17h"]
    assert CAL.start(eve) == datetime(2026, 2, 23, 8, tzinfo=VN)
