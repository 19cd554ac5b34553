"""Processing's wiring: the `dossier-events` subscription, the dossier lookup (docs/contract.md §6), health, metrics."""

from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry

from services.processing import handlers
from services.processing.history import Outgoing
from services.processing.processor import ProcessingMetrics, Processor
from services.processing.settings import ProcessingSettings
from services.processing.store import DossierStore
from shared.calendar import WorkingCalendar
from shared.contracts import DeadLetter, StatusChanged
from shared.dossier import open_state
from shared.events import NOT_A_DOSSIER_CODE, DossierEvent, is_dossier_code
from shared.service import ConsumingService

log = structlog.get_logger()
TITLE = "Dossier processing"
DESCRIPTION = "One dossier's state, due date and timeliness, folded from its events."


def with_open_state(view: dict[str, Any], now: datetime, calendar: WorkingCalendar) -> dict[str, Any]:
    """A stored view (services.processing.history.view) with the dossier's open state at `now`."""
    due = datetime.fromisoformat(view["due_at"]) if view["due_at"] else None
    return {**view, "open_state": open_state(view["state"], due, now, calendar)}


def build(settings: ProcessingSettings) -> tuple[ConsumingService, Processor]:
    runtime = ConsumingService("processing", settings, CollectorRegistry())
    store = DossierStore(runtime.mongo, runtime.database, cache_size=settings.processing_cache_dossiers)
    metrics = ProcessingMetrics(runtime.registry)

    async def publish(outgoing: list[Outgoing]) -> None:
        await runtime.publish(settings.topic_status, [(o.key, o.value, {}) for o in outgoing if o.kind == "status"])
        rejected = [(o.key, o.value, DeadLetter(reason=o.reason or "", error="inapplicable").headers())
                    for o in outgoing if o.kind == "dlq"]
        await runtime.publish(settings.topic_dlq, rejected)

    processor = Processor(settings, store, WorkingCalendar.load(settings.calendar), publish, metrics)
    subscriber = runtime.consume(settings.topic_events, settings.processing_group_id, DossierEvent,
                                 partial(handlers.on_dossier_events, processor=processor),
                                 max_batch=settings.processing_max_batch)
    runtime.publishes(settings.topic_status, StatusChanged, "A dossier's state, due, timeliness or counted facts changed")
    metrics.assigned.set_function(lambda: len(subscriber.consumer.assignment()) if subscriber.consumer else 0)

    async def sweep() -> None:
        if given_up := await processor.sweep_waiting():
            log.warning("dossiers without a receipt dead-lettered", count=given_up)

    runtime.every(settings.processing_sweep_interval_seconds, "sweep", sweep, wait_first=True, start="now")
    return runtime, processor


def asyncapi() -> Any:
    """`faststream docs gen services.processing.app:asyncapi --factory`"""
    return build(ProcessingSettings.model_construct())[0].asyncapi(TITLE, DESCRIPTION)  # defaults, not the environment


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    calendar = WorkingCalendar.load(settings.calendar)
    runtime, processor = build(settings)
    store = processor.store
    app = runtime.app(TITLE, DESCRIPTION)

    @app.get("/v1/dossiers/{dossier_code}", summary="One dossier as of now", responses={400: {}, 404: {}})
    async def get_dossier(dossier_code: str) -> dict[str, Any]:
        if not is_dossier_code(dossier_code):
            raise HTTPException(400, NOT_A_DOSSIER_CODE)
        found = await store.view(dossier_code)
        if found is None:
            raise HTTPException(404, f"no dossier {dossier_code}")
        return with_open_state(found, datetime.now(UTC), calendar)

    return app
