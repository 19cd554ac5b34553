"""The Kafka side of intake: an idempotent producer (acks=all) keyed by dossier code."""

import asyncio
import contextlib

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.intake.settings import IntakeSettings
from shared.kafka import LOST_IDEMPOTENCE, STRUCTURED_HEADERS, client_options, started_producer

log = structlog.get_logger()



class KafkaUnavailable(Exception):
    """Kafka did not confirm the events in time: the caller gets 503 and retries."""


class EventPublisher:
    def __init__(self, settings: IntakeSettings):
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._retiring: asyncio.Task[None] | None = None  # a producer being stopped after _renew

    async def start(self) -> None:
        # Intake starts even while Kafka is down: it answers 503 until the producer connects. Without a
        # Kafka user outside the local stack, it does not start.
        client_options(self._settings)
        self._connecting = asyncio.create_task(self._connect())

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._producer is not None:
            await self._producer.stop()

    async def _connect(self) -> None:
        # A record over MAX_MESSAGE_BYTES is refused (413) before it gets here.
        self._producer = await started_producer(self._settings, "intake", linger_ms=self._settings.intake_linger_ms,
                                                request_timeout_ms=self._settings.intake_kafka_timeout_ms)
        log.info("connected to kafka")

    async def publish(self, records: list[tuple[str, bytes]]) -> None:
        """Publish (dossier code, CloudEvent JSON) pairs; return once Kafka acknowledged all of them."""
        if self._producer is None:
            raise KafkaUnavailable("not connected to Kafka yet")
        topic = self._settings.topic_events
        try:
            async with asyncio.timeout(2 * self._settings.intake_kafka_timeout_ms / 1000):
                sent = [
                    await self._producer.send(topic, value=value, key=key.encode(), headers=STRUCTURED_HEADERS)
                    for key, value in records
                ]
                results = await asyncio.gather(*sent, return_exceptions=True)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(str(exc) or type(exc).__name__) from exc
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            if any(isinstance(f, LOST_IDEMPOTENCE) for f in failures):
                self._renew()
            raise KafkaUnavailable(str(failures[0]) or type(failures[0]).__name__)

    def _renew(self) -> None:
        """Replace the producer; requests get 503 until the new one is connected."""
        old, self._producer = self._producer, None
        if old is None:
            return  # another request is renewing it already
        log.warning("kafka lost the producer's sequence state: starting a new producer")
        self._retiring = asyncio.create_task(old.stop())
        self._connecting = asyncio.create_task(self._connect())

    async def reachable(self, timeout: float = 2.0) -> bool:
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError):
            return False
        return True
