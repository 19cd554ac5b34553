"""Kafka conventions shared by the services: who a client is (SASL/SCRAM), topics, the CloudEvents
binding, topic creation."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (InvalidProducerEpoch, KafkaConnectionError, KafkaError, OutOfOrderSequenceNumber,
                             ProducerFenced, TopicAlreadyExistsError, UnknownProducerId)
from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from shared.settings import ServiceSettings

# CloudEvents Kafka protocol binding, structured mode: the value is the JSON CloudEvent.
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
STRUCTURED_HEADERS = [("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())]

# The largest record batch a producer sends and a broker and topic take (`max_request_size`,
# `message.max.bytes`, `max.message.bytes`: deploy/local/kafka.sh, docker-compose.yml and the chart say
# the same): an event of intake's largest body (1 MiB) with the attributes intake adds, and room for what
# the consumers write from one (a dead letter with its headers, a status carrying the applicant).
# Consumers need no setting: a broker hands a fetch its first batch whole, however large.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
TOPIC_CONFIG = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
# How many bytes a producer gathers for one partition before it sends them (aiokafka's default is 16 KiB).
# A producer has one request to a broker in flight at a time, so with 3-KB status records the default carried
# about five records per partition and round trip: a batch of 2,000 took some 70 round trips (bench-e2e).
PRODUCER_BATCH_BYTES = 256 * 1024
# The broker no longer agrees with a producer's idempotence state (a broker restarted while batches were in
# flight): aiokafka does not recover from these (an epoch refused comes as ProducerFenced), a new producer does.
LOST_IDEMPOTENCE = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)

log = structlog.get_logger()


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """What every aiokafka client (producer, consumer, admin) is given: where Kafka is and, with a user,
    who we are, over SASL/SCRAM (docs/security.md, finding 12). The one place clients are told."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers}
    if not settings.kafka_username:
        if settings.environment != "local":
            raise ValueError("DOSSIER_KAFKA_USERNAME: outside the local stack (DOSSIER_ENVIRONMENT=local) every "
                             "Kafka client authenticates as its service's user")
        return options
    return options | {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": settings.kafka_sasl_mechanism,
                      "sasl_plain_username": settings.kafka_username, "sasl_plain_password": settings.kafka_secret()}


def kafka_away(exc: KafkaError) -> bool:
    """Kafka cannot be reached now, or asks to be tried again; otherwise it refused (a login, a permission)."""
    return isinstance(exc, KafkaConnectionError) or exc.retriable


async def until_reached(work: Callable[[], Awaitable[Any]], what: str) -> Any:
    """`work`, tried again every second while Kafka cannot be reached or refuses it (a login or a permission
    refused is logged as an error, Kafka away as a warning)."""
    while True:
        try:
            return await work()
        except (KafkaError, OSError) as exc:
            refused = isinstance(exc, KafkaError) and not kafka_away(exc)
            (log.error if refused else log.warning)(
                f"{what}: kafka refused it, retrying" if refused else f"{what}: kafka not reachable, retrying",
                error=repr(exc))
            await asyncio.sleep(1)


async def started_producer(settings: ServiceSettings, client_id: str, **options: Any) -> AIOKafkaProducer:
    """A producer every service publishes with (acks=all, idempotent, `PRODUCER_BATCH_BYTES` a partition),
    started, tried again every second while Kafka cannot be reached. aiokafka's own, not FastStream's
    publish: that costs twice its CPU a record (30 µs against 55-80 for a 3-KB record, by hand on 2026-12-06)."""

    async def start() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True,
                                    max_batch_size=PRODUCER_BATCH_BYTES, max_request_size=MAX_MESSAGE_BYTES,
                                    client_id=client_id, **options)
        try:
            await producer.start()
        except BaseException:  # refused, away or cancelled (the service stopping): nothing left open
            await producer.stop()
            raise
        return producer

    return await until_reached(start, "starting a producer")


def broker_security(settings: ServiceSettings) -> BaseSecurity | None:
    """The same user, as FastStream's KafkaBroker takes it. Building a broker connects nothing (the
    AsyncAPI document is made from one): a service checks `client_options` when it starts."""
    if not settings.kafka_username:
        return None
    scram = SASLScram512 if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
    return scram(settings.kafka_username, settings.kafka_secret())


async def partitions_of(settings: ServiceSettings, topic: str) -> list[TopicPartition]:
    """The partitions a topic has now (none if it does not exist)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described.get("partitions", [])]


async def _admin(settings: ServiceSettings, timeout: float) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**client_options(settings))
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            return admin
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1)


async def ensure_topics(settings: ServiceSettings, names: list[str] | None = None, timeout: float = 60) -> None:
    """Create topics if they do not exist yet (idempotent): by default the project's three, with the
    configured partitions and replication factor, each taking records up to MAX_MESSAGE_BYTES."""
    admin = await _admin(settings, timeout)
    try:
        existing = set(await admin.list_topics())
        wanted = names or [settings.topic_events, settings.topic_status, settings.topic_dlq]
        missing = [NewTopic(name, num_partitions=settings.partitions, replication_factor=settings.replication_factor,
                            topic_configs=TOPIC_CONFIG)
                   for name in wanted if name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another starter won the race
            log.info("topics created", topics=[t.name for t in missing], partitions=settings.partitions)
    finally:
        await admin.close()


async def ensure_topic(settings: ServiceSettings, name: str) -> None:
    """One topic of a service's own (a dead-letter topic), created when the service starts."""
    await ensure_topics(settings, [name])


if __name__ == "__main__":
    from shared.kafka_acls import prepare  # which uses this module
    from shared.logging import configure_logging

    configure_logging("topics")
    asyncio.run(prepare(ServiceSettings()))
