"""Finding 12: Kafka without authentication. Any workload that reached the broker could write status
records (a dossier "completed on time", an SMS to a citizen) or read the applicants' names and phones.
Now every client logs in with SASL/SCRAM as its service's user and the broker grants each user only
the topics of docs/architecture.md's table (shared/kafka_acls.py). Against the test stack's real broker,
on this run's topics with the grants `make up` gives the project's."""

import asyncio
import time
from datetime import datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError

from shared.kafka import client_options
from shared.kafka_acls import password_file
from shared.settings import ServiceSettings
from tests.fixtures.sample import VN, dossier_code, event
from tests.integration.conftest import SECRETS, read_topic, wait_until


def as_user(settings: ServiceSettings, user: str | None) -> ServiceSettings:
    """This run's topics, as `user` (None: no login at all)."""
    return settings.model_copy(update={"kafka_username": user or "",
                                       "kafka_password_file": password_file(SECRETS, user) if user else None})


async def produce(settings: ServiceSettings, topic: str) -> None:
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True, request_timeout_ms=5000)
    try:
        await producer.start()
        await producer.send_and_wait(topic, b'{"forged": true}', key=b"H38.01-250707-0001")
    finally:
        await producer.stop()


async def consume(settings: ServiceSettings, topic: str, group: str | None = None, seconds: float = 10) -> list:
    """The topic's records, read from its start (in `group`, or assigned without one)."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=5000)
    try:
        await consumer.start()
        await asyncio.sleep(0)  # aiokafka 0.14: let the consumer's task run once before stopping
        if group:
            consumer.subscribe([topic])
        else:
            consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
            await consumer.seek_to_beginning()
        found: list = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += records
            if found:
                break
        return found
    finally:
        await consumer.stop()


def reads_nothing(settings: ServiceSettings, topic: str) -> bool:
    """The broker refuses the fetch; or, for a topic the user may not even see, aiokafka logs "not
    authorized for this client" and hands over nothing."""
    try:
        return asyncio.run(consume(settings, topic, seconds=3)) == []
    except TopicAuthorizationFailedError:
        return True


def test_a_client_without_credentials_can_neither_write_nor_read(settings):
    anonymous = as_user(settings, None)
    with pytest.raises(KafkaConnectionError):
        asyncio.run(produce(anonymous, settings.topic_status))
    with pytest.raises(KafkaConnectionError):
        asyncio.run(consume(anonymous, settings.topic_status))


def test_a_wrong_password_is_no_login(settings, tmp_path):
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password")
    impostor = settings.model_copy(update={"kafka_username": "processing", "kafka_password_file": wrong})
    with pytest.raises(KafkaConnectionError):
        asyncio.run(produce(impostor, settings.topic_status))


def test_notifications_cannot_write_statuses_nor_any_service_forge_events(settings):
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(produce(as_user(settings, "notifications"), settings.topic_status))
    for user in ("processing", "metrics", "notifications", "signature"):
        with pytest.raises(TopicAuthorizationFailedError):
            asyncio.run(produce(as_user(settings, user), settings.topic_events))


def test_intake_cannot_read_the_statuses_nor_the_events_it_writes(settings):
    admin, intake = as_user(settings, "admin"), as_user(settings, "intake")
    for topic in (settings.topic_status, settings.topic_events):
        asyncio.run(produce(admin, topic))  # something to read, which the admin reads
        assert asyncio.run(consume(admin, topic))
        assert reads_nothing(intake, topic)
    # Nor in another service's consumer group: a group's grant is its service's, not intake's.
    with pytest.raises((TopicAuthorizationFailedError, GroupAuthorizationFailedError)):
        asyncio.run(consume(intake, settings.topic_status, group="notifications"))


def test_a_service_reads_only_in_its_own_group(settings):
    asyncio.run(produce(as_user(settings, "admin"), settings.topic_events))
    assert asyncio.run(consume(as_user(settings, "signature"), settings.topic_events, group="signature"))
    with pytest.raises(GroupAuthorizationFailedError):
        asyncio.run(consume(as_user(settings, "signature"), settings.topic_events, group="processing"))


def test_processing_reads_events_and_writes_statuses_and_rejections(pipeline):
    """Intake and processing as their own users: an event in, its status out, a foreign source's event
    dead-lettered on dossier-events.dlq, a record that is no event on the dead-letter topic processing
    created itself at start."""
    processing = pipeline.add_processing().start()
    settings = pipeline.settings
    code = dossier_code(datetime(2025, 7, 7, tzinfo=VN), sequence=9012)
    at = datetime(2025, 7, 7, 9, tzinfo=VN)
    pipeline.post([event("dossier.received", code, at) | {"source": "urn:motcua:38"}])
    wait_until(lambda: asyncio.run(read_topic(settings, settings.topic_status)), 60, message="a status")
    foreign = event("dossier.withdrawn", code, at + timedelta(hours=1), id_="foreign-step") | {"source": "urn:motcua:25"}
    pipeline.post([foreign])
    [rejected] = wait_until(lambda: asyncio.run(read_topic(settings, settings.topic_dlq)), 60, message="a rejection")
    assert b"foreign-step" in rejected.value
    asyncio.run(produce(as_user(settings, "admin"), settings.topic_events))  # not an event
    [letter] = wait_until(lambda: asyncio.run(read_topic(settings, f"{settings.topic_events}.dlq.processing")), 60,
                          message="a dead letter")
    assert letter.value == b'{"forged": true}'
    assert httpx.get(f"{processing.url}/readyz").status_code == 200
    for log in (processing.logs(), pipeline.intake.logs()):
        assert "AuthorizationFailed" not in log and "Authentication" not in log
