"""The consumer skeleton (shared.consumer_app) on FastStream's in-memory broker: what it parses, what it
dead-letters, what it retries."""

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, OutOfOrderSequenceNumber, ProducerFenced
from faststream.kafka import TestKafkaBroker
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from pymongo.errors import AutoReconnect, DocumentTooLarge

from shared.contracts import DeadLetter
import shared.consumer_app
from shared.consumer_app import ConsumerApp, PartitionStopped, Record, infrastructure_away
from shared.settings import ServiceSettings


class Item(BaseModel):
    n: int


async def _raw(message, _original):
    return message.raw_message


def service_with(handle, **settings) -> tuple[ConsumerApp, list]:
    runtime = ConsumerApp("test", ServiceSettings(**settings), CollectorRegistry(), database=False, in_memory=True)
    runtime.consume("items", "g", Item, handle, max_batch=10)
    letters: list = []

    @runtime.broker.subscriber("items.dlq.g", decoder=_raw)
    async def dead(record) -> None:
        letters.append(record)

    return runtime, letters


async def test_a_record_that_does_not_parse_is_dead_lettered_and_the_others_are_handled():
    handled: list[int] = []

    async def handle(records: list[Record[Item]]) -> None:
        handled.extend(r.value.n for r in records)

    runtime, letters = service_with(handle)
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish_batch(b'{"n": 1}', b"\xff not json", b'{"n": "x"}', b'{"n": 4}', topic="items")
    assert handled == [1, 4]
    assert sorted(r.value for r in letters) == sorted([b"\xff not json", b'{"n": "x"}'])
    why = [DeadLetter.from_headers(list(r.headers)) for r in letters]
    assert {(w.error, w.group, w.origin_topic) for w in why} == {("undecodable", "g", "items")}
    assert all(w.reason for w in why)
    assert runtime.dead_letters.labels("items", "g", "undecodable")._value.get() == 2


async def test_a_record_whose_handling_raises_is_dead_lettered_alone():
    handled: list[int] = []

    async def handle(records: list[Record[Item]]) -> None:
        if any(r.value.n == 13 for r in records):
            raise ValueError("thirteen is not handled")
        handled.extend(r.value.n for r in records)

    runtime, letters = service_with(handle)
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish_batch(b'{"n": 12}', b'{"n": 13}', b'{"n": 14}', topic="items")
    assert handled == [12, 14]  # the batch raised: its records handled one by one
    [letter] = letters
    assert letter.value == b'{"n": 13}'
    why = DeadLetter.from_headers(list(letter.headers))
    assert (why.error, why.reason) == ("ValueError", "thirteen is not handled")


async def test_when_the_database_is_away_the_batch_is_retried_not_dead_lettered():
    async def handle(records: list[Record[Item]]) -> None:
        raise AutoReconnect("connection refused")

    runtime, letters = service_with(handle)
    async with TestKafkaBroker(runtime.broker) as broker:
        with pytest.raises(AutoReconnect):
            await broker.publish_batch(b'{"n": 1}', topic="items")
    assert letters == []


async def test_a_handler_that_raises_on_everything_stops_the_partition_and_dead_letters_nothing():
    broken = {"now": True}  # a bug, or an outage no one told apart from a bad record
    handled: list[int] = []

    async def handle(records: list[Record[Item]]) -> None:
        if broken["now"]:
            raise KeyError("a field every record has")
        handled.extend(r.value.n for r in records)

    runtime, letters = service_with(handle, dlq_max_consecutive=3)
    async with TestKafkaBroker(runtime.broker) as broker:
        with pytest.raises(PartitionStopped):
            await broker.publish_batch(*(b'{"n": %d}' % n for n in range(5)), topic="items")
        assert letters == [] and handled == []  # not dead-lettered, not committed: redelivered later
        assert runtime.stopped == {("items", 0): "3 unexpected failures in a row"}
        assert runtime.stopped_partitions.labels("items", "g")._value.get() == 1

        broken["now"] = False  # fixed: the records pass again
        await broker.publish_batch(*(b'{"n": %d}' % n for n in range(5)), topic="items")
    assert handled == [0, 1, 2, 3, 4] and letters == []
    assert runtime.stopped == {} and runtime.stopped_partitions.labels("items", "g")._value.get() == 0


async def test_bad_records_never_count_toward_the_limit():
    async def handle(records: list[Record[Item]]) -> None:
        pass

    runtime, letters = service_with(handle, dlq_max_consecutive=2)
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish_batch(*[b"not json"] * 6, topic="items")
    assert len(letters) == 6 and runtime.stopped == {}


@pytest.mark.parametrize("error, away", [
    (AutoReconnect("x"), True),
    (KafkaConnectionError("x"), True),
    (DocumentTooLarge("x"), False),  # the record's fault: retrying would never end
    (ValueError("x"), False),
    (KeyError("x"), False),
])
def test_what_counts_as_the_infrastructure_being_away(error, away):
    assert infrastructure_away(error) is away


class Producer:
    """What `ConsumerApp.publish` sends with, answering each record with `answer` (an exception, or None: taken;
    "never": not answered)."""

    def __init__(self, answer=None):
        self.answer, self.sent, self.stopped = answer, [], False

    async def send(self, topic, value, key=None, headers=None) -> asyncio.Future:
        self.sent.append((topic, key, value, headers))
        future = asyncio.get_running_loop().create_future()
        if isinstance(self.answer, BaseException):
            future.set_exception(self.answer)
        elif self.answer is None:
            future.set_result(None)
        return future

    async def stop(self) -> None:
        self.stopped = True


def started(producer) -> ConsumerApp:
    runtime = ConsumerApp("test", ServiceSettings(environment="local", kafka_bootstrap_servers="127.0.0.1:9"),
                          CollectorRegistry(), database=False)
    runtime._producer = producer
    return runtime


async def test_records_are_published_keyed_with_their_headers():
    producer = Producer()
    await started(producer).publish("t", [("k1", b"v1", {}), ("k2", b"v2", {"dlq-reason": "r"})])
    assert producer.sent == [
        ("t", b"k1", b"v1", [("content-type", b"application/cloudevents+json")]),
        ("t", b"k2", b"v2", [("content-type", b"application/cloudevents+json"), ("dlq-reason", b"r")])]


async def test_publishing_before_kafka_is_reached_is_kafka_away():
    runtime = started(None)
    with pytest.raises(KafkaConnectionError) as raised:
        await runtime.publish("t", [("k", b"v", {})])
    assert infrastructure_away(raised.value)


@pytest.mark.parametrize("lost", [OutOfOrderSequenceNumber(), ProducerFenced()])
async def test_a_producer_the_broker_forgot_is_replaced_and_the_batch_tried_again(lost):
    """aiokafka does not recover from these: the same producer would fail every record, each dead-lettered."""
    forgotten = Producer(lost)
    runtime = started(forgotten)
    with pytest.raises(KafkaConnectionError) as raised:
        await runtime.publish("t", [("k", b"v", {})])
    assert infrastructure_away(raised.value)  # tried again, nothing dead-lettered
    await asyncio.sleep(0)
    assert forgotten.stopped and runtime._producer is None  # publishing waits for the new producer
    with pytest.raises(KafkaConnectionError):
        await runtime.publish("t", [("k", b"v", {})])
    for task in runtime._tasks:  # the new producer keeps trying 127.0.0.1:9
        task.cancel()
    await asyncio.gather(*runtime._tasks, return_exceptions=True)


async def test_a_record_kafka_refuses_for_itself_is_its_fault():
    runtime = started(Producer(MessageSizeTooLargeError()))
    with pytest.raises(MessageSizeTooLargeError) as raised:
        await runtime.publish("t", [("k", b"v", {})])
    assert not infrastructure_away(raised.value)  # the record is dead-lettered alone
    assert runtime._producer is not None


async def test_a_publish_kafka_does_not_acknowledge_is_kafka_away(monkeypatch):
    monkeypatch.setattr(shared.consumer_app, "PUBLISH_SECONDS", 0.05)
    with pytest.raises(TimeoutError) as raised:
        await started(Producer("never")).publish("t", [("k", b"v", {})])
    assert infrastructure_away(raised.value)
