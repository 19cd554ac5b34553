"""Processing's pure core: merging events into a stored history and deciding what to publish."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.fixtures.sample import event
from services.processing.history import MAX_ANNOUNCED, Outgoing, StoredDossier, give_up_waiting, integrate
from shared.calendar import WorkingCalendar
from shared.events import EventErrors, parse_event
from shared.mongo import pack, unpack

CAL = WorkingCalendar.load()
NOW = datetime(2025, 7, 7, 3, 0, tzinfo=UTC)
CODE = "000.00.38.H56-250707-0001"


def raw(type_, time, id_, **data):
    obj = event(type_, subject=CODE, time=datetime.fromisoformat(time), id_=id_, **data)
    return parse_event(obj), orjson.dumps(obj)


RECEIVED = raw("dossier.received", "2025-07-07T10:00:00+07:00", "r")
RESOLVED = raw("dossier.resolved", "2025-07-08T09:00:00+07:00", "s")
WITHDRAWN = raw("dossier.withdrawn", "2025-07-07T11:00:00+07:00", "w")


def published(stored: StoredDossier) -> StoredDossier:
    return replace(stored, outbox=[])


def test_a_receipt_is_applied_and_announced():
    result = integrate(StoredDossier(CODE), [RECEIVED], CAL, NOW)
    assert (result.applied, result.duplicates, result.dead_lettered) == (1, 0, 0)
    [status] = result.stored.outbox
    body = json.loads(status.value)
    assert (status.kind, status.key, body["type"], body["subject"]) == ("status", CODE, "dossier.status_changed", CODE)
    assert body["data"]["old"] is None
    assert body["data"]["new"] == {
        "state": "processing", "due_at": "2025-07-08T10:00:00+07:00", "timeliness": None,
        "appointment_at": "2025-07-08T10:00:00+07:00", "open_state": "due_soon",  # 24 h ahead
    }
    assert body["data"]["events"] == 1
    assert [f["since"] for f in body["data"]["timeline"]] == ["2025-07-07T10:00:00+07:00"]
    assert body["data"]["applicant"]["sms_opt_in"] is True


def test_a_duplicate_changes_nothing_and_announces_nothing():
    first = published(integrate(StoredDossier(CODE), [RECEIVED], CAL, NOW).stored)
    again = integrate(first, [RECEIVED, RECEIVED], CAL, NOW)
    assert (again.applied, again.duplicates) == (0, 2)
    assert again.stored.outbox == [] and again.stored.events == first.events


def test_a_change_is_announced_with_the_old_and_new_status_and_a_repeatable_id():
    first = published(integrate(StoredDossier(CODE), [RECEIVED], CAL, NOW).stored)
    ended = integrate(first, [RESOLVED], CAL, NOW)
    [status] = ended.stored.outbox
    data = json.loads(status.value)["data"]
    assert (data["old"]["state"], data["new"]["state"], data["new"]["timeliness"]) == ("processing", "resolved", "on_time")
    assert status == integrate(first, [RESOLVED], CAL, NOW).stored.outbox[0]


def test_the_outbox_survives_until_it_is_published():
    unpublished = integrate(StoredDossier(CODE), [RECEIVED], CAL, NOW).stored
    redelivered = integrate(unpublished, [RECEIVED], CAL, NOW).stored
    assert len(redelivered.outbox) == 1


def test_an_outbox_kept_in_a_link_is_read_back_as_the_same_bytes():
    """Each value kept as its text (the default, what versions before read), or a status record as JSON and an event
    for the dead-letter topic as its text (DOSSIER_PROCESSING_LINK_RECORDS_AS_JSON): either reads back."""
    history = published(integrate(StoredDossier(CODE), [RECEIVED, WITHDRAWN], CAL, NOW).stored)
    outbox = [*integrate(StoredDossier(CODE), [RECEIVED], CAL, NOW).stored.outbox,
              *integrate(history, [RESOLVED], CAL, NOW).stored.outbox]
    assert [o.kind for o in outbox] == ["status", "dlq"]
    kept = unpack(pack({"outbox": [o.to_doc(records_as_json=True) for o in outbox]}))["outbox"]
    assert isinstance(kept[0]["value"], dict) and isinstance(kept[1]["value"], str)
    assert [Outgoing.from_doc(doc) for doc in kept] == outbox
    as_text = unpack(pack({"outbox": [o.to_doc() for o in outbox]}))["outbox"]  # the default, as before
    assert as_text == [{"kind": o.kind, "key": o.key, "value": o.value.decode(), "reason": o.reason} for o in outbox]
    assert [Outgoing.from_doc(doc) for doc in as_text] == outbox


def test_an_impossible_transition_is_dead_lettered_once_with_its_reason():
    history = published(integrate(StoredDossier(CODE), [RECEIVED, WITHDRAWN], CAL, NOW).stored)
    result = integrate(history, [RESOLVED], CAL, NOW)
    [dlq] = result.stored.outbox
    assert (dlq.kind, dlq.reason, dlq.value) == ("dlq", "dossier.resolved cannot follow state withdrawn", RESOLVED[1])
    assert result.dead_lettered == 1
    # Kept with the dossier, for its sender to read back (TraCuuHoSo, docs/dvcqg.md); once.
    assert result.stored.rejections == [{"source": RESOLVED[0].source, "id": "s", "type": "dossier.resolved",
                                         "time": "2025-07-08T09:00:00+07:00",
                                         "reason": "dossier.resolved cannot follow state withdrawn"}]
    assert integrate(published(result.stored), [RESOLVED], CAL, NOW).stored.outbox == []
    assert len(integrate(published(result.stored), [RESOLVED], CAL, NOW).stored.rejections) == 1


def test_a_late_event_that_invalidates_an_earlier_one_dead_letters_it():
    # resolved arrived first; a withdrawal from before it arrives late: the resolution no longer holds.
    history = published(integrate(StoredDossier(CODE), [RECEIVED, RESOLVED], CAL, NOW).stored)
    result = integrate(history, [WITHDRAWN], CAL, NOW)
    kinds = sorted(o.kind for o in result.stored.outbox)
    assert kinds == ["dlq", "status"]
    assert json.loads(next(o for o in result.stored.outbox if o.kind == "status").value)["data"]["new"]["state"] == "withdrawn"


def test_events_without_a_receipt_wait_then_are_dead_lettered():
    waiting = integrate(StoredDossier(CODE), [RESOLVED], CAL, NOW)
    assert (waiting.waiting, waiting.stored.waiting_since, waiting.stored.outbox) == (1, NOW, [])
    given_up = give_up_waiting(waiting.stored, "168 hours")
    [dlq] = given_up.outbox
    assert dlq.reason == f"no dossier.received for {CODE} within 168 hours"
    assert [(r["id"], r["reason"]) for r in given_up.rejections] == [("s", dlq.reason)]
    assert given_up.waiting_since is None


def test_the_receipt_ends_the_wait():
    waiting = integrate(StoredDossier(CODE), [RESOLVED], CAL, NOW).stored
    received = integrate(waiting, [RECEIVED], CAL, NOW)
    assert received.stored.waiting_since is None
    # Each step is announced, in time order: the receipt, then the resolution that waited for it.
    states = [json.loads(o.value)["data"]["new"]["state"] for o in received.stored.outbox]
    assert states == ["processing", "resolved"]


def test_a_change_of_what_the_figures_count_is_announced_even_when_the_state_stays():
    first = published(integrate(StoredDossier(CODE), [RECEIVED, RESOLVED], CAL, NOW).stored)
    rated = raw("dossier.rated", "2025-07-08T10:00:00+07:00", "rate", rating="satisfied")
    [status] = integrate(first, [rated], CAL, NOW).stored.outbox
    data = json.loads(status.value)["data"]
    assert data["old"] == data["new"] and data["cause"]["type"] == "dossier.rated"
    assert [f["rating"] for f in data["timeline"]] == [None, None, "satisfied"]
    # A transfer after the end changes nothing: the dossier waits nowhere.
    transferred = raw("dossier.transferred", "2025-07-08T10:00:00+07:00", "t", from_unit="a", to_unit="b")
    assert integrate(first, [transferred], CAL, NOW).stored.outbox == []


def test_a_batch_with_several_steps_announces_each_in_time_order_with_the_whole_timeline():
    supplement = raw("dossier.supplement_requested", "2025-07-07T11:00:00+07:00", "sr", reason="x")
    result = integrate(StoredDossier(CODE), [RESOLVED, supplement, RECEIVED], CAL, NOW)
    events = [json.loads(o.value) for o in result.stored.outbox]
    # The resolution cannot follow a supplement request: it is dead-lettered, not announced.
    assert [e["data"]["new"]["state"] for e in events if e["type"] == "dossier.status_changed"] == [
        "processing", "awaiting_supplement"]
    assert [e["data"]["cause"]["id"] for e in events if e["type"] == "dossier.status_changed"] == ["r", "sr"]
    assert len({json.dumps(e["data"]["timeline"]) for e in events if "timeline" in e["data"]}) == 1
    assert len({e["id"] for e in events}) == len(events)


def test_a_flood_of_changes_to_one_dossier_in_one_batch_announces_the_first_then_where_it_ends():
    """Each record carries the whole timeline: past MAX_ANNOUNCED changes of one dossier in one batch, the rest
    are announced by the last one (a sender's flood would otherwise hold their number times the timeline)."""
    cycles = MAX_ANNOUNCED  # each a request for a supplement and its receipt: two changes
    steps = [RECEIVED]
    for n in range(cycles):
        hour = datetime(2025, 7, 7, 11, tzinfo=UTC) + timedelta(hours=n)
        steps += [raw("dossier.supplement_requested", hour.isoformat(), f"sr{n}", reason="x"),
                  raw("dossier.supplement_received", (hour + timedelta(minutes=30)).isoformat(), f"sv{n}")]
    records = [json.loads(o.value)["data"] for o in integrate(StoredDossier(CODE), steps, CAL, NOW).stored.outbox]
    assert len(records) == MAX_ANNOUNCED
    assert records[0]["old"] is None and records[-1]["cause"]["id"] == f"sv{cycles - 1}"
    assert all(later["old"] == earlier["new"] for earlier, later in zip(records, records[1:]))  # a chain, none lost
    assert [r["cause"]["id"] for r in records[:3]] == ["r", "sr0", "sv0"]
    below = integrate(StoredDossier(CODE), steps[:MAX_ANNOUNCED], CAL, NOW).stored.outbox
    assert len(below) == MAX_ANNOUNCED  # up to it, every change


def test_a_stored_history_is_not_checked_again_against_todays_commune_list():
    """Units merge and split: a receipt accepted under yesterday's official list stays accepted, and the
    dossier's next steps apply (they were dead-lettered while the history was validated anew)."""
    receipt = event("dossier.received", subject=CODE, time=datetime.fromisoformat("2025-07-07T10:00:00+07:00"),
                    id_="r", commune_code="99999")  # a code today's list does not have
    with pytest.raises(EventErrors, match="commune_code"):
        parse_event(receipt)  # at the edge, a new event is checked
    stored = StoredDossier(CODE, events=[orjson.dumps(receipt).decode()])  # as read back from the store
    result = integrate(stored, [RESOLVED], CAL, NOW)
    assert (result.applied, result.dead_lettered) == (1, 0)
    assert result.folded.dossier.received.commune_code == "99999" and result.folded.dossier.state == "resolved"
