import copy

import pytest

from tests.fixtures.sample import SAMPLE_DATA, event
from shared.events import EVENT_TYPES, EventErrors, parse_event, parse_events


def errors_of(obj) -> list[tuple[str, str]]:
    with pytest.raises(EventErrors) as caught:
        parse_event(obj)
    return [(e.field, e.message) for e in caught.value.errors]


def test_the_samples_cover_every_type_of_the_contract():
    assert set(SAMPLE_DATA) == set(EVENT_TYPES)
    assert len(EVENT_TYPES) == 17


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_type_parses_into_its_own_model(type_):
    parsed = parse_event(event(type_))
    assert parsed.type == type_
    assert parsed.data.model_dump(exclude_none=True) == parsed.data.model_validate(SAMPLE_DATA[type_]).model_dump(
        exclude_none=True
    )


@pytest.mark.parametrize(
    "type_",
    [t for t, data in SAMPLE_DATA.items() if data and t not in ("dossier.withdrawn", "dossier.resolved",
                                                               "dossier.returned", "dossier.obligation_requested")],
)
def test_every_type_with_required_data_rejects_an_empty_data(type_):
    fields = {field for field, _ in errors_of(event(type_) | {"data": {}})}
    assert fields and all(f.startswith("data.") for f in fields)


@pytest.mark.parametrize("type_", ["dossier.received", "dossier.transferred", "dossier.payment_completed", "dossier.rated"])
def test_a_type_with_required_data_refuses_null_data(type_):
    assert [field for field, _ in errors_of(event(type_) | {"data": None})] == ["data"]


@pytest.mark.parametrize("type_", ["dossier.supplement_received", "dossier.obligation_fulfilled", "dossier.resolved"])
def test_types_without_required_data_accept_null_or_missing_data(type_):
    assert parse_event(event(type_) | {"data": None}).type == type_
    without = {k: v for k, v in event(type_).items() if k != "data"}
    assert parse_event(without).type == type_


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"id": ""}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"source": ""}, "source"),
        ({"type": "dossier.lost"}, "type"),
        ({"subject": "HS-1"}, "subject"),
        ({"subject": "000.00.06.H56-231327-0361"}, "subject"),  # month 13
        ({"time": "2025-07-01T08:00:00"}, "time"),  # no offset
        ({"time": "yesterday"}, "time"),
        ({"datacontenttype": "text/xml"}, "datacontenttype"),
    ],
)
def test_invalid_envelopes_name_the_attribute(change, field):
    assert field in {f for f, _ in errors_of(event("dossier.received") | change)}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": "fax"}, "data.channel"),
        ({"commune_code": "1492"}, "data.commune_code"),
        ({"commune_code": "99999"}, "data.commune_code"),  # five digits, not an official unit
        ({"processing_time": {"value": 0, "unit": "working_days"}}, "data.processing_time.value"),
        ({"processing_time": {"value": 1, "unit": "days"}}, "data.processing_time.unit"),
        ({"online_level": None}, "data.online_level"),  # online without full/partial
        ({"channel": "direct", "online_level": "full"}, "data.online_level"),
        ({"sector": "hộ tịch"}, "data.sector"),  # a label value: short plain code
        ({"due_at": "2025-07-02T10:00:00"}, "data.due_at"),
        ({"applicant": {"sms_opt_in": "maybe"}}, "data.applicant.sms_opt_in"),
    ],
)
def test_invalid_received_data_names_the_field(change, field):
    assert field in {f for f, _ in errors_of(event("dossier.received", **change))}


@pytest.mark.parametrize(
    ("type_", "change", "field"),
    [
        ("dossier.payment_completed", {"method": "cash"}, "data.method"),
        ("dossier.payment_completed", {"amount": -1}, "data.amount"),
        ("dossier.rated", {"rating": "meh"}, "data.rating"),
        ("dossier.digitized", {"scope": "all"}, "data.scope"),
        ("dossier.signed", {"document_sha256": "XYZ"}, "data.document_sha256"),
        ("dossier.signed", {"document_url": "not a url"}, "data.document_url"),
        ("dossier.apology_issued", {"new_due_at": "soon"}, "data.new_due_at"),
        ("dossier.resolved", {"outcome": "maybe"}, "data.outcome"),
        ("dossier.returned", {"method": "pigeon"}, "data.method"),
        ("dossier.stopped", {"reason": ""}, "data.reason"),
    ],
)
def test_invalid_data_of_other_types_names_the_field(type_, change, field):
    assert field in {f for f, _ in errors_of(event(type_, **change))}


def test_unknown_data_fields_and_extension_attributes_are_kept():
    raw = event("dossier.received", ward_note="ghi chú") | {"traceparent": "00-abc"}
    parsed = parse_event(raw)
    assert parsed.data.model_extra == {"ward_note": "ghi chú"}
    assert parsed.model_extra == {"traceparent": "00-abc"}


def test_processing_time_in_days_is_eight_working_hours_a_day():
    parsed = parse_event(event("dossier.received", processing_time={"value": 0.5, "unit": "working_days"}))
    assert parsed.data.processing_time.hours == 4
    parsed = parse_event(event("dossier.received", processing_time={"value": 3, "unit": "working_hours"}))
    assert parsed.data.processing_time.hours == 3


def test_a_non_object_is_one_clear_error():
    assert errors_of([event("dossier.received")]) == [
        ("(event)", "Input should be a valid dictionary or object to extract fields from")
    ]


def test_parsing_does_not_change_the_input():
    raw = event("dossier.received")
    before = copy.deepcopy(raw)
    parse_event(raw)
    assert raw == before


def test_a_batch_is_validated_in_one_pass_and_every_error_names_its_event():
    batch = [event("dossier.received"), event("dossier.received", channel="fax"), "x", event("dossier.rated")]
    with pytest.raises(EventErrors) as caught:
        parse_events(batch)
    assert [(e.index, e.field) for e in caught.value.errors] == [(1, "data.channel"), (2, "(event)")]
    assert [e.type for e in parse_events([batch[0], batch[3]])] == ["dossier.received", "dossier.rated"]
