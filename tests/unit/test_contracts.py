"""The records on dossier-status: what their writers build, their readers parse back, once."""

import dataclasses
import hashlib
import importlib
import json
import uuid
from datetime import timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.metrics.figures import Counted
from services.metrics.store import COUNTED, KEPT
from shared.contracts import (
    STATUS_DATA, Cause, ClockChanged, DeadLetter, SignatureVerified, Status, StatusChanged, StatusData,
    StatusRecord, StatusWriter, clock_changed, json_schemas, received_of, record_id, SCHEMAS, status_changed,
    status_of,
)
from shared.dossier import fold
from shared.facts import TIMELINE, Received
from tests.unit.test_dossier import CAL, LIFE, at, ev, received

RECORDS = TypeAdapter(StatusRecord)


def processing_record(events=LIFE) -> StatusChanged:
    folded = fold(events, CAL)
    return status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(events))


def test_a_status_record_read_back_is_the_one_written_and_its_timeline_the_fold():
    record = processing_record()
    parsed = RECORDS.validate_json(record.to_bytes())
    assert isinstance(parsed, StatusChanged) and parsed == record
    assert parsed.data.timeline == fold(LIFE, CAL).timeline  # the fold's own Facts, parsed back
    counted = Counted.of(parsed.data)
    assert KEPT.validate_json(KEPT.dump_json([counted])) == [counted]  # what the metrics store keeps


def test_what_the_metrics_store_kept_before_v1_2_reads_as_what_it_keeps_now():
    counted = Counted.of(processing_record().data)
    before = COUNTED.dump_python(counted, mode="json")
    before["new"] = {"appointment_at": before.pop("appointment_at")}  # v1.1 kept the status' `new`
    for entry in before["timeline"]:
        del entry["unit"]  # v1.0 had no unit
    del before["received_by_unit"], before["announced_until"]
    without_units = tuple(dataclasses.replace(f, unit=None) for f in counted.timeline)
    assert COUNTED.validate_python(before) == dataclasses.replace(counted, timeline=without_units)


def test_the_same_change_has_the_same_id_and_another_change_another():
    folded = fold(LIFE, CAL)
    status = status_of(folded.dossier, CAL)
    entries = folded.timeline
    first = status_changed(folded.dossier, None, status, entries, len(LIFE))
    assert first.id == status_changed(folded.dossier, None, status, entries, len(LIFE)).id
    assert first.id != status_changed(folded.dossier, None, status, entries[:-1], len(LIFE)).id
    renamed = dataclasses.replace(folded.dossier, applicant=folded.dossier.applicant.model_copy(update={"name": "B"}))
    assert first.id != status_changed(renamed, None, status, entries, len(LIFE)).id  # any fact it carries


def pydantic_record(dossier, old, new, timeline, events, cause=None) -> bytes:
    """A status record as pydantic writes the whole model, its id made of its data's JSON: what
    StatusWriter's bytes must be, byte for byte (a record published again keeps its id)."""
    last = cause or dossier.history[-1]
    data = StatusData(
        **received_of(dossier.received), ended_at=dossier.ended_at, withdrawn_at=dossier.withdrawn_at,
        missing=dossier.missing, cause=Cause(id=last.id, type=last.type), old=old, new=new, events=events,
        timeline=timeline, applicant=dossier.applicant, arrivals=dossier.arrivals,
        arrivals_synced=dossier.arrivals_synced)
    digest = hashlib.sha256(STATUS_DATA.dump_json(data)).hexdigest()
    record = StatusChanged(id=record_id(dossier.code, events, last.id, digest), subject=dossier.code,
                           time=last.time, data=data)
    return record.model_dump_json().encode()


def writers_and_pydantics(events) -> list[tuple[bytes, bytes]]:
    """Each step's record of a life, as processing announces a batch (one writer, each status the last's
    `new`) and as pydantic writes it."""
    folded = fold(events, CAL)
    writer = StatusWriter(TIMELINE.dump_json(folded.timeline), len(events))
    pairs, old = [], None
    for step, dossier in folded.steps:
        new = status_of(dossier, CAL, step.time)
        pairs.append((writer.record(dossier, old, new, cause=step),
                      pydantic_record(dossier, old, new, folded.timeline, len(events), cause=step)))
        old = new
    return pairs


@pytest.mark.parametrize("length", range(1, len(LIFE) + 1))
def test_a_status_record_is_pydantics_json_of_the_whole_model(length):
    for written, whole in writers_and_pydantics(LIFE[:length]):
        assert written == whole
        assert RECORDS.validate_json(written).model_dump_json().encode() == written


@given(st.text(max_size=300), st.text(max_size=300), st.text(min_size=1, max_size=300),
       st.text(min_size=1, max_size=300), st.sampled_from([None, "0912345678", "+84 91 234 5678"]),
       st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_a_status_record_is_pydantics_json_whatever_text_it_carries(name, extra, reason, unit, phone, fee):
    """The free texts a record carries: the applicant's (a field of its own too), a supplement's reason, a unit;
    and the one number from outside, the fees (1e+16 as pydantic writes it)."""
    receipt = received(hours=16, applicant={"name": name, "phone": phone, "sms_opt_in": True, "note": extra},
                       fee={"amount": fee})
    events = [receipt, ev("dossier.transferred", "2025-07-07 10:30", from_unit="Một cửa", to_unit=unit),
              ev("dossier.supplement_requested", "2025-07-07 15:00", reason=reason),
              ev("dossier.supplement_received", "2025-07-08 09:00")]
    for written, whole in writers_and_pydantics(events):
        assert written == whole
        assert orjson.dumps(orjson.loads(written)) == written  # as processing's links keep it (history.Outgoing)


def test_a_clock_record_says_where_the_dossier_moved_and_carries_no_personal_data():
    status = Status(state="processing", due_at=at("2025-07-08 10:00"), timeliness=None,
                    appointment_at=at("2025-07-08 10:00"), open_state="within_deadline")
    info = Received(dossier_code="000.00.38.H56-250707-0001", commune_code="14923", sector="HT",
                       procedure_code="1.001193", channel="direct", online_level=None, received_at=at("2025-07-07 10:00"))
    moved = clock_changed(info, status, at("2025-07-07 10:00"), "due_soon", events=3)
    again = clock_changed(info, status, at("2025-07-07 10:00") + timedelta(minutes=5), "due_soon", events=4)
    assert moved.id == again.id  # one change, one id
    assert (moved.data.old.open_state, moved.data.new.open_state) == ("within_deadline", "due_soon")
    assert moved.data.cause.type == "clock" and moved.data.cause.id is None
    parsed = RECORDS.validate_json(moved.to_bytes())
    assert isinstance(parsed, ClockChanged)
    written = json.loads(moved.to_bytes())["data"]
    assert "applicant" not in written and "timeline" not in written


@pytest.mark.parametrize("change", [
    {"type": "dossier.something_else"},
    {"source": "urn:elsewhere"},
    {"data": {"dossier_code": "X"}},
])
def test_a_record_of_another_kind_or_incomplete_does_not_parse(change):
    good = processing_record().model_dump(mode="json")
    with pytest.raises(ValidationError):
        RECORDS.validate_python(good | change)


def test_a_signature_verdict_is_told_apart_by_its_type():
    verdict = {"specversion": "1.0", "id": "v", "source": "urn:dossier-tracker:signature",
               "type": "dossier.signature_verified", "subject": "X", "time": "2026-03-02T10:00:00+07:00",
               "data": {"dossier_code": "X", "commune_code": "14923", "sector": "HT", "document_id": "KQ-1",
                        "verdict": "valid", "reasons": [], "document_sha256": "ab" * 32, "signatures": []}}
    assert isinstance(RECORDS.validate_python(verdict), SignatureVerified)


def test_dead_letter_headers_round_trip():
    letter = DeadLetter(reason="x", origin_topic="t", origin_partition=1, origin_offset=5, group="g", error="E")
    assert DeadLetter.from_headers([(k, v.encode()) for k, v in letter.headers().items()]) == letter


def test_the_json_schemas_in_docs_are_current():
    """`python -m shared.contracts` writes them (make docs)."""
    for name, text in json_schemas().items():
        assert (SCHEMAS / name).read_bytes() == text, f"docs/schemas/{name} is not current: run make docs"


@pytest.mark.parametrize("service", ["processing", "metrics", "notifications", "signature"])
def test_the_asyncapi_documents_in_docs_are_current_and_show_real_payloads(service):
    """`make docs` writes them with `faststream docs gen`."""
    generated = importlib.import_module(f"services.{service}.app").asyncapi().schema.to_specification().to_jsonable()
    committed = json.loads((SCHEMAS.parent / "asyncapi" / f"{service}.json").read_text())
    assert committed == generated, f"docs/asyncapi/{service}.json is not current: run make docs"
    text = json.dumps(generated)
    assert "EmptyPayload" not in text and ("StatusChanged" in text or "ReceivedEvent" in text)


@given(st.lists(st.one_of(st.text(), st.integers(), st.none()), max_size=5))
def test_a_record_id_is_the_version_5_uuid_of_its_parts(parts):
    assert record_id(*parts) == str(uuid.uuid5(uuid.UUID("6f1d7c8e-3b4a-4c1e-9d2f-0a5b6c7d8e9f"),
                                                 "|".join(str(p) for p in parts)))


@given(st.text())
def test_a_timeline_written_by_orjson_from_its_json_values_is_pydantics_bytes(unit):
    """Whatever text a transfer's unit holds (the one free text of Facts)."""
    timeline = tuple(dataclasses.replace(f, unit=unit) for f in fold(LIFE, CAL).timeline)
    assert orjson.dumps(TIMELINE.dump_python(timeline, mode="json")) == TIMELINE.dump_json(timeline)
