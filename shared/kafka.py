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


async def ensure_topics(settings: ServiceSettings, timeout: float = 60) -> None:
    """Create the project's topics if they do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic_events, settings.topic_status, settings.topic_dlq]
        missing = [
            NewTopic(name, num_partitions=settings.partitions, replication_factor=1)
            for name in wanted
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another starter won the race
            log.info("topics created", topics=[t.name for t in missing], partitions=settings.partitions)
    finally:
        await admin.close()


if __name__ == "__main__":
    from shared.logging import configure_logging

    configure_logging("topics")
    asyncio.run(ensure_topics(ServiceSettings()))
