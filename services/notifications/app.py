"""Notifications' wiring: the `dossier-status` subscriber, the sender, delivery reports, the message lookup."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Header, HTTPException
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from services.notifications.providers import dlr_token_ok, provider
from services.notifications.service import Notifier
from services.notifications.settings import NotificationsSettings
from services.notifications.store import MessageStore, status
from services.notifications.templates import Templates
from shared.auth import ApiKeys, require_key
from shared.calendar import WorkingCalendar
from shared.events import NOT_A_DOSSIER_CODE, is_dossier_code
from shared.consumer import (
    batch_subscriber,
    every,
    handle_or_rewind,
    make_broker,
    ready_when_consuming,
    start_broker,
    until_done,
)
from shared.http import add_operational_routes
from shared.privacy import mask_phone

log = structlog.get_logger()


def message_view(message: dict[str, Any], body: dict[str, Any] | None, moves: list[dict[str, Any]]) -> dict[str, Any]:
    """A message as the lookup shows it: phone masked, no number nor text once purged."""
    history = [{"status": message["status"], "at": message["created_at"]}] + sorted(moves, key=lambda m: m["at"])
    return {
        "id": message["_id"],
        "trigger": message["trigger"],
        "status": status(message, moves),
        "to": mask_phone(body["recipient"]) if body else None,
        "parts": message.get("parts"),
        "text": body["body"] if body else None,
        "history": [{"status": h["status"], "at": h["at"].isoformat(), **({"error": h["error"]} if h.get("error") else {})}
                    for h in history],
    }


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    calendar = WorkingCalendar.load(settings.calendar)
    templates = Templates.load(settings.notifications_templates)
    keys = ApiKeys.load(settings.notifications_api_keys, settings.notifications_api_keys_file)
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    registry = CollectorRegistry()
    gateway = provider(settings)
    store = MessageStore(mongo, settings.mongo_database, number_key=settings.notifications_dlr_secret)
    notifier = Notifier(settings, store, gateway, templates, calendar, registry)
    broker = make_broker(settings, "notifications")
    subscriber = batch_subscriber(broker, settings.topic_status, settings.notifications_group_id, 500)

    @subscriber
    async def on_status(message: KafkaMessage) -> None:
        await handle_or_rewind(notifier.handle(message.raw_message))

    async def start() -> None:
        log.info("messages to send loaded", pending=await until_done(notifier.load, "loading the messages"))
        tasks.append(asyncio.create_task(
            every(settings.notifications_send_interval_seconds, "sending", notifier.send_due)))
        tasks.append(asyncio.create_task(
            every(settings.notifications_reload_interval_seconds, "reload", notifier.load, wait_first=True)))
        await start_broker(broker, settings.topic_status, settings.notifications_group_id)

    tasks: list[asyncio.Task] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks.append(asyncio.create_task(start()))
        tasks.append(asyncio.create_task(every(settings.notifications_purge_interval_seconds, "purge", notifier.purge)))
        yield
        for task in tasks:
            task.cancel()
        await broker.stop()
        await gateway.close()
        await mongo.close()

    app = FastAPI(title="Dossier notifications", version="1", lifespan=lifespan,
                  description="SMS to citizens who opted in when their dossier changes (DOMAIN §7).")

    @app.get("/v1/dlr", summary="Delivery report from the SMS gateway (Kannel's dlr-url)", responses={403: {}})
    async def delivery_report(id: str, type: int, token: str) -> dict[str, bool]:
        if not dlr_token_ok(settings.notifications_dlr_secret, id, token):
            raise HTTPException(403, "bad token")
        return {"moved": await notifier.report(id, type)}

    @app.post("/v1/dlr/http", summary="Delivery report from the HTTP JSON provider", responses={403: {}, 422: {}})
    async def http_delivery_report(token: str, report: dict[str, Any]) -> dict[str, bool]:
        if not dlr_token_ok(settings.notifications_dlr_secret, "http", token):
            raise HTTPException(403, "bad token")
        message_id = report.get(settings.notifications_http_dlr_id_field)
        status = settings.notifications_http_status_map.get(str(report.get(settings.notifications_http_dlr_status_field)))
        if not message_id or status is None:
            raise HTTPException(422, "the report names no message or an unknown status")
        return {"moved": await notifier.reached(str(message_id), status)}

    @app.get("/v1/messages", summary="A dossier's messages, phone masked", responses={400: {}, 401: {}})
    async def messages(dossier: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        require_key(keys, authorization)
        if not is_dossier_code(dossier):
            raise HTTPException(400, NOT_A_DOSSIER_CODE)
        return {"dossier": dossier, "messages": [message_view(*m) for m in await notifier.store.of_dossier(dossier)]}

    not_ready = ready_when_consuming(mongo, subscriber,
                                     lambda: None if notifier.loaded else "loading the messages to send")
    add_operational_routes(app, registry, not_ready, needs="Kafka and MongoDB")
    return app
