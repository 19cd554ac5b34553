"""Notifications' wiring: the `dossier-status` subscription, the sender, delivery reports, the message lookup,
the officers' alerts from Alertmanager."""

from functools import partial
from typing import Annotated, Any

import orjson
import structlog
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry

from services.notifications import handlers
from services.notifications.alerts import MAX_BYTES, OfficerAlerts
from services.notifications.providers import HttpJson, dlr_token_ok, provider
from services.notifications.replies import NEUTRAL, PerNumber, code_in, mo_token_ok, reply
from shared.phones import normalise_phone
from services.notifications.core import Core
from services.notifications.messages import Body, Listed, Move, furthest
from services.notifications.settings import NotificationsSettings
from services.notifications.store import MessageStore
from services.notifications.templates import Templates
from shared.auth import ApiKeys, require_dossier_code, require_key
from shared.calendar import WorkingCalendar
from shared.contracts import StatusRecord
from shared.http import read_body
from shared.personal import DossierKeys
from shared.privacy import mask_phone
from shared.consumer_app import ConsumerApp

log = structlog.get_logger()
TITLE = "Dossier notifications"
DESCRIPTION = "SMS to citizens who opted in when their dossier changes (docs/domain.md §7)."
REPORT_MAX_BYTES = 64 * 1024  # an HTTP provider's delivery report; theirs are a few hundred bytes
REPORT_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}


def json_object(body: bytes) -> dict[str, Any]:
    """A delivery report's body: a JSON object, or 422."""
    try:
        report = orjson.loads(body)
    except orjson.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        raise HTTPException(422, "the report is not a JSON object")
    return report


def message_view(message: Listed, body: Body | None, moves: list[Move]) -> dict[str, Any]:
    """A message as the lookup shows it: phone masked, no number nor text once purged."""
    history = [{"status": message.status, "at": message.created_at.isoformat()}]
    history += [{"status": m.status, "at": m.at.isoformat(), **({"error": m.error} if m.error else {})}
                for m in sorted(moves, key=lambda m: m.at)]
    return {
        "id": message.id,
        "trigger": message.trigger,
        "status": furthest(message.status, moves),
        "to": mask_phone(body.recipient) if body else None,
        "parts": message.parts,
        "text": body.text if body else None,
        "history": history,
    }


def build(settings: NotificationsSettings) -> tuple[ConsumerApp, Core]:
    runtime = ConsumerApp("notifications", settings, CollectorRegistry())
    store = MessageStore(runtime.mongo, runtime.database,
                         number_key=settings.notifications_dlr_secret.get_secret_value())
    templates = Templates.load(settings.notifications_templates, settings.lookup_url,
                               settings.lookup_secret.get_secret_value())
    core = Core.build(settings, store, provider(settings), templates, WorkingCalendar.load(settings.calendar),
                      runtime.registry, settings.clock, DossierKeys(runtime.mongo[runtime.database]))
    runtime.consume(settings.topic_status, settings.notifications_group_id, StatusRecord,
                    partial(handlers.on_status, core=core), max_batch=500)

    async def load() -> None:
        log.info("messages to send loaded", pending=await core.sender.load())

    runtime.before_consuming("loading the messages to send", load)
    # Messages go out while Kafka is away; the purge needs neither what is loaded nor Kafka.
    runtime.every(settings.notifications_send_interval_seconds, "sending", core.sender.send_due, start="loaded")
    runtime.every(settings.notifications_reload_interval_seconds, "reload", core.sender.load, wait_first=True,
                  start="loaded")
    runtime.every(settings.notifications_purge_interval_seconds, "purge", core.purge.run, start="now")
    runtime.on_close(core.provider.close)
    return runtime, core


def asyncapi() -> Any:
    """`faststream docs gen services.notifications.app:asyncapi --factory`"""
    return build(NotificationsSettings.model_construct())[0].asyncapi(TITLE, DESCRIPTION)  # defaults, not the environment


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    keys = ApiKeys.load(settings.notifications_api_keys, settings.notifications_api_keys_file)
    runtime, core = build(settings)
    app = runtime.app(TITLE, DESCRIPTION,
                      not_ready=lambda: None if core.sender.loaded else "loading the messages to send")
    add_delivery_reports(app, settings, core)
    add_citizen_replies(app, settings, core)
    add_officer_alerts(app, OfficerAlerts(settings, core, runtime.registry))
    add_message_lookup(app, keys, core.store)
    return app


def add_delivery_reports(app: FastAPI, settings: NotificationsSettings, core: Core) -> None:
    """The gateways' delivery reports, each on the URL signed for its message."""
    dlr_secret = settings.notifications_dlr_secret.get_secret_value()
    if not dlr_secret:
        log.warning("no DOSSIER_NOTIFICATIONS_DLR_SECRET: every delivery report will be refused")

    def signed(message_id: str, token: str) -> None:
        """The report's URL is the one its message went out with (providers.dlr_url)."""
        if not dlr_token_ok(dlr_secret, message_id, token):
            core.metrics.reports_ignored.labels("signature").inc()
            raise HTTPException(403, "bad token")

    @app.get("/v1/dlr", summary="Delivery report from the SMS gateway (Kannel's dlr-url)", responses={403: {}})
    async def delivery_report(type: int, id: str = "", token: str = "") -> dict[str, bool]:
        signed(id, token)
        return {"moved": await core.reports.from_kannel(id, type)}

    @app.post("/v1/dlr/http", summary="Delivery report from the HTTP JSON provider (the body's {dlr_url})",
              responses={403: {}, 413: {}, 422: {}}, openapi_extra={"requestBody": REPORT_BODY})
    async def http_delivery_report(request: Request, id: str = "", token: str = "") -> dict[str, bool]:
        """The body is read once the URL's signature holds, and only so far (a report is a few hundred bytes)."""
        signed(id, token)
        report = json_object(await read_body(request, REPORT_MAX_BYTES))
        named = report.get(settings.notifications_http_dlr_id_field)
        if named is not None and str(named) != id:
            raise HTTPException(403, "the report is about another message than its URL")
        status = HttpJson.report_status(settings, report.get(settings.notifications_http_dlr_status_field))
        if status is None:
            raise HTTPException(422, "the report names an unknown status")
        return {"moved": await core.reports.reached(id, status)}


def add_citizen_replies(app: FastAPI, settings: NotificationsSettings, core: Core) -> None:
    """The SMS citizens send to the brandname number (MO): where their dossier stands, to the phone
    given at receipt only."""
    replies = PerNumber(settings.notifications_mo_per_hour)
    mo_secret = settings.notifications_mo_secret.get_secret_value()
    if not mo_secret:
        log.warning("no DOSSIER_NOTIFICATIONS_MO_SECRET: every SMS a citizen sends will be refused")
    store = core.store

    @app.get("/v1/mo", summary="An SMS a citizen sent to the brandname number (Kannel's sms-service get-url)",
             response_class=PlainTextResponse, responses={401: {}})
    async def citizen_sms(token: str = "", sender: Annotated[str, Query(alias="from")] = "",
                          text: str = "") -> PlainTextResponse:
        """The reply is the body (Kannel sends it back); an empty body sends nothing. Only the gateway,
        holding the secret, names the sender: the reply limit counts that number, once authenticated."""
        if not mo_token_ok(mo_secret, token):
            raise HTTPException(401, "the gateway's token is required")
        number = normalise_phone(sender[:64])
        if number is None or not replies.allow(store.number_hash(number)):
            return PlainTextResponse("")  # not a phone, or over its replies for the hour
        code = code_in(text)
        standing = await store.citizen(code) if code else None
        if code is None or standing is None or standing.get("phone") != store.number_hash(number):
            log.info("sms lookup answered neutrally", sender=mask_phone(number), code=code)
            return PlainTextResponse(NEUTRAL)
        log.info("sms lookup answered", sender=mask_phone(number), dossier=code)
        return PlainTextResponse(reply(code, standing, core.calendar))


def add_officer_alerts(app: FastAPI, alerts: OfficerAlerts) -> None:
    @app.post("/v1/alerts", summary="Alertmanager's webhook: SMS to the commune's on-duty officers (docs/alerts.md)",
              responses={401: {}, 413: {}, 422: {}})
    async def officers_alert(request: Request, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        """Answers once the messages are stored (they go out as the citizens' do): Alertmanager retries
        an error, and what it sends again is not sent twice."""
        if not alerts.authorized(authorization):
            raise HTTPException(401, "a valid Bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        try:
            return await alerts.receive(await read_body(request, MAX_BYTES))
        except ValueError as exc:
            raise HTTPException(422, f"not a notification of a commune's dossiers at risk: {exc}") from None


def add_message_lookup(app: FastAPI, keys: ApiKeys, store: MessageStore) -> None:
    @app.get("/v1/messages", summary="A dossier's messages, phone masked", responses={400: {}, 401: {}})
    async def messages(dossier: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        require_key(keys, authorization)
        require_dossier_code(dossier)
        return {"dossier": dossier, "messages": [message_view(*m) for m in await store.of_dossier(dossier)]}
