"""Processing's wiring: the `dossier-events` subscriber, the dossier lookup (CONTRACT §6), health, metrics."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, HTTPException
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.processing.history import Outgoing
from services.processing.processor import Processor, ProcessingMetrics
from services.processing.settings import ProcessingSettings
from services.processing.store import DossierStore
from shared.calendar import WorkingCalendar
from shared.dossier import Dossier, fold
from shared.kafka import CLOUDEVENTS_CONTENT_TYPE
from shared.http import add_operational_routes
from shared.privacy import mask_phone

log = structlog.get_logger()


def dossier_view(dossier: Dossier, now: datetime, calendar: WorkingCalendar) -> dict[str, Any]:
    """One dossier as CONTRACT §6 shows it: phone masked."""
    applicant = dossier.applicant
    return {
        "dossier_code": dossier.code,
        "commune_code": dossier.commune_code,
        "sector": dossier.sector,
        "state": dossier.state,
        "received_at": dossier.received_at.isoformat(),
        "due_at": dossier.due_at.isoformat() if dossier.due_at else None,
        "ended_at": dossier.ended_at.isoformat() if dossier.ended_at else None,
        "timeliness": dossier.timeliness,
        "open_state": dossier.open_state(now, calendar),
        "applicant": {"name": applicant.name, "phone": mask_phone(applicant.phone) if applicant.phone else None},
        "history": [{"id": s.id, "type": s.type, "time": s.time.isoformat()} for s in dossier.history],
    }


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    calendar = WorkingCalendar.load(settings.calendar)
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    store = DossierStore(mongo, settings.mongo_database, cache_size=settings.processing_cache_dossiers)
    registry = CollectorRegistry()
    metrics = ProcessingMetrics(registry)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id="processing",
        # Through the service's own log format; per-message lines stay at debug level.
        logger=logging.getLogger("processing.kafka"),
        log_level=logging.DEBUG,
    )

    async def publish(outgoing: list[Outgoing]) -> None:
        sent = []
        for record in outgoing:
            topic = settings.topic_status if record.kind == "status" else settings.topic_dlq
            headers = {"content-type": CLOUDEVENTS_CONTENT_TYPE}
            if record.reason:
                headers["dlq-reason"] = record.reason
            sent.append(
                await broker.publish(record.value, topic, key=record.key.encode(), headers=headers, no_confirm=True)
            )
        await asyncio.gather(*sent)

    processor = Processor(settings, store, calendar, publish, metrics)
    subscriber = broker.subscriber(
        settings.topic_events,
        group_id=settings.processing_group_id,
        batch=True,
        max_records=settings.processing_max_batch,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,  # committed after the handler returns; rewound if it fails
    )

    @subscriber
    async def on_dossier_events(message: KafkaMessage) -> None:
        await processor.handle(message.raw_message)
        metrics.lag.set(await consumer_lag())

    metrics.assigned.set_function(lambda: len(subscriber.consumer.assignment()) if subscriber.consumer else 0)

    async def consumer_lag() -> int:
        consumer = subscriber.consumer
        if consumer is None:
            return 0
        lag = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag += max(0, highwater - await consumer.position(tp))
        return lag

    async def start_broker() -> None:
        while True:
            try:
                await broker.start()
                log.info("consuming", topic=settings.topic_events, group=settings.processing_group_id)
                return
            except (KafkaError, OSError) as exc:
                log.warning("kafka not reachable, retrying", error=str(exc))
                with contextlib.suppress(Exception):
                    await broker.stop()
                await asyncio.sleep(1)

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(settings.processing_sweep_interval_seconds)
            try:
                if given_up := await processor.sweep_waiting():
                    log.warning("dossiers without a receipt dead-lettered", count=given_up)
            except (PyMongoError, KafkaError) as exc:
                log.warning("sweep failed, will retry", error=str(exc))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(start_broker()), asyncio.create_task(sweep_forever())]
        yield
        for task in tasks:
            task.cancel()
        await broker.stop()
        await mongo.close()

    app = FastAPI(
        title="Dossier processing",
        version="1",
        description="One dossier's state, due date and timeliness, folded from its events.",
        lifespan=lifespan,
    )

    @app.get("/v1/dossiers/{dossier_code}", summary="One dossier as of now", responses={404: {}})
    async def get_dossier(dossier_code: str) -> dict[str, Any]:
        stored = await store.read(dossier_code)
        folded = fold(stored.parsed(), calendar) if stored else None
        if folded is None or folded.dossier is None:
            raise HTTPException(404, f"no dossier {dossier_code}")
        return dossier_view(folded.dossier, datetime.now(UTC), calendar)

    async def not_ready() -> str | None:
        try:
            await mongo.admin.command("ping")
        except PyMongoError:
            return "mongodb unreachable"
        return None if subscriber.consumer is not None else "not consuming yet"

    add_operational_routes(app, registry, not_ready, needs="Kafka and MongoDB")

    return app
