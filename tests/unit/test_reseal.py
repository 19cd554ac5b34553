"""The one-off re-sealing of applicants written in clear before v1.3 (services/processing/reseal.py): what it
does to the documents processing stored and to the records on the topics, and where it moves each consumer
group on a partition it copies."""

from dataclasses import replace
from datetime import datetime, timedelta

import orjson
import pytest
from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from services.processing.app import opened_view
from services.processing.history import StoredDossier, integrate
from services.processing.reseal import (
    Partition, _parsed, _value_resealed, clear_applicants, is_clear, receipt_applicant, resealed, resealed_blob,
    whole_applicant,
)
from services.processing.store import history_doc, link_to, summary_doc
from shared.calendar import WorkingCalendar
from shared.events import Applicant, parse_event_json
from shared.mongo import unpack
from shared.personal import new_key, opened_applicant
from tests.fixtures.sample import VN, dossier_code, event

CAL = WorkingCalendar.load()
START = datetime(2025, 7, 7, 9, tzinfo=VN)
CODE = dossier_code(START, sequence=7)
APPLICANT = {"name": "Trần Văn Cũ", "phone": "0912345678", "sms_opt_in": True}
KEY = new_key()


def stored_before_v13() -> tuple[StoredDossier, StoredDossier]:
    """A dossier as processing stores it from a receipt sent in clear (before v1.3), then its resolution."""
    stored = StoredDossier(CODE)
    kept = []
    for one in [event("dossier.received", CODE, START, applicant=APPLICANT),
                event("dossier.resolved", CODE, START + timedelta(hours=2))]:
        raw = orjson.dumps(one)
        after = integrate(stored, [(parse_event_json(raw), raw)], CAL, START + timedelta(days=1)).stored
        kept.append(replace(after, version=stored.version + 1))
        stored = replace(kept[-1], outbox=[])
    return kept[0], kept[1]


def opened(applicant: dict) -> Applicant | None:
    return opened_applicant(KEY, CODE, Applicant.model_validate(applicant))


@pytest.mark.parametrize(("applicant", "clear"), [
    (APPLICANT, True),
    ({"name": "A", "phone": None, "sms_opt_in": False, "sealed": None}, True),  # a status record's, before v1.3's seal
    ({"phone": "0912345678"}, True),
    ({"sealed": "v1.abc", "sms_opt_in": True}, False),
    ({"name": None, "phone": None, "sealed": "v1.abc", "sms_opt_in": True}, False),
    ({"sms_opt_in": True}, False),  # erased: nothing personal left
    ({}, False),
    ("Trần", False),
])
def test_an_applicant_is_clear_when_a_personal_field_has_a_value_and_nothing_is_sealed(applicant, clear):
    assert is_clear(applicant) is clear


def test_a_receipt_on_the_topic_is_sealed_and_opens_with_its_dossiers_key_to_what_was_sent():
    value = orjson.dumps(event("dossier.received", CODE, START, applicant=APPLICANT))
    sealed = orjson.loads(_value_resealed(value, _parsed(value), {CODE: KEY}))
    assert set(sealed["data"]["applicant"]) == {"sealed", "sms_opt_in"}
    assert opened(sealed["data"]["applicant"]).model_dump(exclude_none=True) == APPLICANT
    assert b"0912345678" not in orjson.dumps(sealed) and "Trần".encode() not in orjson.dumps(sealed)
    assert sealed | {"data": None} == orjson.loads(value) | {"data": None}  # all else as it was


def test_past_retention_no_key_leaves_only_the_sms_choice():
    value = orjson.dumps(event("dossier.received", CODE, START, applicant=APPLICANT))
    assert orjson.loads(_value_resealed(value, _parsed(value), {CODE: None}))["data"]["applicant"] == {"sms_opt_in": True}


@pytest.mark.parametrize("value", [None, b"", b"not json \"applicant\"", b'{"applicant": {"name": "x"}}',
                                   orjson.dumps(event("dossier.resolved", CODE, START))])
def test_a_record_without_an_applicant_of_a_dossier_is_left_byte_for_byte(value):
    assert _value_resealed(value, _parsed(value), {}) is value


def test_status_records_and_stored_documents_are_sealed_everywhere_and_read_as_processing_reads_them():
    received, resolved = stored_before_v13()
    status = orjson.loads(received.outbox[0].value)
    assert is_clear(status["data"]["applicant"])  # what processing published before v1.3
    docs = [history_doc(received), summary_doc(resolved), link_to(received, resolved).to_doc(),
            link_to(StoredDossier(CODE), received).to_doc(), link_to(StoredDossier(CODE), received).to_doc(True)]
    blobs = [unpack(doc["blob"]) for doc in docs]
    assert all(set(clear_applicants(blob)) == {CODE} for blob in blobs)

    after = [resealed_blob(blob, {CODE: KEY}) for blob in blobs]
    for blob in after:
        assert clear_applicants(blob) == {}
        assert b"0912345678" not in orjson.dumps(blob) and "Văn Cũ".encode() not in orjson.dumps(blob)
        assert resealed_blob(blob, {CODE: KEY}) is blob  # again: nothing left to do
    # The view takes the receipt's applicant, phone whole: the lookup's 4 digits open it.
    summary = after[1]
    assert summary["phone4"] is None and blobs[1]["phone4"] == "5678"
    assert opened_view(summary["view"], KEY).phone == "0912345678"
    assert opened(orjson.loads(summary["receipt"])["data"]["applicant"]).name == APPLICANT["name"]


def test_past_retention_a_view_keeps_what_processing_keeps_of_an_applicant_with_nothing_personal():
    _, resolved = stored_before_v13()
    summary = resealed_blob(unpack(summary_doc(resolved)["blob"]), {CODE: None})
    assert summary["view"]["applicant"] == {"name": None, "phone": None} and summary["phone4"] is None
    assert opened_view(summary["view"], None).phone is None
    assert orjson.loads(summary["receipt"])["data"]["applicant"] == {"sms_opt_in": True}


def test_a_view_without_its_receipt_beside_it_keeps_what_it_had_sealed():
    _, resolved = stored_before_v13()
    blob = unpack(summary_doc(resolved)["blob"]) | {"receipt": None}
    view = resealed_blob(blob, {CODE: KEY})["view"]
    assert opened(view["applicant"]).name == APPLICANT["name"] and opened(view["applicant"]).phone.endswith("78")


def test_a_view_whose_applicant_came_from_another_receipt_than_the_first_keeps_its_own_sealed():
    """The summary keeps the first receipt that came; the view shows the owner's earliest (a back-dated correction
    sent after it): its phone is not taken from a receipt that is not the view's."""
    _, resolved = stored_before_v13()
    blob = unpack(summary_doc(resolved)["blob"])
    blob["view"]["applicant"] = {"name": "Trần Văn Mới", "phone": "09******11"}
    assert whole_applicant(blob) is None
    view = resealed_blob(blob, {CODE: KEY})["view"]
    assert opened(view["applicant"]).model_dump(exclude_none=True) == {"name": "Trần Văn Mới", "phone": "09******11",
                                                                       "sms_opt_in": False}


def test_a_receipt_stored_is_found_in_a_summary_or_among_a_historys_events():
    received, resolved = stored_before_v13()
    assert receipt_applicant(unpack(summary_doc(resolved)["blob"])) == APPLICANT
    assert receipt_applicant(unpack(history_doc(received)["blob"])) == APPLICANT
    assert receipt_applicant({"events": []}) is None and receipt_applicant("x") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "subject", "data", "x"]),
                                                                 inner, max_size=4),
    max_leaves=20)


@given(json_values)
def test_a_document_without_a_clear_applicant_comes_back_as_the_same_object(value):
    assert resealed(value, {}) is value


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=30),
       st.lists(st.integers(min_value=0, max_value=40), max_size=4),
       st.lists(st.booleans(), max_size=40))
def test_each_group_moves_to_the_copy_of_the_first_record_it_had_not_read_and_skips_none_published_meanwhile(
        gaps, stood, others):
    """Offsets with gaps (transaction markers), copied after the end while others publish too (`others`: whether a
    record of theirs lands before each copy, then after the last): a group that had read up to `at` reads on
    from the copy of the first record at or after `at`, or from the new end; never past another's record."""
    olds, at = [], 0
    for gap in gaps:
        at += gap
        olds.append(at)
        at += 1
    end = at
    committed = {f"g{n}": min(offset, end) for n, offset in enumerate(stood)}
    copy = Partition(TopicPartition("t", 0), end, committed)
    news, foreign, at = [], [], end
    for n in range(len(olds) + 1):
        if n < len(others) and others[n]:
            foreign.append(at)
            at += 1
        if n < len(olds):
            news.append(at)
            at += 1
    for old, new in zip(olds, news, strict=True):
        copy.copied(old, new)
    new_end = at
    for group, offset in copy.offsets(new_end).items():
        unread = [new for old, new in zip(olds, news, strict=True) if old >= committed[group]]
        assert offset == min([unread[0] if unread else new_end, *foreign])
