"""One place builds a Kafka-consuming service: broker, database, subscriptions, dead letters,
lifespan, readiness, consumer lag and publishing (arroyo's decode → apply → commit, in FastStream).

A subscription parses each record once, at the edge, with its contract (shared.contracts), and
hands the batch to a plain async function of the service. The offsets are committed after it
returns. What goes wrong is told apart:
- the database or Kafka away (`infrastructure_away`): the batch is redelivered from its first
  offset, after a pause: nothing is lost while they come back;
- a record that does not parse goes to `<topic>.dlq.<group>` with the reason and its origin in
  headers and its original bytes, is counted and logged, and the partition moves on;
- a record whose handling raises anything else when handled alone (after its batch raised) goes
  there too, unless its partition has had too many such failures (shared/failures.py: a bug or an
  outage failing every record): then the partition stops, uncommitted, says so in /readyz, a metric
  and the log, and is tried again from the same offset every `dlq_retry_seconds` (or after a restart).
Handlers are idempotent (a redelivered record changes nothing), so handling a batch's records
again one by one after the batch failed is harmless.
"""

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from fastapi import FastAPI
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import TypeAdapter, ValidationError
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

from shared.contracts import DeadLetter, dead_letter_topic
from shared.failures import FailureLimit, PartitionHealth
from shared.http import NotReady, add_operational_routes
from shared.kafka import CLOUDEVENTS_CONTENT_TYPE, LOST_IDEMPOTENCE, STRUCTURED_HEADERS, broker_security, client_options, ensure_topic, kafka_away, started_producer, until_reached
from shared.privacy import scrub
from shared.settings import ServiceSettings

log = structlog.get_logger()
T = TypeVar("T")
PUBLISH_SECONDS = 60.0  # a publish Kafka has not acknowledged by then is Kafka away: the batch is tried again


@dataclass(frozen=True)
class Record(Generic[T]):
    """A record of a topic, parsed: its contract's model, and where it came from."""

    value: T
    raw: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: int  # Kafka's, in milliseconds

    @property
    def origin(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


Handle = Callable[[list[Record[Any]]], Awaitable[None]]


class PartitionStopped(Exception):
    """Too many unexpected failures on a partition: its batch is not committed (shared/failures.py)."""


def infrastructure_away(exc: BaseException) -> bool:
    """The database or Kafka cannot be reached now: the batch is tried again. Anything else, even a
    database error (a document refused), is the record's fault."""
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True
    if isinstance(exc, PyMongoError):
        return exc.has_error_label("RetryableWriteError") or exc.timeout
    if isinstance(exc, KafkaError):
        return kafka_away(exc)
    return isinstance(exc, ConnectionError | TimeoutError)


async def until_done(work: Callable[[], Awaitable[Any]], what: str) -> Any:
    """`work`, tried again every second while the database is away."""
    while True:
        try:
            return await work()
        except PyMongoError as exc:
            log.warning(f"{what}: mongodb not reachable, retrying", error=str(exc))
            await asyncio.sleep(1)


def _read(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _said_if_failed(task: asyncio.Task[Any]) -> None:
    """A service's start that failed is logged (its /readyz goes on saying it does not consume)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the service did not start consuming", exc_info=task.exception())


async def once(what: str, work: Callable[[], Awaitable[Any]]) -> None:
    try:
        await work()
    except Exception:  # a bug: said loudly
        log.exception(f"{what} failed")


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


@dataclass
class _Subscription:
    topic: str
    group: str
    subscriber: Any


class ConsumerApp:
    """A service's Kafka and MongoDB wiring. Build it, `consume` its topics, then serve `app()`."""

    def __init__(self, name: str, settings: ServiceSettings, registry: CollectorRegistry, database: bool = True,
                 in_memory: bool = False):
        self.name = name
        self.settings = settings
        self.registry = registry
        # Records reach the handlers undecoded (apply_types=False): they are parsed one by one, so
        # that one bad record is dead-lettered alone; the declared types document the payloads. The
        # service logs in as its Kafka user, which may not create the topics it reads: the admin does.
        # FastStream consumes; `publish` sends with a producer of its own (`started_producer`), except on
        # FastStream's in-memory broker (`in_memory`: TestKafkaBroker, tests/unit), which publishes and confirms.
        self.broker = KafkaBroker(settings.kafka_bootstrap_servers, security=broker_security(settings),
                                  consumer_only=not in_memory, allow_auto_create_topics=False, client_id=name,
                                  apply_types=False, logger=logging.getLogger(f"{name}.kafka"), log_level=logging.DEBUG)
        self._in_memory = in_memory
        self._producer: AIOKafkaProducer | None = None  # what `publish` sends with, once started
        self.mongo: AsyncMongoClient | None = (
            AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000) if database else None)
        self.lag = Gauge(f"{name}_consumer_lag", "Records not yet consumed on the assigned partitions",
                         registry=registry)
        self.dead_letters = Counter("dead_letters", "Records sent to a dead-letter topic, by cause",
                                    ["topic", "group", "error"], registry=registry)
        self.stopped_partitions = Gauge("consumer_partitions_stopped", "Partitions stopped after too many "
                                        "unexpected failures (shared/failures.py)", ["topic", "group"],
                                        registry=registry)
        self._limit = FailureLimit(settings.dlq_max_consecutive, settings.dlq_max_ratio, settings.dlq_window)
        self._health: dict[tuple[str, int], PartitionHealth] = {}
        self.stopped: dict[tuple[str, int], str] = {}  # (topic, partition) -> why it stopped
        self._subscriptions: list[_Subscription] = []
        self._before: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._once: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._loops: list[tuple[float, str, Callable[[], Awaitable[Any]], bool, str]] = []
        self._tasks: list[asyncio.Task] = []
        self._closing: list[Callable[[], Awaitable[Any]]] = []
        self._started = False

    @property
    def database(self) -> str:
        return self.settings.mongo_database

    # -- wiring ------------------------------------------------------------------------------------

    def consume(self, topic: str, group: str, contract: Any, handle: Handle, max_batch: int) -> Any:
        """Batches of `topic` for consumer group `group`, each record parsed as `contract`, given to
        `handle` (a service's handler, its dependencies bound) as a list of Records."""
        adapter: TypeAdapter[Any] = TypeAdapter(contract)
        function = getattr(handle, "func", handle)  # a functools.partial of a module-level handler

        async def handler(records: list[contract]) -> None:  # type: ignore[valid-type]
            raw = records[0] if records and isinstance(records[0], list | tuple) else records
            await self._handle_batch(raw, topic, group, adapter, handle)
            self.lag.set(await self.consumer_lag())

        handler.__name__ = handler.__qualname__ = function.__name__
        subscriber = self.broker.subscriber(
            topic, group_id=group, batch=True, max_records=max_batch, auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR, decoder=_undecoded, title=f"{topic}:{function.__name__}",
            description=" ".join((function.__doc__ or "").split()) or None)
        subscriber(handler)
        self.broker.publisher(dead_letter_topic(topic, group), schema=contract, title=f"{dead_letter_topic(topic, group)}",
                              description=f"What group {group} could not handle: the record as it came, with "
                                          "headers dlq-reason, dlq-origin-topic/-partition/-offset, dlq-group, dlq-error")
        self._subscriptions.append(_Subscription(topic, group, subscriber))
        return subscriber

    def publishes(self, topic: str, contract: Any, description: str) -> None:
        """Documents a topic this service writes, with its contract (the AsyncAPI document)."""
        self.broker.publisher(topic, schema=contract, title=f"{topic}:{self.name}", description=description)

    def before_consuming(self, what: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Awaited, tried again while the database is away, before the subscriptions start."""
        self._before.append((what, work))

    def once_consuming(self, what: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Run once in the background when every subscription consumes (a failure is logged)."""
        self._once.append((what, work))

    def every(self, seconds: float, what: str, work: Callable[[], Awaitable[Any]], wait_first: bool = False,
              start: Literal["now", "loaded", "consuming"] = "consuming") -> None:
        """A loop in the background, started at once (`now`), once the `before_consuming` steps are
        done (`loaded`: it needs what they load, not Kafka), or once consuming."""
        self._loops.append((seconds, what, work, wait_first, start))

    def _start_loops(self, when: str) -> None:
        for seconds, what, work, wait_first, start in self._loops:
            if start == when:
                self._tasks.append(asyncio.create_task(every(seconds, what, work, wait_first)))

    def on_close(self, work: Callable[[], Awaitable[Any]]) -> None:
        self._closing.append(work)

    # -- running -----------------------------------------------------------------------------------

    async def publish(self, topic: str, records: Sequence[tuple[str, bytes, dict[str, str]]]) -> None:
        """(key, value, extra headers) records, CloudEvents structured mode; returns once all are
        acknowledged (acks=all). Kafka away (no producer yet, no answer within PUBLISH_SECONDS, a producer whose
        idempotence the broker lost, replaced meanwhile) raises what `infrastructure_away` tells: the batch is
        tried again, nothing is dead-lettered."""
        if self._in_memory:
            for key, value, headers in records:
                await self.broker.publish(value, topic, key=key.encode(),
                                          headers={"content-type": CLOUDEVENTS_CONTENT_TYPE, **headers})
            return
        producer = self._producer
        if producer is None:
            raise KafkaConnectionError("not connected to Kafka yet")
        sent: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(PUBLISH_SECONDS):
                for key, value, headers in records:
                    sent.append(await producer.send(topic, value, key=key.encode(), headers=[
                        *STRUCTURED_HEADERS, *((n, v.encode()) for n, v in headers.items())]))
                results = await asyncio.gather(*sent, return_exceptions=True)
        finally:
            for future in sent:  # what failed after this stopped waiting is read, not logged as never retrieved
                future.add_done_callback(_read)
        if failures := [r for r in results if isinstance(r, BaseException)]:
            if any(isinstance(f, LOST_IDEMPOTENCE) for f in failures):
                self._renew(producer)
                raise KafkaConnectionError(f"the producer lost its idempotence ({type(failures[0]).__name__}): "
                                           "a new one is started")
            raise failures[0]

    def _renew(self, lost: AIOKafkaProducer) -> None:
        """A new producer instead of `lost` (the broker no longer knows its sequence); publishing waits for it."""
        if self._producer is not lost:
            return  # renewed already
        log.warning("kafka lost the producer's sequence state: starting a new producer")
        self._producer = None
        self._tasks.append(asyncio.create_task(lost.stop()))

        async def renewed() -> None:
            self._producer = await started_producer(self.settings, self.name)
        self._tasks.append(asyncio.create_task(renewed()))

    async def consumer_lag(self) -> int:
        """Records not yet consumed on the partitions this replica has."""
        lag = 0
        for s in self._subscriptions:
            consumer = s.subscriber.consumer
            for tp in consumer.assignment() if consumer else ():
                if (highwater := consumer.highwater(tp)) is not None:
                    lag += max(0, highwater - await consumer.position(tp))
        return lag

    async def _handle_batch(self, raw: Sequence[ConsumerRecord], topic: str, group: str, adapter: TypeAdapter[Any],
                            handle: Handle) -> None:
        records: list[Record[Any]] = []
        originals: list[ConsumerRecord] = []  # each record's, as it came
        poison: list[tuple[ConsumerRecord, str, str]] = []
        for r in raw:
            try:
                value = adapter.validate_json(r.value or b"")
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_input=False)[:3]
                reason = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(record)'}: {e['msg']}" for e in errors)
                poison.append((r, "undecodable", reason))
                continue
            records.append(Record(value, r.value or b"", r.key, r.topic, r.partition, r.offset, r.timestamp))
            originals.append(r)
        try:
            await handle(records)
        except Exception as exc:
            self._raise_if_away(exc)
            log.warning("a batch failed: its records are handled one by one", topic=topic, error=repr(exc))
            for record, original in zip(records, originals, strict=True):
                try:
                    await handle([record])
                except Exception as alone:
                    self._raise_if_away(alone)
                    log.error("a record cannot be handled", origin=record.origin, exc_info=alone)
                    self._failed(topic, group, record.partition)
                    poison.append((original, type(alone).__name__, str(alone)))
                else:
                    self._passed(topic, group, record.partition, 1)
        else:
            for partition, count in collections.Counter(r.partition for r in records).items():
                self._passed(topic, group, partition, count)
        await self._dead_letter(topic, group, poison)

    def _health_of(self, topic: str, partition: int) -> PartitionHealth:
        return self._health.setdefault((topic, partition), PartitionHealth(self._limit))

    def _passed(self, topic: str, group: str, partition: int, count: int) -> None:
        if self.stopped.pop((topic, partition), None) is not None:
            self._health.pop((topic, partition), None)  # it passes again: a fresh start
            self.stopped_partitions.labels(topic, group).set(sum(t == topic for t, _ in self.stopped))
            log.warning("partition resumed: its records pass again", topic=topic, partition=partition)
        self._health_of(topic, partition).passed(count)

    def _failed(self, topic: str, group: str, partition: int) -> None:
        """An unexpected failure; past the limit, the partition stops: nothing of the batch is
        dead-lettered or committed, and it is tried again from the same offset after `dlq_retry_seconds`."""
        health = self._health_of(topic, partition)
        health.failed()
        if (why := health.over()) is None:
            return
        self.stopped[(topic, partition)] = why
        self.stopped_partitions.labels(topic, group).set(sum(t == topic for t, _ in self.stopped))
        log.error("partition stopped: too many unexpected failures, nothing dead-lettered or committed",
                  topic=topic, partition=partition, group=group, why=why, retry_seconds=self.settings.dlq_retry_seconds)
        consumer = next((s.subscriber.consumer for s in self._subscriptions if (s.topic, s.group) == (topic, group)),
                        None)
        if consumer is not None:  # FastStream's in-memory broker has none
            tp = TopicPartition(topic, partition)
            consumer.pause(tp)
            asyncio.get_running_loop().call_later(self.settings.dlq_retry_seconds, self._retry, consumer, tp)
        raise PartitionStopped(f"{topic}/{partition} stopped: {why}")

    @staticmethod
    def _raise_if_away(exc: Exception) -> None:
        if infrastructure_away(exc):
            log.warning("database or kafka unavailable, the batch will be retried", error=str(exc))
            raise exc

    def _retry(self, consumer: Any, tp: TopicPartition) -> None:
        """A stopped partition consumed again from where it stopped; one assigned elsewhere since is
        that replica's to judge."""
        if tp in consumer.assignment():
            consumer.resume(tp)
        else:
            self.stopped.pop((tp.topic, tp.partition), None)
            self._health.pop((tp.topic, tp.partition), None)

    async def _dead_letter(self, topic: str, group: str, poison: list[tuple[ConsumerRecord, str, str]]) -> None:
        if not poison:
            return
        target = dead_letter_topic(topic, group)
        out = []
        for r, error, reason in poison:
            reason = scrub(reason)[:1000]  # no phone number leaves in a header
            letter = DeadLetter(reason=reason, origin_topic=r.topic, origin_partition=r.partition,
                                origin_offset=r.offset, group=group, error=error)
            out.append(((r.key or b"").decode(errors="replace"), r.value or b"", letter.headers()))
            self.dead_letters.labels(topic, group, error).inc()
            log.warning("record sent to the dead-letter topic", dlq=target, origin=f"{r.topic}/{r.partition}/{r.offset}",
                        error=error, reason=reason)
        await self.publish(target, out)

    async def _start(self) -> None:
        for what, work in self._before:
            await until_done(work, what)
        self._start_loops("loaded")
        for s in self._subscriptions:
            topic = dead_letter_topic(s.topic, s.group)
            await until_reached(lambda: ensure_topic(self.settings, topic), f"creating {topic}")
        if not self._in_memory:
            self._producer = await started_producer(self.settings, self.name)  # before anything is consumed
        await until_reached(self._start_broker, "consuming")
        log.info("consuming", topics=[s.topic for s in self._subscriptions])
        self._started = True
        self._start_loops("consuming")
        for what, work in self._once:
            self._tasks.append(asyncio.create_task(once(what, work)))

    async def _start_broker(self) -> None:
        try:
            await self.broker.start()
        except (KafkaError, OSError):  # tried again: what this try opened is closed first
            with contextlib.suppress(Exception):
                await self.broker.stop()
            raise

    def app(self, title: str, description: str, not_ready: Callable[[], str | None] = lambda: None,
            exposition: Callable[[], bytes] | None = None) -> FastAPI:
        """The service's HTTP side: its lifespan runs the wiring above; /readyz says ready once
        `not_ready` has nothing to say, MongoDB answers (if used) and every subscription consumes."""

        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            client_options(self.settings)  # no Kafka user outside the local stack: refuse to start
            starting = asyncio.create_task(self._start())
            starting.add_done_callback(_said_if_failed)
            self._tasks.append(starting)
            self._start_loops("now")
            yield
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.broker.stop()
            if self._producer is not None:  # what Kafka has not taken within the limit is redelivered at the next start
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PUBLISH_SECONDS):
                        await self._producer.stop()
            for close in self._closing:
                await close()
            if self.mongo is not None:
                await self.mongo.close()

        app = FastAPI(title=title, description=description, version="1", lifespan=lifespan)
        add_operational_routes(app, self.registry, self._readiness(not_ready), needs="Kafka and MongoDB",
                               exposition=exposition)
        return app

    def _readiness(self, first: Callable[[], str | None]) -> NotReady:
        async def not_ready() -> str | None:
            if problem := first():
                return problem
            if self.mongo is not None:
                try:
                    await self.mongo.admin.command("ping")
                except PyMongoError:
                    return "mongodb unreachable"
            if not self._started or any(s.subscriber.consumer is None for s in self._subscriptions):
                return "not consuming yet"
            if self.stopped:
                return "stopped: " + "; ".join(f"{t}/{p}: {why}" for (t, p), why in sorted(self.stopped.items()))
            return None

        return not_ready

    def asyncapi(self, title: str, description: str) -> FastStream:
        """What `faststream docs gen` documents: the topics this service consumes and writes, with
        their contracts (the service itself runs under FastAPI, not this object)."""
        return FastStream(self.broker, specification=AsyncAPI(title=title, description=description, version="1",
                                                               schema_version="3.0.0"))


async def _undecoded(message: Any, _original: Any) -> Any:
    """The batch's records as Kafka gave them: parsed one by one by the subscription."""
    return message.raw_message
