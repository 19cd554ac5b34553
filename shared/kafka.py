"""Kafka conventions shared by the services: topics, the CloudEvents binding, topic creation."""

import asyncio

import structlog
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

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

log = structlog.get_logger()


async def partitions_of(settings: ServiceSettings, topic: str) -> list[TopicPartition]:
    """The partitions a topic has now (none if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described.get("partitions", [])]


async def _admin(settings: ServiceSettings, timeout: float) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
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
    from shared.logging import configure_logging

    configure_logging("topics")
    asyncio.run(ensure_topics(ServiceSettings()))
