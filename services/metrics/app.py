"""Metrics' wiring: the `dossier-status` subscriber, the clock, /metrics, the report API (CONTRACT §4-§5)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, HTTPException, Query
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry, generate_latest
from pymongo import AsyncMongoClient

from services.metrics.figures import Figures
from services.metrics.service import MetricsService
from services.metrics.settings import MetricsSettings
from services.metrics.store import FiguresStore
from shared.calendar import WorkingCalendar
from shared.communes import commune, communes_of_province
from shared.consumer import (
    batch_subscriber,
    consumer_lag,
    every,
    handle_or_rewind,
    make_broker,
    ready_when_consuming,
    start_broker,
    until_done,
)
from shared.http import add_operational_routes
from shared.kafka import CLOUDEVENTS_CONTENT_TYPE
from shared.report import COMPONENTS, NOT_MEASURED

log = structlog.get_logger()

# `from` is a Python keyword: the query parameters keep CONTRACT §5's names through aliases.
From = Annotated[str | None, Query(alias="from", description="First receipt date, YYYY-MM-DD")]
To = Annotated[str | None, Query(alias="to", description="Last receipt date, YYYY-MM-DD")]


def parse_period(start: str | None, end: str | None, as_of: str | None) -> tuple[date, date, datetime]:
    """The report's query (CONTRACT §5), or 400 saying what is wrong."""
    try:
        first, last = date.fromisoformat(start or ""), date.fromisoformat(end or "")
    except ValueError:
        raise HTTPException(400, "from and to are required dates, YYYY-MM-DD") from None
    if first > last:
        raise HTTPException(400, f"from {first} is after to {last}")
    if as_of is None:
        return first, last, datetime.now(UTC)
    try:
        instant = datetime.fromisoformat(as_of)
    except ValueError:
        raise HTTPException(400, "as_of must be an RFC 3339 instant, e.g. 2025-11-11T17:00:00+07:00") from None
    if instant.tzinfo is None:
        raise HTTPException(400, "as_of needs a UTC offset, e.g. 2025-11-11T17:00:00+07:00")
    return first, last, instant


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    calendar = WorkingCalendar.load(settings.calendar)
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    registry = CollectorRegistry()
    service = MetricsService(settings, Figures(calendar), FiguresStore(mongo, settings.mongo_database), registry)
    broker = make_broker(settings, "metrics")
    subscriber = batch_subscriber(broker, settings.topic_status, settings.metrics_group_id,
                                  settings.metrics_max_batch)

    @subscriber
    async def on_status(message: KafkaMessage) -> None:
        await handle_or_rewind(service.handle(message.raw_message))
        service.metrics.lag.set(await consumer_lag(subscriber))

    async def publish(records: list[tuple[str, bytes]]) -> None:
        sent = [await broker.publish(value, settings.topic_status, key=key.encode(),
                                     headers={"content-type": CLOUDEVENTS_CONTENT_TYPE}, no_confirm=True)
                for key, value in records]
        await asyncio.gather(*sent)

    async def start() -> None:
        await until_done(service.load, "loading the figures")
        await service.refresh_snapshot()
        await start_broker(broker, settings.topic_status, settings.metrics_group_id)
        tasks.append(asyncio.create_task(
            every(settings.metrics_clock_interval_seconds, "clock", lambda: service.move_clock(publish))))
        tasks.append(asyncio.create_task(
            every(settings.metrics_snapshot_interval_seconds, "snapshot", service.refresh_snapshot)))

    tasks: list[asyncio.Task] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks.append(asyncio.create_task(start()))
        yield
        for task in tasks:
            task.cancel()
        await broker.stop()
        await mongo.close()

    app = FastAPI(
        title="Dossier metrics",
        version="1",
        description="On-time, overdue, online, payment, digitization and satisfaction figures (DOMAIN §5-§6).",
        lifespan=lifespan,
    )

    @app.get("/v1/reports/communes/{commune_code}", summary="A commune's indicators for a cohort (CONTRACT §5)",
             responses={400: {}, 404: {}})
    async def commune_report(commune_code: str, start: From = None, end: To = None,
                             as_of: str | None = None) -> dict[str, Any]:
        first, last, instant = parse_period(start, end, as_of)
        if commune(commune_code) is None:
            raise HTTPException(404, f"no commune-level unit {commune_code} in the official list")
        report = service.timed("commune", lambda: service.figures.report(commune_code, first, last, instant))
        return {"commune_code": commune_code, "from": first.isoformat(), "to": last.isoformat(),
                "as_of": instant.isoformat(), **report}

    @app.get("/v1/reports/provinces/{province_code}/scorecard", summary="The QĐ 766 approximation, ranked",
             responses={400: {}, 404: {}})
    async def scorecard(province_code: str, start: From = None, end: To = None,
                        as_of: str | None = None) -> dict[str, Any]:
        first, last, instant = parse_period(start, end, as_of)
        province = communes_of_province(province_code)
        if not province:
            raise HTTPException(404, f"no province {province_code} in the official list")
        ranked = service.timed("scorecard", lambda: service.figures.scorecard(province, first, last, instant))
        return {
            "province_code": province_code, "province_name": province[0].province_name,
            "from": first.isoformat(), "to": last.isoformat(), "as_of": instant.isoformat(),
            "approximation": "QĐ 766/QĐ-TTg, the components dossier events can measure (DOMAIN §6)",
            "components": [{"key": c.key, "name": c.name, "max_points": c.max_points, "rate": c.rate,
                            "full_marks_at": c.full_marks_at} for c in COMPONENTS],
            "not_measured": list(NOT_MEASURED),
            "communes": ranked,
        }

    # Served from memory once loaded: readiness does not ask MongoDB again.
    not_ready = ready_when_consuming(None, subscriber,
                                     lambda: None if service.loaded else "loading the figures from mongodb")
    # The business figures come from the background snapshot; the service's own metrics are live.
    add_operational_routes(app, registry, not_ready, needs="MongoDB loaded and Kafka",
                           exposition=lambda: service.snapshot + generate_latest(registry))
    return app
