"""The intake HTTP API (docs/contract.md §1): POST /v1/events, health, readiness, metrics, OpenAPI."""

import collections
import time
from functools import partial
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import TypeAdapter
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from shared.auth import ApiKey, ApiKeys, may_send
from services.intake import portal
from services.intake.binary_mode import NO_DATA, binary_event, is_binary
from services.intake.held import HeldDossiers
from services.intake.publisher import EventPublisher, KafkaUnavailable
from services.intake.settings import IntakeSettings
from shared.events import (AnyEvent, EventErrors, FeedbackForwardedEvent, FeedbackReceivedEvent, FieldError,
                           ReceivedEvent, parse_events)
from shared.http import BodyTooLarge, add_operational_routes, read_body
from services.intake.sealing import KeysUnavailable, dossier_keys, sealed_receipts
from shared.personal import DossierKeys
from shared.reloading import Reloading
from shared.units import Units, load_units

log = structlog.get_logger()

SINGLE_CONTENT_TYPES = ("application/cloudevents+json", "application/json")
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
# Binary mode (attributes in ce-* headers) carries JSON data; an SDK leaves Content-Type out when the event
# has no datacontenttype.
BINARY_CONTENT_TYPES = ("application/json", "")
NEITHER_MODE = ("not a CloudEvent: neither structured mode (specversion, id, source, type, … in the JSON body, "
                f"as {SINGLE_CONTENT_TYPES[0]}) nor binary mode (the attributes in ce-specversion, ce-id, "
                "ce-source, ce-type, … headers, the data as the body)")


class Rejection(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Rejection:
    return Rejection(status, {"error": message}, headers)


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "intake_requests", "POST /v1/events answers by HTTP status", ["status"], registry=registry
        )
        self.latency = Histogram(
            "intake_request_duration_seconds",
            "Time to answer POST /v1/events",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.events = Counter(
            "intake_events", "Events by type and outcome", ["type", "outcome"], registry=registry
        )
        self.kafka_available = Gauge(
            "intake_kafka_available", "1 while Kafka confirms publishes, 0 after a failure", registry=registry
        )


async def _read_body(request: Request, limit: int) -> bytes:
    try:
        return await read_body(request, limit)
    except BodyTooLarge as exc:
        raise _error(413, exc.detail) from None


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)  # also rejects invalid UTF-8 and nesting deeper than 1024
    except orjson.JSONDecodeError as exc:
        raise _error(400, f"malformed JSON: {exc}") from None


def _decode(body: bytes, batch: bool, max_events: int) -> list[Any]:
    decoded = _loads(body)
    if not batch:
        if not isinstance(decoded, dict):
            raise _error(400, f"expected one CloudEvent object; send a batch as {BATCH_CONTENT_TYPE}")
        return [decoded]
    if not isinstance(decoded, list):
        raise _error(400, "expected a JSON array of CloudEvents")
    if len(decoded) > max_events:
        raise _error(413, f"a batch holds at most {max_events} events, got {len(decoded)}")
    return decoded


def _invalid(errors: list[FieldError]) -> Rejection:
    return Rejection(422, {"errors": [e.model_dump() for e in errors]})


def _objects(headers: list[tuple[str, str]], content_type: str, binary: bool, body: bytes,
             max_events: int) -> list[Any]:
    """The events of a request as JSON objects, whichever content mode it came in (HTTP binding §3): a
    binary-mode event becomes the object its structured form would be."""
    if binary:
        try:
            return [binary_event(headers, content_type, _loads(body) if body else NO_DATA)]
        except EventErrors as exc:
            raise _invalid(exc.errors) from None
    objects = _decode(body, content_type == BATCH_CONTENT_TYPE, max_events)
    if content_type != BATCH_CONTENT_TYPE and "specversion" not in objects[0]:
        raise _invalid([FieldError(index=0, field="specversion", message=NEITHER_MODE)])
    return objects


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether a decoded JSON value nests objects and arrays more than `levels` deep (a container is the
    first level; a scalar is none), looked at level by level and no further than `levels` + 1."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(levels):
        if not level:
            return False
        level = [child for container in level
                 for child in (container.values() if isinstance(container, dict) else container)
                 if isinstance(child, dict | list)]
    return bool(level)


def _check_depth(objects: list[Any], max_depth: int) -> None:
    """422 for an event nesting deeper than `max_depth` (the event itself is the first level), before
    validation: the consumers' JSON parser stops near 200 levels and orjson's encoder at 254, so what
    intake accepted deeper was dead-lettered by every consumer, or not written at all (docs/security.md).
    Each event is walked once; its fields are looked at one by one only when it is too deep, to name them
    (a walk a field cost 3 µs of the ~40 µs of CPU intake spends an event of bench-intake's batches)."""
    errors = [FieldError(index=index, field=name,
                         message=f"nested deeper than {max_depth} levels of objects and arrays (the event itself "
                                 "is the first)")
              for index, obj in enumerate(objects) if isinstance(obj, dict) and _deeper_than(obj, max_depth)
              for name, value in obj.items() if _deeper_than(value, max_depth - 1)]
    if errors:
        raise _invalid(errors)


def _validate(objects: list[Any]) -> list[AnyEvent]:
    try:
        return parse_events(objects)
    except EventErrors as exc:
        raise _invalid(exc.errors) from None


def _refused(key: ApiKey, events: list[AnyEvent], units: Units) -> str | None:
    """Why the key may not send these events (403), or None."""
    forbidden = sorted({e.source for e in events if not may_send(key, e.source)})
    if forbidden:
        return f"key {key.name!r} may not send events from {', '.join(forbidden)}"
    elsewhere = sorted({e.data.commune_code for e in events if isinstance(e, ReceivedEvent | FeedbackReceivedEvent)
                        and not key.serves(e.data.commune_code)})
    if elsewhere:
        return f"key {key.name!r} may not receive dossiers for communes {', '.join(elsewhere)}"
    return _forward_refused(key, [e for e in events if isinstance(e, FeedbackForwardedEvent)], units)


def _forward_refused(key: ApiKey, forwards: list[FeedbackForwardedEvent], units: Units) -> str | None:
    """A PAKN goes only to a unit of the units file (else it would count for no commune) in a commune the
    key serves (else it would count against a commune another system answers for)."""
    found = {e.data.to_unit: units.find(e.data.to_unit) for e in forwards}
    unknown = sorted(name for name, unit in found.items() if unit is None)
    if unknown:
        return f"unknown unit {', '.join(map(repr, unknown))}: a PAKN is forwarded to a unit of the units file"
    elsewhere = sorted({unit.commune for unit in found.values() if unit and not key.serves(unit.commune)})
    if elsewhere:
        return f"key {key.name!r} may not forward PAKN to communes {', '.join(elsewhere)}"
    return None


def _as_recorded(sent: dict[str, Any], contributed: bool, arrived: str) -> dict[str, Any]:
    """The event as the caller sent it (unknown fields kept), with the extension attributes only intake
    writes (a caller's are replaced or dropped): `intaketime`, the instant it reached intake (how late
    the one-stop-shop system syncs is a QĐ 766 sub-indicator, docs/domain.md §6), and
    `intakecontributor` on a step the key contributes to other systems' dossiers (docs/security.md)."""
    recorded = {name: value for name, value in sent.items() if name not in ("intakecontributor", "intakeinferred")}
    return recorded | {"intaketime": arrived} | ({"intakecontributor": True} if contributed else {})


def _oversized(records: list[tuple[str, bytes]], limit: int) -> str | None:
    """Why a record would be larger than intake's largest (413), or None. Written again, an event can
    outgrow its body (orjson writes `1e15` out in full): such a record is refused, not handed to Kafka."""
    for index, (_key, value) in enumerate(records):
        if len(value) > limit:
            return (f"event {index} takes {len(value)} bytes as written to Kafka (its numbers in full, with "
                    f"intake's attributes), more than {limit}")
    return None


def _openapi_request_body(max_events: int) -> dict[str, Any]:
    schema = TypeAdapter(AnyEvent).json_schema(ref_template="#/components/schemas/{model}")
    return {
        "required": True,
        "content": {
            content_type: {"schema": {"$ref": "#/components/schemas/CloudEvent"}}
            for content_type in SINGLE_CONTENT_TYPES
        }
        | {
            BATCH_CONTENT_TYPE: {
                "schema": {"type": "array", "maxItems": max_events, "items": {"$ref": "#/components/schemas/CloudEvent"}}
            }
        },
        "x-schemas": schema,
    }


_ANSWERS = {
    202: {"description": "Every event is durably in Kafka", "content": {"application/json": {"example": {"accepted": 1}}}},
    400: {"description": "Malformed JSON, or not the shape the content type announces"},
    401: {"description": "No or unknown API key"},
    403: {"description": "An event's source, or a receipt's commune, is not allowed for this key"},
    413: {"description": "Body over 1 MiB, batch over 1,000 events, or an event larger than that once written "
                          "for Kafka"},
    415: {"description": "Content type is not a CloudEvents JSON type (nor application/json in binary mode)"},
    422: {
        "description": "Invalid events, nested too deep (32 levels by default), a binary-mode header missing or "
                       "malformed, or neither mode; nothing was published",
        "content": {
            "application/json": {
                "example": {"errors": [{"index": 0, "field": "data.channel", "message": "Input should be ..."}]}
            }
        },
    },
    503: {"description": "Kafka, or MongoDB (the dossiers' keys), cannot take the events now; retry (retries are "
                          "harmless)"},
}


class Intake:
    """What `POST /v1/events` does: a key, a body in one of the three modes, validation, scope, then
    Kafka (acks=all) before the answer."""

    def __init__(self, settings: IntakeSettings, publisher: EventPublisher, metrics: IntakeMetrics,
                 personal: DossierKeys):
        self.settings, self.publisher, self.metrics, self.personal = settings, publisher, metrics, personal
        self.keys = ApiKeys.load(settings.intake_api_keys, settings.intake_api_keys_file)
        self.units = Reloading(settings.intake_dvcqg_units_file, load_units)  # where a PAKN may be forwarded

    async def accept(self, request: Request) -> int:
        key = self.keys.identify(request.headers.get("authorization"))
        if key is None:
            raise _error(401, "missing or unknown API key", {"WWW-Authenticate": "Bearer"})
        events, objects = await self._parsed(request)
        if refusal := _refused(key, events, self.units.current()):
            self._count(events, "rejected")
            raise _error(403, refusal)
        records = await self.records(key, events, objects)
        if too_large := _oversized(records, self.settings.max_record_bytes):
            self._count(events, "rejected")
            raise _error(413, too_large)
        await self._publish(records, len(events))
        self._count(events, "accepted")
        if len(events) == 1:
            log.info("event accepted", key=key.name, event_id=events[0].id, dossier=events[0].subject)
        else:
            log.info("events accepted", key=key.name, events=len(events))
        return len(events)

    async def records(self, key: ApiKey, events: list[AnyEvent], objects: list[Any]) -> list[tuple[str, bytes]]:
        """The events as intake writes them to Kafka: receipts' applicants sealed, intake's attributes."""
        arrived = self.settings.clock().isoformat()
        try:
            sealed = await sealed_receipts(self.personal, objects)
        except KeysUnavailable as exc:
            log.warning("the dossiers' keys are unreachable, answering 503", error=str(exc), events=len(events))
            raise _error(503, "MongoDB (the dossiers' keys) is unavailable; retry later", {"Retry-After": "5"}) from None
        return [(event.subject, orjson.dumps(_as_recorded(obj, event.type in key.contributes, arrived)))
                for event, obj in zip(events, sealed, strict=True)]

    async def _parsed(self, request: Request) -> tuple[list[AnyEvent], list[Any]]:
        """The request's events, validated, with the JSON objects they came as."""
        content_type = _content_type(request)
        # A CloudEvents media type says structured or batched; otherwise ce-* headers say binary (§3).
        binary = (not content_type.startswith("application/cloudevents")) and is_binary(request.headers.keys())
        if binary and content_type not in BINARY_CONTENT_TYPES:
            raise _error(415, "binary mode (ce-* headers) takes the data as application/json")
        if not binary and content_type not in (*SINGLE_CONTENT_TYPES, BATCH_CONTENT_TYPE):
            raise _error(415, f"use {SINGLE_CONTENT_TYPES[0]} or {BATCH_CONTENT_TYPE}, or binary mode: "
                              "ce-* headers with application/json data")
        body = await _read_body(request, self.settings.intake_max_body_bytes)
        objects: list[Any] = []
        try:
            objects = _objects(request.headers.items(), content_type, binary, body,
                               self.settings.intake_max_batch_events)
            _check_depth(objects, self.settings.intake_max_depth)
            return _validate(objects), objects
        except Rejection as rejection:
            if rejection.status == 422:
                self.metrics.events.labels("invalid", "rejected").inc(len(objects) or 1)
            raise

    async def _publish(self, records: list[tuple[str, bytes]], events: int) -> None:
        try:
            await self.publisher.publish(records)
        except KafkaUnavailable as exc:
            self.metrics.kafka_available.set(0)
            log.warning("kafka did not confirm, answering 503", error=str(exc), events=events)
            raise _error(503, "Kafka is unavailable; retry later", {"Retry-After": "5"}) from None
        self.metrics.kafka_available.set(1)

    def _count(self, events: list[AnyEvent], outcome: str) -> None:
        for type_, count in collections.Counter(event.type for event in events).items():
            self.metrics.events.labels(type_, outcome).inc(count)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    publisher = EventPublisher(settings)
    registry = CollectorRegistry()
    metrics = IntakeMetrics(registry)
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    personal = dossier_keys(mongo[settings.mongo_database], settings.personal_index_secret.get_secret_value())
    intake = Intake(settings, publisher, metrics, personal)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        yield
        await publisher.stop()
        await mongo.close()

    app = FastAPI(
        title="Dossier intake",
        version="1",
        description="Receives one-stop-shop dossier events (CloudEvents 1.0) and publishes them to Kafka.",
        lifespan=lifespan,
    )

    @app.post(
        "/v1/events",
        status_code=202,
        summary="Send one CloudEvent or a batch",
        description="Structured mode (the event as JSON), a batch (a JSON array), or binary mode: the "
                    "attributes in ce-* headers (ce-specversion, ce-id, ce-source, ce-type, ce-subject, ce-time, "
                    "extensions), the data as an application/json body (docs/contract.md §1.1).",
        responses=_ANSWERS,
        openapi_extra={"requestBody": _openapi_request_body(settings.intake_max_batch_events)},
    )
    async def post_events(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response: Response = JSONResponse({"accepted": await intake.accept(request)}, status_code=202)
        except Rejection as rejection:
            response = rejection.response()
        metrics.requests.labels(str(response.status_code)).inc()
        metrics.latency.observe(time.perf_counter() - started)
        return response

    async def not_ready() -> str | None:
        if not await publisher.reachable():
            return "kafka unreachable"
        try:
            await mongo.admin.command("ping")  # the dossiers' keys (shared/personal.py)
        except PyMongoError:
            return "mongodb unreachable"
        return None

    add_operational_routes(app, registry, not_ready, needs="Kafka and MongoDB")
    portal.install(app, settings, intake.keys, publisher, registry, personal,
                   HeldDossiers(mongo[settings.mongo_database]), intake.units)  # the national portal's format (docs/dvcqg.md)
    app.openapi = partial(openapi, app)  # type: ignore[method-assign]
    return app


def openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the CloudEvent's schemas as components and the Bearer key."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        body = spec["paths"]["/v1/events"]["post"]["requestBody"]
        event_schema = body.pop("x-schemas")
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        components.update(event_schema.pop("$defs", {}))
        components["CloudEvent"] = event_schema
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        spec["paths"]["/v1/events"]["post"]["security"] = [{"bearer": []}]
        app.openapi_schema = spec
    return app.openapi_schema
