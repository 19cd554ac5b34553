"""Finding 10: intake and the consumers disagreed. JSON nested 200–254 deep got 202 at intake and was
dead-lettered by every consumer (their parser stops near 200 levels); from 255 levels intake's encoder
failed (500); an event just under the 1 MiB body limit outgrew the producer's request size, so intake
answered 503 forever and tripped the Kafka-down alert. Now intake refuses an event nested deeper than
`intake_max_depth` (32) with a 422, refuses with a 413 an event whose record would outgrow what its body
limit allows, and the producers, the brokers and the topics take the largest record intake writes
(docs/security.md).

Unit-level, in-process: intake on httpx's ASGI transport (no lifespan: no Kafka), its publisher replaced
by one that keeps the records. On the real Kafka: an event just under 1 MiB, and a property (whatever
intake accepts, Kafka takes and the consumers' contract parses)."""

import asyncio
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

import services.intake.app as intake_app
import shared.kafka
from services.intake.app import _as_recorded, create_app
from services.intake.publisher import EventPublisher
from services.intake.settings import IntakeSettings
from shared.auth import ApiKey, key_hash
from shared.contracts import dead_letter_topic
from shared.events import DossierEvent, parse_event_json
from shared.kafka import STRUCTURED_HEADERS, client_options, ensure_topics
from shared.settings import ServiceSettings
from tests.fixtures.sample import SAMPLE_DATA, VN, dossier_code, event
from tests.integration.conftest import ANY_SOURCE_KEY, ROOT, end_offsets, read_topic, wait_until

KEY = "intake-limits-test-key"
SINGLE = {"authorization": f"Bearer {KEY}", "content-type": "application/cloudevents+json"}
BATCH = SINGLE | {"content-type": "application/cloudevents-batch+json"}
DEFAULTS = IntakeSettings(environment="local")
BODY_LIMIT = DEFAULTS.intake_max_body_bytes  # 1 MiB: docs/contract.md §1
MAX_DEPTH = 32
CODE = dossier_code(datetime(2025, 7, 7, tzinfo=VN), sequence=1010)
# What processing's and signature's subscriptions parse each record of dossier-events with (shared.consumer_app).
CONTRACT: TypeAdapter[DossierEvent] = TypeAdapter(DossierEvent)


def consumers_parse(value: bytes) -> DossierEvent:
    """The record as every consumer reads it: the subscriptions' contract, and processing's history (the
    event read back from its store)."""
    parsed = CONTRACT.validate_json(value)
    assert parse_event_json(value) == parsed
    assert parse_event_json(value, stored=True).id == parsed.id
    return parsed


def with_raw(sent: dict[str, Any], name: str, raw: bytes) -> bytes:
    """The event's JSON with an unknown data field `name` holding `raw` (JSON text as given)."""
    placeholder = "\x00placeholder\x00"
    body = orjson.dumps(sent | {"data": sent["data"] | {name: placeholder}})
    return body.replace(orjson.dumps(placeholder), raw)


def nested(depth: int, type_: str = "dossier.supplement_received") -> bytes:
    """A valid event nesting `depth` levels of objects (the event itself is the first, `data` the second):
    an unknown data field holds the rest. Written as text: orjson would not encode the deepest."""
    assert depth >= 2
    levels = depth - 2
    return with_raw(event(type_, CODE), "extra", b'{"a":' * levels + b"1" + b"}" * levels)


def lists(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


# -- intake in-process ----------------------------------------------------------------------------------


class Recorder:
    """Intake's publisher, in memory: the records intake hands to Kafka."""

    def __init__(self, _settings: IntakeSettings):
        self.records: list[tuple[str, bytes]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def reachable(self) -> bool:
        return True

    async def publish(self, records: list[tuple[str, bytes]]) -> None:
        self.records.extend(records)


class Intake:
    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        recorders: list[Recorder] = []
        monkeypatch.setattr(intake_app, "EventPublisher", lambda s: recorders.append(Recorder(s)) or recorders[-1])
        key = ApiKey(name="any", key_sha256=key_hash(KEY), sources=["*"])
        self.app = create_app(IntakeSettings(environment="local", intake_api_keys=[key]))
        [self.publisher] = recorders

    async def post(self, body: bytes, headers: dict[str, str] = SINGLE) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)  # a bug answers 500
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            return await client.post("/v1/events", content=body, headers=headers)


@pytest.fixture
def intake_in_process(monkeypatch) -> Intake:
    return Intake(monkeypatch)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100, 199, 252, 253, 255, 300, 1024])
async def test_an_event_nested_deeper_than_the_cap_gets_a_422_naming_the_depth(intake_in_process, depth):
    answer = await intake_in_process.post(nested(depth))
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["index"] == 0 and error["field"] == "data"
    assert f"{MAX_DEPTH} levels" in error["message"]
    assert intake_in_process.publisher.records == []


@pytest.mark.parametrize("depth", [1025, 5000])
async def test_json_deeper_than_the_decoder_reads_is_refused_without_a_server_error(intake_in_process, depth):
    answer = await intake_in_process.post(nested(depth))
    assert answer.status_code == 400 and "depth" in answer.json()["error"]


@pytest.mark.parametrize("depth", [2, 16, MAX_DEPTH, MAX_DEPTH + 1, 200, 201, 252])
async def test_whatever_depth_intake_accepts_every_consumer_parses(intake_in_process, depth):
    answer = await intake_in_process.post(nested(depth))
    for _key, value in intake_in_process.publisher.records:
        assert depth_of(orjson.loads(value)) == depth
        consumers_parse(value)
    assert (answer.status_code == 202) == (depth <= MAX_DEPTH), answer.text


async def test_a_batch_names_the_event_nested_too_deep(intake_in_process):
    shallow = orjson.dumps(event("dossier.supplement_received", CODE))
    answer = await intake_in_process.post(b"[" + shallow + b"," + nested(MAX_DEPTH + 1) + b"]", BATCH)
    assert answer.status_code == 422, answer.text
    assert [(e["index"], e["field"]) for e in answer.json()["errors"]] == [(1, "data")]
    assert intake_in_process.publisher.records == []


async def test_an_event_that_would_outgrow_its_record_limit_once_written_again_is_refused(intake_in_process):
    # orjson writes 1e15 out in full (1000000000000000.0): the body is under 1 MiB, its record ~3.7 MiB.
    sent = event("dossier.supplement_received", CODE)
    numbers = (BODY_LIMIT - len(with_raw(sent, "readings", b"[]"))) // len(b"1e15,")
    body = with_raw(sent, "readings", b"[" + b",".join([b"1e15"] * numbers) + b"]")
    assert len(body) <= BODY_LIMIT
    answer = await intake_in_process.post(body)
    assert answer.status_code == 413, answer.text
    assert "bytes" in answer.json()["error"]
    assert intake_in_process.publisher.records == []


async def test_an_event_of_the_largest_body_is_written_with_only_intakes_attributes_added(intake_in_process):
    sent = event("dossier.supplement_received", CODE)
    body = with_raw(sent, "note", b'""')
    body = with_raw(sent, "note", orjson.dumps("x" * (BODY_LIMIT - len(body))))
    assert len(body) == BODY_LIMIT
    answer = await intake_in_process.post(body)
    assert answer.status_code == 202, answer.text
    [(_key, value)] = intake_in_process.publisher.records
    assert len(value) <= BODY_LIMIT + attributes_bytes()
    consumers_parse(value)


# -- what Kafka takes -----------------------------------------------------------------------------------


def attributes_bytes() -> int:
    """The most intake adds to an event: `,"intaketime":"…","intakecontributor":true`."""
    arrived = datetime(2026, 12, 4, 21, 0, 0, 999999, tzinfo=VN).isoformat()
    return len(orjson.dumps(_as_recorded({}, True, arrived))) - len(b"{}") + len(b",")


def largest_record() -> int:
    """What a producer sends (and a broker takes) for the largest event intake accepts: a batch of one
    record, keyed by the dossier code, with the CloudEvents header."""
    value = bytes(BODY_LIMIT + attributes_bytes())
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(CODE.encode(), value, STRUCTURED_HEADERS)


async def test_intakes_producer_takes_the_largest_record(monkeypatch):
    made: list[dict[str, Any]] = []

    class Producer:
        def __init__(self, **kwargs: Any):
            made.append(kwargs)

        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(shared.kafka, "AIOKafkaProducer", Producer)  # every service's (shared.kafka.started_producer)
    publisher = EventPublisher(DEFAULTS)
    await publisher.start()
    async with asyncio.timeout(10):
        while not made:
            await asyncio.sleep(0)
    await publisher.stop()
    assert made[0].get("max_request_size", 1024 * 1024) >= largest_record()  # aiokafka's default: 1 MiB


async def test_the_topics_the_services_create_take_the_largest_record(monkeypatch):
    created: list = []

    class Admin:
        def __init__(self, **_kwargs: Any):
            pass

        async def start(self) -> None:
            pass

        async def close(self) -> None:
            pass

        async def list_topics(self) -> list[str]:
            return []

        async def create_topics(self, topics: list) -> None:
            created.extend(topics)

    monkeypatch.setattr(shared.kafka, "AIOKafkaAdminClient", Admin)
    await ensure_topics(ServiceSettings(environment="local"))
    assert {t.name for t in created} == {"dossier-events", "dossier-status", "dossier-events.dlq"}
    for topic in created:
        assert int(topic.topic_configs.get("max.message.bytes", 1048588)) >= largest_record(), topic.name


def test_the_local_broker_compose_and_the_chart_take_the_largest_record_and_agree():
    from tests.unit.test_kubernetes import VARIANTS, manifests

    local = (ROOT / "deploy" / "local" / "kafka.sh").read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["kafka"]["environment"]
    limits = {"local": [int(line.split("=")[1]) for line in local.splitlines()
                        if line.startswith("message.max.bytes=")] or [1048588],  # Kafka's default
              "compose": [int(compose.get("KAFKA_MESSAGE_MAX_BYTES", 1048588))]}
    for variant in VARIANTS:
        [kafka] = manifests(variant, "Kafka")
        limits[f"{variant} broker"] = [int(kafka["spec"]["kafka"]["config"].get("message.max.bytes", 1048588))]
        limits[f"{variant} topics"] = [int(t["spec"]["config"].get("max.message.bytes", 1048588))
                                       for t in manifests(variant, "KafkaTopic")]
    assert len({v for values in limits.values() for v in values}) == 1, limits  # one limit everywhere
    assert all(v >= largest_record() for values in limits.values() for v in values), (largest_record(), limits)


# -- on the real Kafka ----------------------------------------------------------------------------------


def post(url: str, body: bytes) -> httpx.Response:
    headers = {"authorization": f"Bearer {ANY_SOURCE_KEY}", "content-type": "application/cloudevents+json"}
    return httpx.post(f"{url}/v1/events", content=body, headers=headers, timeout=30)


def just_under_the_limit(sent: dict[str, Any], where: str = "data") -> bytes:
    """The event with an unknown field (in `data`, or in `data.applicant`) padded to 16 bytes under 1 MiB."""
    def padded(n: int) -> bytes:
        if where == "data":
            return orjson.dumps(sent | {"data": sent["data"] | {"note": "x" * n}})
        applicant = sent["data"]["applicant"] | {"note": "x" * n}
        return orjson.dumps(sent | {"data": sent["data"] | {"applicant": applicant}})

    body = padded(BODY_LIMIT - 16 - len(padded(0)))
    assert len(body) == BODY_LIMIT - 16
    return body


def records_of(settings, topic: str, code: str) -> list:
    return [r for r in asyncio.run(read_topic(settings, topic)) if r.key == code.encode()]


def test_an_event_just_under_1_mib_reaches_kafka_and_processing_takes_it(pipeline):
    settings = pipeline.settings
    pipeline.add_processing().start()
    code = dossier_code(datetime(2025, 7, 7, tzinfo=VN), sequence=1011)
    sent = event("dossier.received", code)

    answer = post(pipeline.intake.url, just_under_the_limit(sent))

    assert answer.status_code == 202, answer.text
    [record] = records_of(settings, settings.topic_events, code)
    assert consumers_parse(record.value).id == sent["id"]
    wait_until(lambda: records_of(settings, settings.topic_status, code), 60, message="processing's status")
    assert asyncio.run(read_topic(settings, dead_letter_topic(settings.topic_events, "processing"))) == []


def test_a_receipt_whose_applicant_carries_most_of_1_mib_gets_its_status_published(pipeline):
    """A status record carries the applicant, unknown fields kept: nearly 1 MiB here. Processing's producer
    (shared/consumer_app.py) must take it, as it must a dead letter of the largest record (headers added)."""
    settings = pipeline.settings
    pipeline.add_processing().start()
    code = dossier_code(datetime(2025, 7, 7, tzinfo=VN), sequence=1012)
    sent = event("dossier.received", code)

    answer = post(pipeline.intake.url, just_under_the_limit(sent, "applicant"))

    assert answer.status_code == 202, answer.text
    [status] = wait_until(lambda: records_of(settings, settings.topic_status, code), 60,
                          message="processing's status")
    assert len(status.value) > BODY_LIMIT - 1024
    assert asyncio.run(read_topic(settings, dead_letter_topic(settings.topic_events, "processing"))) == []


class Tail:
    """A topic's records from now on, as they come: a group-less consumer on every partition."""

    def __init__(self, settings: ServiceSettings, topic: str):
        self.settings, self.topic = settings, topic

    async def start(self) -> None:
        ends = await end_offsets(self.settings, self.topic)
        self.consumer = AIOKafkaConsumer(**client_options(self.settings),
                                         enable_auto_commit=False)
        await self.consumer.start()
        await asyncio.sleep(0)  # aiokafka 0.14: let the group-less consumer's task run once
        self.consumer.assign([TopicPartition(self.topic, p) for p in ends])
        for partition, offset in ends.items():
            self.consumer.seek(TopicPartition(self.topic, partition), offset)

    async def find(self, event_id: str, timeout: float = 20) -> bytes:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for records in (await self.consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    if orjson.loads(record.value)["id"] == event_id:
                        return record.value
        raise AssertionError(f"event {event_id} not on {self.topic} after {timeout}s")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


@st.composite
def unknown_data(draw) -> tuple[str, Any, int]:
    """An event type, an unknown data value wrapped in up to MAX_DEPTH further levels, and a size to pad
    the event to (0: as it is)."""
    value = draw(JSON)
    for level in range(draw(st.integers(0, MAX_DEPTH))):
        value = {"k": value} if level % 2 else [value]
    size = draw(st.one_of(st.just(0), st.integers(BODY_LIMIT - 4096, BODY_LIMIT + 256)))
    return draw(st.sampled_from(sorted(SAMPLE_DATA))), value, size


def test_whatever_intake_accepts_kafka_takes_and_every_consumer_parses(intake, settings):
    loop = asyncio.new_event_loop()
    tail = Tail(settings, settings.topic_events)
    loop.run_until_complete(tail.start())

    @given(unknown_data(), st.sampled_from(["x", "ư", "😀"]))
    @hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @example(("dossier.received", 1, BODY_LIMIT), "x")
    @example(("dossier.rated", {"k": [[]]}, BODY_LIMIT + 1), "x")
    @example(("dossier.signed", lists(MAX_DEPTH - 2), BODY_LIMIT - 9), "ư")  # the deepest and nearly largest
    @example(("dossier.signed", lists(MAX_DEPTH - 1), 0), "x")
    def accepted_is_taken_and_parsed(drawn: tuple[str, Any, int], pad: str) -> None:
        type_, value, size = drawn
        sent = event(type_, dossier_code())
        sent["data"] = sent["data"] | {"extra": value}
        body = orjson.dumps(sent)
        if size > len(body) + len('"padding":"",'):
            room = size - len(body) - len(',"padding":""')
            sent["data"]["padding"] = pad * (room // len(pad.encode()))
            body = orjson.dumps(sent)
        depth = depth_of(sent)

        answer = post(intake.url, body)

        assert answer.status_code in (202, 413, 422), answer.text
        assert (answer.status_code == 202) == (depth <= MAX_DEPTH and len(body) <= BODY_LIMIT), (depth, len(body))
        if answer.status_code == 202:
            record = loop.run_until_complete(tail.find(sent["id"]))
            assert consumers_parse(record).id == sent["id"]
            written = orjson.loads(record)
            if type_ == "dossier.received":  # the applicant is sealed (finding 6): the rest is as sent
                assert "phone" not in written["data"]["applicant"] and written["data"]["applicant"]["sealed"]
                written["data"].pop("applicant"), sent["data"].pop("applicant")
            assert written | {"intaketime": None} == sent | {"intaketime": None}

    try:
        accepted_is_taken_and_parsed()
    finally:
        loop.run_until_complete(tail.consumer.stop())
        loop.close()
