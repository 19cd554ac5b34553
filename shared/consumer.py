"""What the wiring of every Kafka-consuming service shares: connecting with retries, a batch met by
an unreachable database, loops in the background, consumer lag, readiness."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from shared.http import NotReady
from shared.settings import ServiceSettings

log = structlog.get_logger()


def make_broker(settings: ServiceSettings, service: str) -> KafkaBroker:
    """The service's broker: what it publishes is idempotent and acknowledged by every replica;
    its log goes through the service's own format, per-message lines at debug level."""
    return KafkaBroker(settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, client_id=service,
                       logger=logging.getLogger(f"{service}.kafka"), log_level=logging.DEBUG)


def batch_subscriber(broker: KafkaBroker, topic: str, group: str, max_records: int) -> Any:
    """Batches from the topic's start for a new group; the offsets are committed after the handler
    returns, and a failing batch is redelivered from its first offset."""
    return broker.subscriber(topic, group_id=group, batch=True, max_records=max_records,
                             auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR)


async def start_broker(broker: KafkaBroker, topic: str, group: str) -> None:
    """Start consuming, retrying every second while Kafka is away (a service starts without it)."""
    while True:
        try:
            await broker.start()
            log.info("consuming", topic=topic, group=group)
            return
        except (KafkaError, OSError) as exc:
            log.warning("kafka not reachable, retrying", error=str(exc))
            with contextlib.suppress(Exception):
                await broker.stop()
            await asyncio.sleep(1)


async def handle_or_rewind(work: Awaitable[None]) -> None:
    """Handle a batch; if the database is away, wait a little and fail, so that the subscriber
    (NACK_ON_ERROR) redelivers the batch from its first offset."""
    try:
        await work
    except PyMongoError as exc:
        log.warning("database unavailable, the batch will be retried", error=str(exc))
        await asyncio.sleep(1)
        raise


async def until_done(work: Callable[[], Awaitable[Any]], what: str) -> Any:
    """`work`, tried again every second while the database is away."""
    while True:
        try:
            return await work()
        except PyMongoError as exc:
            log.warning(f"{what}: mongodb not reachable, retrying", error=str(exc))
            await asyncio.sleep(1)


async def every(seconds: float, what: str, work: Callable[[], Awaitable[Any]], wait_first: bool = False) -> None:
    """`work` every `seconds`; a failure of the database or of Kafka is logged and tried next time."""
    if wait_first:
        await asyncio.sleep(seconds)
    while True:
        try:
            await work()
        except (PyMongoError, KafkaError) as exc:
            log.warning(f"{what} failed, will retry", error=str(exc))
        except Exception:  # a bug: said loudly, and the loop goes on rather than dying unseen
            log.exception(f"{what} failed")
        await asyncio.sleep(seconds)


async def consumer_lag(subscriber: Any) -> int:
    """Records not yet consumed on the partitions this replica has."""
    consumer = subscriber.consumer
    lag = 0
    for tp in consumer.assignment() if consumer else ():
        if (highwater := consumer.highwater(tp)) is not None:
            lag += max(0, highwater - await consumer.position(tp))
    return lag


def ready_when_consuming(mongo: AsyncMongoClient | None, subscriber: Any,
                         first: Callable[[], str | None] = lambda: None) -> NotReady:
    """Readiness: `first`'s problem if any, then MongoDB answering (unless None: a service that
    serves from memory), then the subscriber consuming."""

    async def not_ready() -> str | None:
        if problem := first():
            return problem
        if mongo is not None:
            try:
                await mongo.admin.command("ping")
            except PyMongoError:
                return "mongodb unreachable"
        return None if subscriber.consumer is not None else "not consuming yet"

    return not_ready
