"""Issue 23, finding 11: nothing a caller sends grows a service's memory without bound.

- The rate limits' windows (shared/ratelimit.py `Windows`, behind the lookup's attempts per client and the
  SMS replies per number) forget a key whose events are past without it being checked again.
- Notifications' two bodies (`POST /v1/dlr/http`, `POST /v1/alerts`) are read only once the caller is
  authenticated, in chunks, and refused as soon as they pass their limit.
- A dossier keeps at most `processing_max_events_per_dossier` events; further ones are dead-lettered.

Unit-level, in-process: notifications runs on httpx's ASGI transport (no lifespan: no Kafka), its
MongoDB replaced by dict-backed collections (tests/fixtures/sms.py).
"""

import asyncio
import json
from collections.abc import AsyncIterator, Collection
from dataclasses import replace
from datetime import datetime, timedelta

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.notifications.alerts import MAX_BYTES
from services.notifications.providers import dlr_token
from services.processing import history
from services.processing.history import Outgoing, StoredDossier, integrate
from services.processing.processor import ProcessingMetrics, Processor
from services.processing.settings import ProcessingSettings
from shared.calendar import WorkingCalendar
from shared.dossier import fold
from shared.events import DossierEvent, parse_event
from shared.ratelimit import Windows
from shared.consumer_app import Record
from tests.fixtures.sample import event
from tests.security.test_sms_callbacks import DLR_SECRET, Notifications

CAL = WorkingCalendar.load()
NOW = datetime.fromisoformat("2025-07-08T10:00:00+07:00")
CODE = "000.00.38.H56-250707-0001"
ALERT_SECRET = "alert-token-for-the-security-tests"
CHUNK = 64 * 1024


# -- the rate limits' windows -------------------------------------------------------------------------


def test_a_window_forgets_idle_keys_without_their_being_checked_again():
    now = [0.0]
    windows = Windows(5, 60, clock=lambda: now[0])
    for n in range(100_000):  # a flood of distinct clients (or numbers), each seen once
        windows.add(f"client-{n}")
    assert len(windows) == 100_000  # all within the window: all kept
    now[0] = 61
    windows.add("one more")
    assert len(windows) == 1


@pytest.mark.parametrize("limit, seconds", [(1, 10.0), (3, 60.0), (5, 3600.0)])
def test_a_window_still_limits_each_key_while_it_forgets_the_others(limit, seconds):
    now = [0.0]
    windows = Windows(limit, seconds, clock=lambda: now[0])
    for _ in range(limit):
        assert windows.wait("busy") is None
        windows.add("busy")
    assert windows.wait("busy") == seconds
    for n in range(1_000):
        now[0] += seconds / 2_000  # others come and go while "busy" waits
        windows.add(f"other-{n}")
    assert windows.wait("busy") == pytest.approx(seconds / 2)
    now[0] = seconds
    windows.add("late")
    assert len(windows) == 1_001  # "busy" forgotten; the others and "late" within the window
    assert windows.wait("busy") is None


# Each step: how far the clock moves, then a key (of few, so that keys come back) tries one event.
STEPS = st.lists(st.tuples(st.floats(min_value=0, max_value=40, allow_nan=False), st.integers(0, 30)),
                 max_size=300)


@settings(max_examples=200, deadline=None)
@given(steps=STEPS, limit=st.integers(0, 4))
def test_a_window_holds_only_the_keys_active_within_it_and_limits_as_before(steps, limit):
    """Against a model that keeps every event: the same answers, and after each event the window
    holds exactly the keys with an event within the last `seconds`."""
    seconds = 60.0
    now = [0.0]
    windows = Windows(limit, seconds, clock=lambda: now[0])
    seen: dict[str, list[float]] = {}
    for advance, n in steps:
        now[0] += advance
        key = f"k{n}"
        recent = [t for t in seen.get(key, []) if t > now[0] - seconds]
        expected = (seconds if limit <= 0 else None) if not recent else (
            recent[0] + seconds - now[0] if len(recent) >= limit else None)
        wait = windows.wait(key)
        assert wait == (pytest.approx(expected) if expected is not None else None)
        if wait is None:
            windows.add(key)
            seen.setdefault(key, []).append(now[0])
            active = {k for k, times in seen.items() if times[-1] > now[0] - seconds}
            assert len(windows) == len(active)


# -- notifications' bodies ----------------------------------------------------------------------------


class Drip:
    """A request body of `total` bytes, given in chunks as it is asked for: how much was read."""

    def __init__(self, total: int, head: bytes = b""):
        self.total, self.head, self.read = total, head, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            self.read += len(self.head)
            yield self.head
        while self.read < self.total:
            chunk = b" " * min(CHUNK, self.total - self.read)
            self.read += len(chunk)
            yield chunk


HUGE = 32 * 1024 * 1024  # far past any limit here: never to be read whole


def notifications(monkeypatch) -> Notifications:
    return Notifications(monkeypatch, notifications_alert_secret=ALERT_SECRET)


def post(service: Notifications, path: str, body: Drip, **kwargs) -> httpx.Response:
    return service.request("POST", path, content=body, **kwargs)


@pytest.mark.parametrize("params", [{}, {"id": "a" * 32, "token": "0" * 24},
                                    {"id": "a" * 32, "token": dlr_token(DLR_SECRET, "b" * 32)}])
def test_an_unsigned_delivery_report_is_refused_before_its_body_is_read(monkeypatch, params):
    service = notifications(monkeypatch)
    body = Drip(HUGE, head=b'{"ref": "')
    answer = post(service, "/v1/dlr/http", body, params=params, headers={"content-type": "application/json"})
    assert answer.status_code == 403
    assert body.read <= CHUNK


def test_a_signed_delivery_report_is_read_only_up_to_its_limit(monkeypatch):
    service = notifications(monkeypatch)
    message_id = "a" * 32
    body = Drip(HUGE, head=b'{"ref": "')
    answer = post(service, "/v1/dlr/http", body, params={"id": message_id, "token": dlr_token(DLR_SECRET, message_id)},
                  headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert body.read <= MAX_BYTES  # its limit (64 KiB) is far below the alerts' megabyte


@pytest.mark.parametrize("content", [b"[]", b'"x"', b"{", b"\xff"])
def test_a_signed_delivery_report_that_is_not_a_json_object_is_refused(monkeypatch, content):
    service = notifications(monkeypatch)
    message_id = "a" * 32
    answer = service.request("POST", "/v1/dlr/http", content=content,
                             params={"id": message_id, "token": dlr_token(DLR_SECRET, message_id)})
    assert answer.status_code == 422


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic " + ALERT_SECRET])
def test_an_alert_without_the_token_is_refused_before_its_body_is_read(monkeypatch, authorization):
    service = notifications(monkeypatch)
    body = Drip(HUGE)
    answer = post(service, "/v1/alerts", body, headers={"authorization": authorization} if authorization else {})
    assert answer.status_code == 401
    assert body.read <= CHUNK


def test_an_alert_past_its_limit_is_refused_as_it_is_read_not_after(monkeypatch):
    service = notifications(monkeypatch)
    body = Drip(HUGE)
    answer = post(service, "/v1/alerts", body, headers={"authorization": f"Bearer {ALERT_SECRET}"})
    assert answer.status_code == 413
    assert body.read <= MAX_BYTES + CHUNK


def test_an_alert_declaring_a_length_past_its_limit_is_refused_unread(monkeypatch):
    service = notifications(monkeypatch)
    body = Drip(HUGE)
    answer = post(service, "/v1/alerts", body, headers={"authorization": f"Bearer {ALERT_SECRET}",
                                                        "content-length": str(HUGE)})
    assert answer.status_code == 413
    assert body.read <= CHUNK


def test_an_alert_within_its_limit_is_still_read_and_judged(monkeypatch):
    service = notifications(monkeypatch)
    answer = service.request("POST", "/v1/alerts", content=b'{"version": "4"}',
                             headers={"authorization": f"Bearer {ALERT_SECRET}"})
    assert answer.status_code == 422 and "groupKey" in answer.json()["detail"]


# -- a dossier's events -------------------------------------------------------------------------------

CAP = 1000
START = datetime.fromisoformat("2025-07-07T10:00:00+07:00")


def step(type_: str, n: int) -> tuple[DossierEvent, bytes]:
    obj = event(type_, subject=CODE, time=START + timedelta(seconds=n), id_=f"{type_}-{n}")
    return parse_event(obj), orjson.dumps(obj)


def full_dossier(received: bool = True) -> StoredDossier:
    """A dossier holding exactly the cap's events: a receipt (or not) and digitizations."""
    first = [step("dossier.received", 0)] if received else []
    steps = first + [step("dossier.digitized", n) for n in range(1, CAP + 1 - len(first))]
    result = integrate(StoredDossier(CODE), steps, CAL, NOW, max_events=CAP)
    assert len(result.stored.events) == CAP
    return result.stored


def test_the_default_cap_is_a_thousand_events():
    assert ProcessingSettings.model_fields["processing_max_events_per_dossier"].default == 1000


@pytest.mark.parametrize("received", [True, False], ids=["received", "waiting for its receipt"])
def test_an_event_past_a_dossiers_cap_is_dead_lettered_with_the_reason_and_never_stored(received):
    full = full_dossier(received)
    extra = step("dossier.transferred", 5000)
    result = integrate(full, [extra], CAL, NOW, max_events=CAP)
    assert (result.applied, result.waiting, result.dead_lettered, result.duplicates) == (0, 0, 1, 0)
    assert result.over_cap == 1
    assert len(result.stored.events) == CAP and result.stored.events == full.events
    [dead] = [o for o in result.stored.outbox if o.kind == "dlq"]
    assert (dead.key, dead.reason, dead.value) == (CODE, f"dossier over {CAP} events", extra[1])
    assert json.loads(dead.value)["id"] == "dossier.transferred-5000"
    assert result.stored.view == full.view and result.stored.status == full.status  # nothing of it folded


@pytest.mark.parametrize("batch", ["past the cap", "duplicates"])
def test_a_batch_that_adds_nothing_to_a_full_dossier_does_not_fold_its_thousand_events_again(monkeypatch, batch):
    """Every event past the cap, or sent again, cost a fold of the dossier's whole history: 1,000 events, ~20 ms
    of processing's CPU each (by hand on 2026-12-06), for an event that changes nothing."""
    full = full_dossier()
    folds = []
    monkeypatch.setattr(history, "fold", lambda *args: folds.append(args) or fold(*args))
    sent = [step("dossier.transferred", 5000)] if batch == "past the cap" else [step("dossier.digitized", 7)]
    result = integrate(full, sent, CAL, NOW, max_events=CAP)
    assert folds == []
    assert (result.applied, result.dead_lettered, result.duplicates) == ((0, 1, 0) if batch == "past the cap" else
                                                                         (0, 0, 1))
    assert replace(result.stored, outbox=full.outbox) == full


def test_a_dossier_whose_view_is_behind_its_events_is_folded_even_for_duplicates():
    """Read back from links past its summary (a replica stopped between its write and its summary: links keep no
    view), a dossier shows an older state: the batch that brings its events again folds it, once."""
    full = full_dossier()
    behind = replace(full, view=None, phone4=None, summary_behind=True)
    result = integrate(behind, [step("dossier.digitized", 7)], CAL, NOW, max_events=CAP)
    assert result.stored.view == full.view and result.stored.summary_behind  # its summary is written next


def test_a_full_dossier_still_knows_its_own_events_as_duplicates():
    full = full_dossier()
    again = [step("dossier.received", 0), step("dossier.digitized", 7)]
    result = integrate(full, again, CAL, NOW, max_events=CAP)
    assert (result.applied, result.dead_lettered, result.duplicates, result.over_cap) == (0, 0, 2, 0)
    assert result.stored.outbox == full.outbox and result.stored.events == full.events


def test_a_batch_filling_a_dossier_keeps_the_events_up_to_the_cap_and_dead_letters_the_rest():
    small = 5
    steps = [step("dossier.received", 0)] + [step("dossier.digitized", n) for n in range(1, 8)]
    result = integrate(StoredDossier(CODE), steps + [steps[6]], CAL, NOW, max_events=small)
    assert [json.loads(e)["id"] for e in result.stored.events] == [json.loads(raw)["id"] for _, raw in steps[:small]]
    assert [o.reason for o in result.stored.outbox if o.kind == "dlq"] == [f"dossier over {small} events"] * 3
    assert (result.applied, result.dead_lettered, result.duplicates, result.over_cap) == (5, 3, 1, 3)


class Store:
    """Processing's store, as dicts: what the processor loads, writes and marks published."""

    def __init__(self, stored: StoredDossier):
        self.dossiers = {stored.code: stored}

    async def load(self, codes: list[str], from_database: bool = False,
                   read_unseen: Collection[str] = ()) -> dict[str, StoredDossier]:
        return {code: self.dossiers.get(code, StoredDossier(code)) for code in codes}

    async def save(self, changes: list[tuple[StoredDossier, StoredDossier]]) -> tuple[list[StoredDossier], set[str]]:
        for _, after in changes:
            self.dossiers[after.code] = after
        return [after for _, after in changes], set()

    async def mark_sent(self, published: list[StoredDossier]) -> None:
        for stored in published:
            self.dossiers[stored.code] = replace(stored, outbox=[])


def test_the_processor_applies_its_setting_and_counts_what_it_dead_letters():
    settings_ = ProcessingSettings(environment="local", processing_max_events_per_dossier=3,
                                   lookup_secret="lookup-key-for-the-security-tests")
    full = integrate(StoredDossier(CODE), [step("dossier.received", 0), step("dossier.digitized", 1),
                                           step("dossier.digitized", 2)], CAL, NOW).stored
    store = Store(replace(full, outbox=[]))  # published
    sent: list[Outgoing] = []

    async def publish(outgoing: list[Outgoing]) -> None:
        sent.extend(outgoing)

    registry = CollectorRegistry()
    metrics = ProcessingMetrics(registry)
    processor = Processor(settings_, store, CAL, publish, metrics, clock=lambda: NOW)  # type: ignore[arg-type]
    extra = step("dossier.transferred", 3)
    asyncio.run(processor.handle([Record(extra[0], extra[1], CODE.encode(), "dossier-events", 0, 0, 0)]))
    assert [(o.kind, o.reason) for o in sent] == [("dlq", "dossier over 3 events")]
    assert len(store.dossiers[CODE].events) == 3
    assert registry.get_sample_value("processing_events_total", {"outcome": "dead_lettered"}) == 1
