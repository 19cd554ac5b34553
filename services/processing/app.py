"""Processing's wiring: the `dossier-events` subscriber, the dossier lookup (CONTRACT §6), health, metrics."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from services.processing.history import Outgoing
from services.processing.processor import Processor, ProcessingMetrics
from services.processing.settings import ProcessingSettings
from services.processing.store import DossierStore
from shared.calendar import WorkingCalendar
from shared.consumer import (
    batch_subscriber,
    consumer_lag,
    every,
    handle_or_rewind,
    make_broker,
    ready_when_consuming,
    start_broker,
)
from shared.dossier import open_state
from shared.events import NOT_A_DOSSIER_CODE, is_dossier_code
from shared.kafka import CLOUDEVENTS_CONTENT_TYPE
from shared.http import add_operational_routes

log = structlog.get_logger()


def with_open_state(view: dict[str, Any], now: datetime, calendar: WorkingCalendar) -> dict[str, Any]:
    """A stored view (services.processing.history.view) with the dossier's open state at `now`."""
    due = datetime.fromisoformat(view["due_at"]) if view["due_at"] else None
    return {**view, "open_state": open_state(view["state"], due, now, calendar)}


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    calendar = WorkingCalendar.load(settings.calendar)
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    store = DossierStore(mongo, settings.mongo_database, cache_size=settings.processing_cache_dossiers)
    registry = CollectorRegistry()
    metrics = ProcessingMetrics(registry)
    broker = make_broker(settings, "processing")

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
    subscriber = batch_subscriber(broker, settings.topic_events, settings.processing_group_id,
                                  settings.processing_max_batch)

    @subscriber
    async def on_dossier_events(message: KafkaMessage) -> None:
        await handle_or_rewind(processor.handle(message.raw_message))
        metrics.lag.set(await consumer_lag(subscriber))

    metrics.assigned.set_function(lambda: len(subscriber.consumer.assignment()) if subscriber.consumer else 0)

    async def sweep() -> None:
        if given_up := await processor.sweep_waiting():
            log.warning("dossiers without a receipt dead-lettered", count=given_up)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(start_broker(broker, settings.topic_events, settings.processing_group_id)),
            asyncio.create_task(every(settings.processing_sweep_interval_seconds, "sweep", sweep, wait_first=True)),
        ]
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

    @app.get("/v1/dossiers/{dossier_code}", summary="One dossier as of now", responses={400: {}, 404: {}})
    async def get_dossier(dossier_code: str) -> dict[str, Any]:
        if not is_dossier_code(dossier_code):
            raise HTTPException(400, NOT_A_DOSSIER_CODE)
        found = await store.view(dossier_code)
        if found is None:
            raise HTTPException(404, f"no dossier {dossier_code}")
        return with_open_state(found, datetime.now(UTC), calendar)

    add_operational_routes(app, registry, ready_when_consuming(mongo, subscriber), needs="Kafka and MongoDB")

    return app
