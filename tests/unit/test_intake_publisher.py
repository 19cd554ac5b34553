"""Intake's publisher when the broker forgot the producer's sequence state (seen after a Kafka
restart with batches in flight): aiokafka keeps failing with that producer, so it is replaced."""

import asyncio

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber, ProducerFenced

from services.intake.publisher import EventPublisher, KafkaUnavailable
from services.intake.settings import IntakeSettings


class Forgotten:
    """A producer whose every send is refused by the broker with `error` (its sequence or epoch lost)."""

    stopped = False

    def __init__(self, error: Exception):
        self.error = error

    async def send(self, *args, **kwargs) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        future.set_exception(self.error)
        return future

    async def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("lost", [OutOfOrderSequenceNumber(), ProducerFenced()])  # aiokafka's words for an epoch refused
async def test_a_producer_the_broker_forgot_is_replaced(lost):
    publisher = EventPublisher(IntakeSettings(environment="local", kafka_bootstrap_servers="127.0.0.1:9",
                                              intake_kafka_timeout_ms=500))
    forgotten = Forgotten(lost)
    publisher._producer = forgotten
    with pytest.raises(KafkaUnavailable, match=type(lost).__name__):
        await publisher.publish([("000.00.38.H56-250707-0001", b"{}")])
    await asyncio.sleep(0)
    assert forgotten.stopped and publisher._producer is None  # 503 until a new producer is connected
    assert publisher._connecting is not None and not publisher._connecting.done()
    await publisher.stop()
