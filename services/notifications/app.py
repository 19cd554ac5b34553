"""Notifications' wiring: the `dossier-status` subscriber, the sender, delivery reports, the message lookup."""

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Header, HTTPException
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.notifications.providers import dlr_token, provider
from services.notifications.service import Notifier
from services.notifications.settings import NotificationsSettings
from services.notifications.store import MessageStore, status
from services.notifications.templates import Templates
from shared.auth import ApiKeys
from shared.calendar import WorkingCalendar
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
    notifier = Notifier(settings, MessageStore(mongo, settings.mongo_database), gateway, templates, calendar, registry)
    broker = KafkaBroker(settings.kafka_bootstrap_servers, client_id="notifications",
                         logger=logging.getLogger("notifications.kafka"), log_level=logging.DEBUG)
    subscriber = broker.subscriber(
        settings.topic_status,
        group_id=settings.notifications_group_id,
        batch=True,
        max_records=500,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,  # committed once the batch's messages are written
    )

    @subscriber
    async def on_status(message: KafkaMessage) -> None:
        try:
            await notifier.handle(message.raw_message)
        except PyMongoError as exc:
            log.warning("database unavailable, the batch will be retried", error=str(exc))
            await asyncio.sleep(1)
            raise

    async def every(seconds: float, what: str, work: Callable[[], Awaitable[Any]], wait_first: bool = False) -> None:
        if wait_first:
            await asyncio.sleep(seconds)
        while True:
            try:
                await work()
            except PyMongoError as exc:
                log.warning(f"{what} failed, will retry", error=str(exc))
            await asyncio.sleep(seconds)

    async def start() -> None:
        while not notifier.loaded:
            try:
                log.info("messages to send loaded", pending=await notifier.load())
            except PyMongoError as exc:
                log.warning("mongodb not reachable, retrying", error=str(exc))
                await asyncio.sleep(1)
        tasks.append(asyncio.create_task(
            every(settings.notifications_send_interval_seconds, "sending", notifier.send_due)))
        tasks.append(asyncio.create_task(
            every(settings.notifications_reload_interval_seconds, "reload", notifier.load, wait_first=True)))
        while True:
            try:
                await broker.start()
                log.info("consuming", topic=settings.topic_status, group=settings.notifications_group_id)
                return
            except (KafkaError, OSError) as exc:
                log.warning("kafka not reachable, retrying", error=str(exc))
                with contextlib.suppress(Exception):
                    await broker.stop()
                await asyncio.sleep(1)

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
        if not hmac.compare_digest(token, dlr_token(settings.notifications_dlr_secret, id)):
            raise HTTPException(403, "bad token")
        return {"moved": await notifier.report(id, type)}

    @app.post("/v1/dlr/http", summary="Delivery report from the HTTP JSON provider", responses={403: {}, 422: {}})
    async def http_delivery_report(token: str, report: dict[str, Any]) -> dict[str, bool]:
        if not hmac.compare_digest(token, dlr_token(settings.notifications_dlr_secret, "http")):
            raise HTTPException(403, "bad token")
        message_id = report.get(settings.notifications_http_dlr_id_field)
        status = settings.notifications_http_status_map.get(str(report.get(settings.notifications_http_dlr_status_field)))
        if not message_id or status is None:
            raise HTTPException(422, "the report names no message or an unknown status")
        return {"moved": await notifier.reached(str(message_id), status)}

    @app.get("/v1/messages", summary="A dossier's messages, phone masked", responses={401: {}})
    async def messages(dossier: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        if keys.identify(authorization) is None:
            raise HTTPException(401, "a valid Bearer key is required", headers={"WWW-Authenticate": "Bearer"})
        return {"dossier": dossier, "messages": [message_view(*m) for m in await notifier.store.of_dossier(dossier)]}

    async def not_ready() -> str | None:
        if not notifier.loaded:
            return "loading the messages to send"
        try:
            await mongo.admin.command("ping")
        except PyMongoError:
            return "mongodb unreachable"
        return None if subscriber.consumer is not None else "not consuming yet"

    add_operational_routes(app, registry, not_ready, needs="Kafka and MongoDB")
    return app
