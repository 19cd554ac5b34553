"""Intake's CloudEvents binary content mode (docs/contract.md §1.1): the `ce-*` headers and the body
become the same JSON object the structured mode carries, and from there the same event on Kafka.

The mapping is pure (services/intake/binary_mode.py); the requests go to intake in-process, on httpx's
ASGI transport (no lifespan: no Kafka), its publisher replaced by one that keeps the records."""

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from cloudevents.core.bindings import http as sdk
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from cloudevents.v1.conversion import to_binary as sdk_v1_to_binary
from cloudevents.v1.conversion import to_structured as sdk_v1_to_structured
from cloudevents.v1.http import CloudEvent as SdkV1Event
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import services.intake.app as intake_app
from services.intake.binary_mode import NO_DATA, REQUIRED, binary_event, header_value, is_binary
from services.intake.settings import IntakeSettings
from shared.auth import ApiKey, key_hash
from shared.events import EVENT_TYPES, EventErrors
from shared.personal import DossierKeys, unseal
from tests.fixtures.memory import MemoryDatabase
from tests.fixtures.sample import SAMPLE_DATA, VN, dossier_code, event

KEY, PROVINCE_KEY, GATEWAY_KEY = "binary-any", "binary-38", "binary-gateway"
AUTH = {"authorization": f"Bearer {KEY}"}
STRUCTURED = AUTH | {"content-type": "application/cloudevents+json"}
CODE = dossier_code(datetime(2025, 7, 7, tzinfo=VN), sequence=2424)


def headers_of(sent: dict[str, Any]) -> dict[str, str]:
    """A structured event's attributes as binary-mode headers (values plain ASCII in these samples)."""
    return {f"ce-{name}": str(value) for name, value in sent.items() if name not in ("data", "datacontenttype")}


def binary(sent: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """A structured event as a binary-mode request: its headers (Content-Type from datacontenttype) and body."""
    content_type = {"content-type": sent["datacontenttype"]} if "datacontenttype" in sent else {}
    return headers_of(sent) | content_type, orjson.dumps(sent["data"]) if "data" in sent else b""


# -- header values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("urn:motcua:38", "urn:motcua:38"),
        ("2025-07-01T09:00:00+07:00", "2025-07-01T09:00:00+07:00"),  # `+` is not a space here
        ("x%201", "x 1"),
        ("100%25", "100%"),
        ("Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro € 😀"),  # the binding's own example
        ("%e2%82%ac", "€"),  # lower-case hex
        ("%41%42C", "ABC"),  # encoded though it need not be
        ('"quoted value"', "quoted value"),  # older senders: an RFC 7230 quoted-string
        ('"a \\"b\\" \\\\ c"', 'a "b" \\ c'),
        ('"x%20y"', "x y"),  # unquoted first, then percent-decoded
        ("a\\b", "a\\b"),  # a backslash outside quotes is itself
        ('say "hi"', 'say "hi"'),  # not wholly quoted: as it is
        ("Việt".encode().decode("latin-1"), "Việt"),  # raw UTF-8 (SDK 1.x), as the server reads it
        ("", ""),
    ],
)
def test_a_header_value_is_unquoted_then_percent_decoded_once(raw, value):
    assert header_value(raw) == value


@pytest.mark.parametrize(
    "raw",
    ["%C0%A0",  # overlong U+0020: the binding says it MUST be rejected
     "%FF", "%E2%82", "%ED%A0%80",  # not UTF-8, cut short, a surrogate
     '"a"b"', '"ends in \\"'],
)
def test_a_header_value_that_is_not_utf8_or_not_a_quoted_string_is_refused(raw):
    with pytest.raises(ValueError):
        header_value(raw)


# -- headers to the event -------------------------------------------------------------------------------


def test_binary_mode_is_any_ce_header_whatever_its_case():
    assert is_binary(["authorization", "CE-Id"])
    assert not is_binary(["authorization", "content-type", "traceparent", "ce"])


def test_the_headers_and_the_body_make_the_structured_event_in_the_contracts_order():
    sent = event("dossier.rated", CODE, id_="b-1")
    headers = [("authorization", "Bearer x"), ("traceparent", "00-1-2-01"),
               *((name.upper(), value) for name, value in headers_of(sent).items()), ("ce-partner", "urn%3Aa%20b")]
    made = binary_event(headers, "application/json", sent["data"])
    assert made == sent | {"partner": "urn:a b"}
    assert list(made) == [*REQUIRED, "datacontenttype", "partner", "data"]


@pytest.mark.parametrize(
    ("content_type", "data", "expected"),
    [
        ("application/json", {"rating": "satisfied"}, {"datacontenttype": "application/json",
                                                        "data": {"rating": "satisfied"}}),
        ("", {"rating": "satisfied"}, {"data": {"rating": "satisfied"}}),  # no Content-Type: none
        ("application/json", None, {"datacontenttype": "application/json", "data": None}),  # `null`
        ("application/json", NO_DATA, {"datacontenttype": "application/json"}),  # an empty body
        ("", [1, 2], {"data": [1, 2]}),  # any JSON: validation judges it, as for the structured form
    ],
    ids=["json", "no-content-type", "null", "empty-body", "array"],
)
def test_content_type_and_body_are_datacontenttype_and_data(content_type, data, expected):
    sent = event("dossier.rated", CODE)
    made = binary_event(headers_of(sent).items(), content_type, data)
    assert {k: v for k, v in made.items() if k not in REQUIRED} == expected


def problems(headers: dict[str, str] | list[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = headers.items() if isinstance(headers, dict) else headers
    with pytest.raises(EventErrors) as caught:
        binary_event(pairs, "application/json", {})
    return [(e.field, e.message) for e in caught.value.errors if e.index == 0]


FULL = headers_of(event("dossier.rated", CODE, id_="b-2"))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"ce-id": "1"}, [(name, f"missing: binary mode needs the header ce-{name}")
                          for name in REQUIRED if name != "id"]),
        ({k: v for k, v in FULL.items() if k != "ce-subject"}, [("subject", "missing: binary mode needs the header "
                                                                            "ce-subject")]),
        (list(FULL.items()) + [("ce-id", "2")], [("id", "the header ce-id is sent more than once")]),
        (list(FULL.items()) + [("CE-SOURCE", "urn:motcua:26")], [("source", "the header ce-source is sent more "
                                                                            "than once")]),
        (FULL | {"ce-datacontenttype": "application/json"},
         [("datacontenttype", "the header ce-datacontenttype must not be sent: Content-Type is the datacontenttype "
                              "in binary mode")]),
        (FULL | {"ce-data": "{}"}, [("data", "the header ce-data must not be sent: the body is the data in binary "
                                             "mode")]),
        (FULL | {"ce-trace-id": "1"}, [("trace-id", "the header ce-trace-id names no CloudEvents attribute "
                                                    "(lower-case letters and digits after ce-)")]),
        (FULL | {"ce-": "1"}, [("ce-", "the header ce- names no CloudEvents attribute (lower-case letters and "
                                       "digits after ce-)")]),
        (FULL | {"ce-id": "%C0%A0"}, [("id", "the header ce-id is not UTF-8 once percent-decoded (percent-encode "
                                             "it as UTF-8: CloudEvents HTTP binding §3.1.3.2)")]),
    ],
    ids=["only-id", "no-subject", "id-twice", "source-twice-other-case", "ce-datacontenttype", "ce-data",
         "dashed-name", "empty-name", "overlong-utf8"],
)
def test_incomplete_or_ambiguous_headers_are_refused_naming_each_attribute(headers, expected):
    assert problems(headers) == expected


# -- through intake -------------------------------------------------------------------------------------


class Recorder:
    """Intake's publisher, in memory: the records intake hands to Kafka."""

    def __init__(self, _settings: IntakeSettings):
        self.records: list[tuple[str, bytes]] = []

    async def publish(self, records: list[tuple[str, bytes]]) -> None:
        self.records.extend(records)


class Intake:
    def __init__(self) -> None:
        recorders: list[Recorder] = []
        keys = [ApiKey(name="any", key_sha256=key_hash(KEY), sources=["*"]),
                ApiKey(name="thanh-hoa", key_sha256=key_hash(PROVINCE_KEY), sources=["urn:motcua:38"],
                       provinces=["38"]),
                ApiKey(name="gateway", key_sha256=key_hash(GATEWAY_KEY), sources=["*"],
                       contributes=["dossier.payment_completed"])]
        self.keys = DossierKeys(MemoryDatabase())  # the dossiers' keys, in memory
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(intake_app, "EventPublisher", lambda s: recorders.append(Recorder(s)) or recorders[-1])
            patch.setattr(intake_app, "dossier_keys", lambda _database, _secret: self.keys)
            self.app = intake_app.create_app(IntakeSettings(environment="local", intake_api_keys=keys))
        [self.publisher] = recorders

    def post(self, body: bytes, headers: dict[str, str] | list[tuple[str, str]]) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)  # a bug answers 500
            async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
                return await client.post("/v1/events", content=body, headers=headers)

        return asyncio.run(send())

    def recorded(self, body: bytes, headers: dict[str, str] | list[tuple[str, str]]) -> tuple[httpx.Response, Any]:
        """The answer and what went to Kafka (key, the event without its `intaketime`), or None."""
        before = len(self.publisher.records)
        answer = self.post(body, headers)
        new = self.publisher.records[before:]
        if not new:
            return answer, None
        [(key, value)] = new
        written = orjson.loads(value)
        assert datetime.fromisoformat(written.pop("intaketime")).tzinfo is not None
        if sealed := (written.get("data") or {}).get("applicant", {}).get("sealed"):  # opened, to compare
            clear = unseal(asyncio.run(self.keys.key_of(key)), key, sealed)
            written["data"]["applicant"] = clear | {k: v for k, v in written["data"]["applicant"].items()
                                                    if k != "sealed"}
        return answer, (key, written)


@pytest.fixture(scope="module")
def intake() -> Intake:
    return Intake()


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_type_in_binary_mode_is_recorded_as_its_structured_form(intake, type_):
    sent = event(type_, CODE)
    headers, body = binary(sent)
    by_binary = intake.recorded(body, AUTH | headers)
    by_structured = intake.recorded(orjson.dumps(sent), STRUCTURED)
    assert by_binary[0].status_code == by_structured[0].status_code == 202, by_binary[0].text
    assert by_binary[1] == by_structured[1] == (CODE, sent)


def test_the_official_sdk_in_binary_and_structured_mode_is_recorded_alike(intake):
    attributes = {"specversion": "1.0", "id": "sdk 1", "source": "urn:motcua:38", "type": "dossier.payment_completed",
                  "subject": CODE, "time": datetime(2025, 7, 7, 10, 30, tzinfo=VN), "partner": "Ngân hàng Việt",
                  "datacontenttype": "application/json"}
    data = SAMPLE_DATA["dossier.payment_completed"]
    written = []
    sent = SdkEvent(attributes, data)
    for message in (sdk.to_binary_event(sent), sdk.to_structured_event(sent)):
        answer, recorded = intake.recorded(message.body, AUTH | message.headers)
        assert answer.status_code == 202, answer.text
        written.append(recorded)
    # The SDK 1.x API (cloudevents.http in 1.x): its binary headers are not percent-encoded; ASCII here.
    legacy = SdkV1Event(attributes | {"time": attributes["time"].isoformat(), "partner": "NHVN"}, data)
    for headers, body in (sdk_v1_to_binary(legacy), sdk_v1_to_structured(legacy)):
        answer, recorded = intake.recorded(body, AUTH | headers)
        assert answer.status_code == 202, answer.text
        written.append(recorded)
    assert written[0] == written[1] == (CODE, {
        "specversion": "1.0", "id": "sdk 1", "source": "urn:motcua:38", "type": "dossier.payment_completed",
        "subject": CODE, "time": "2025-07-07T10:30:00+07:00", "partner": "Ngân hàng Việt",
        "datacontenttype": "application/json", "data": data})
    assert written[2] == written[3] == (CODE, written[0][1] | {"partner": "NHVN"})


ANY_RATED = event("dossier.rated", CODE)


@pytest.mark.parametrize(
    ("headers", "body", "status", "answer"),
    [
        # A JSON body without specversion and no ce-* headers: the SDK's data sent alone, say.
        (AUTH | {"content-type": "application/json"}, orjson.dumps({"rating": "satisfied"}), 422,
         {"errors": [{"index": 0, "field": "specversion", "message": intake_app.NEITHER_MODE}]}),
        (STRUCTURED, orjson.dumps({"type": "dossier.rated"}), 422,
         {"errors": [{"index": 0, "field": "specversion", "message": intake_app.NEITHER_MODE}]}),
        (AUTH | {"content-type": "application/json", "ce-id": "1", "ce-specversion": "1.0", "ce-source": "urn:a",
                 "ce-type": "dossier.rated"}, b"{}", 422,
         {"errors": [{"index": 0, "field": name, "message": f"missing: binary mode needs the header ce-{name}"}
                     for name in ("subject", "time")]}),
        (AUTH | {"content-type": "text/plain", "ce-id": "1"}, b"{}", 415,
         {"error": "binary mode (ce-* headers) takes the data as application/json"}),
        (AUTH | {"content-type": "text/plain"}, b"{}", 415,
         {"error": "use application/cloudevents+json or application/cloudevents-batch+json, or binary mode: ce-* "
                   "headers with application/json data"}),
        (AUTH | binary(ANY_RATED)[0], b"{not json", 400, None),
        (AUTH | binary(ANY_RATED)[0] | {"ce-specversion": "0.3"}, binary(ANY_RATED)[1], 422,
         {"errors": [{"index": 0, "field": "specversion", "message": "Input should be '1.0'"}]}),
        (AUTH | binary(ANY_RATED)[0], b'{"rating": "meh"}', 422,
         {"errors": [{"index": 0, "field": "data.rating",
                      "message": "Input should be 'very_satisfied', 'satisfied' or 'unsatisfied'"}]}),
        (binary(ANY_RATED)[0], binary(ANY_RATED)[1], 401, {"error": "missing or unknown API key"}),
        ({"authorization": f"Bearer {PROVINCE_KEY}"} | binary(ANY_RATED)[0] | {"ce-source": "urn:motcua:26"},
         binary(ANY_RATED)[1], 403, {"error": "key 'thanh-hoa' may not send events from urn:motcua:26"}),
        (AUTH | binary(ANY_RATED)[0], b'"' + b"x" * 1024 * 1024 + b'"', 413, None),
    ],
    ids=["json-without-specversion", "structured-without-specversion", "binary-missing-subject-time",
         "binary-not-json", "neither-content-type", "binary-malformed-body", "binary-bad-specversion",
         "binary-invalid-data", "binary-no-key", "binary-source-not-allowed", "binary-body-over-1MiB"],
)
def test_binary_mode_answers_as_the_structured_mode_does(intake, headers, body, status, answer):
    response, recorded = intake.recorded(body, headers)
    assert response.status_code == status, response.text
    if answer is not None:
        assert response.json() == answer
    else:
        assert "error" in response.json()
    assert recorded is None


def test_the_binary_body_has_the_same_depth_cap(intake):
    deep: Any = 1
    for _ in range(31):  # the event is the first level, data the second: 33 in all
        deep = {"a": deep}
    headers, _ = binary(event("dossier.supplement_received", CODE))
    response, recorded = intake.recorded(orjson.dumps({"extra": deep}), AUTH | headers)
    assert response.status_code == 422 and recorded is None
    [error] = response.json()["errors"]
    assert error["field"] == "data" and "32 levels" in error["message"]


def test_headers_cannot_set_the_attributes_intake_writes_itself(intake):
    """`intaketime` and `intakecontributor` are intake's (docs/security.md): a caller's, sent as headers,
    is replaced or dropped exactly as in the structured form."""
    headers, body = binary(event("dossier.payment_completed", CODE, id_="smuggled"))
    smuggled = headers | {"ce-intaketime": "2025-07-07T10:00:00+07:00", "ce-intakecontributor": "true"}

    before = len(intake.publisher.records)
    assert intake.post(body, AUTH | smuggled).status_code == 202
    [(_key, value)] = intake.publisher.records[before:]
    written = orjson.loads(value)
    assert written["intaketime"] != "2025-07-07T10:00:00+07:00"
    assert datetime.now(timezone.utc) - datetime.fromisoformat(written["intaketime"]) < timedelta(minutes=1)
    assert "intakecontributor" not in written  # the key "any" contributes nothing

    assert intake.post(body, {"authorization": f"Bearer {GATEWAY_KEY}"} | smuggled).status_code == 202
    assert orjson.loads(intake.publisher.records[-1][1])["intakecontributor"] is True  # intake's, a boolean


@pytest.mark.parametrize("content_type", ["application/cloudevents+json", "application/cloudevents-batch+json"])
def test_a_cloudevents_content_type_is_structured_or_batched_whatever_ce_headers_come_with_it(intake, content_type):
    sent = event("dossier.rated", CODE, id_="structured-wins")
    body = orjson.dumps([sent] if content_type.endswith("batch+json") else sent)
    stray = {"ce-id": "other", "ce-type": "dossier.withdrawn", "ce-partner": "x"}  # HTTP binding §3.2.3: may come
    response, recorded = intake.recorded(body, AUTH | stray | {"content-type": content_type})
    assert response.status_code == 202, response.text
    assert recorded == (CODE, sent)


# -- the property: any binary encoding of an event is recorded as its structured form ------------------

PRINTABLE = {chr(c) for c in range(0x21, 0x7F)} - {'"', "%"}


def percent_encoded(value: str, lower: bool, also: frozenset[str]) -> str:
    """The binding's encoding (§3.1.3.2), upper or lower-case hex, also encoding `also` needlessly."""
    hex_ = "%{:02x}" if lower else "%{:02X}"
    return "".join(char if char in PRINTABLE and char not in also else "".join(hex_.format(b) for b in char.encode())
                   for char in value)


@st.composite
def header_encodings(draw: st.DrawFn, value: str) -> str:
    encoded = percent_encoded(value, draw(st.booleans()), frozenset(draw(st.sets(st.sampled_from("az:+.-\\")))))
    if draw(st.booleans()):  # as an RFC 7230 quoted-string, as older senders do
        encoded = '"' + encoded.replace("\\", "\\\\") + '"'
    return encoded


RESERVED = {*REQUIRED, "datacontenttype", "data"}
texts = st.text(max_size=40)
integers = st.integers(-(2**63), 2**63 - 1)  # what JSON encoders write


def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """`valid` nine times in ten: most events are accepted, some refused, each way compared."""
    return st.integers(0, 9).flatmap(lambda n: invalid if n == 0 else valid)


times = mostly(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                            timezones=st.sampled_from([VN, timezone.utc, timezone(timedelta(hours=-5))]))
               .map(datetime.isoformat), texts)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """Structured events, valid or not: any type, id, source, subject and time, string extensions (intake's own
    among them), data as the sample, with unknown fields, a field replaced, or absent."""
    type_ = draw(st.sampled_from(EVENT_TYPES))
    sent: dict[str, Any] = {
        "specversion": draw(mostly(st.just("1.0"), st.just("0.3"))),
        "id": draw(mostly(st.text(min_size=1, max_size=128), st.text(min_size=129, max_size=140) | st.just(""))),
        "source": draw(mostly(st.sampled_from(["urn:motcua:38", "urn:motcua:26"]) | st.text(min_size=1, max_size=60),
                              st.text(min_size=257, max_size=300))),
        "type": type_,
        "subject": draw(mostly(st.just(CODE) | st.builds(dossier_code, sequence=st.integers(0, 9999)), texts)),
        "time": draw(times),
    }
    if draw(st.booleans()):
        sent["datacontenttype"] = "application/json"
    names = st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(lambda n: n not in RESERVED)
    sent |= draw(st.dictionaries(names | st.sampled_from(["intaketime", "intakecontributor"]), texts, max_size=3))
    data = dict(SAMPLE_DATA[type_])
    extra = st.dictionaries(st.text(max_size=10), st.none() | st.booleans() | integers | texts, max_size=2)
    if data and draw(mostly(st.just(False), st.just(True))):
        data[draw(st.sampled_from(sorted(data)))] = draw(st.none() | integers | texts)
    sent["data"] = draw(mostly(st.just(data) | extra.map(lambda e: data | e), st.sampled_from([NO_DATA, None])))
    if sent["data"] is NO_DATA:
        del sent["data"]
    return sent


@st.composite
def binary_forms(draw: st.DrawFn, sent: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes]:
    headers = [(draw(st.sampled_from([f"ce-{name}", f"CE-{name.upper()}", f"Ce-{name}"])),
                draw(header_encodings(value)))
               for name, value in sent.items() if name not in ("data", "datacontenttype")]
    headers = draw(st.permutations(headers))
    if "datacontenttype" in sent:
        headers.append(("content-type", draw(st.sampled_from(["application/json", "application/json; charset=utf-8",
                                                               "Application/JSON"]))))
    return [*AUTH.items(), *headers], orjson.dumps(sent["data"]) if "data" in sent else b""


@given(st.data())
@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_binary_encoding_of_an_event_is_answered_and_recorded_as_its_structured_form(intake, data):
    sent = data.draw(events())
    headers, body = data.draw(binary_forms(sent))
    by_binary = intake.recorded(body, headers)
    by_structured = intake.recorded(orjson.dumps(sent), STRUCTURED)
    assert by_binary[0].status_code == by_structured[0].status_code, (by_binary[0].text, by_structured[0].text)
    assert by_binary[0].json() == by_structured[0].json()
    assert by_binary[1] == by_structured[1]
