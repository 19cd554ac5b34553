"""Signature's wiring: the `dossier-events` subscriber, uploads, the documents list, health, metrics."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Header, HTTPException, Request, Response
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.signature.documents import trust_roots
from services.signature.seal import Sealer
from services.signature.service import SignatureService, SignatureStore
from services.signature.settings import SignatureSettings
from shared.auth import ApiKeys
from shared.calendar import WorkingCalendar
from shared.http import add_operational_routes
from shared.kafka import CLOUDEVENTS_CONTENT_TYPE

log = structlog.get_logger()


def create_app(settings: SignatureSettings | None = None) -> FastAPI:
    settings = settings or SignatureSettings()
    keys = ApiKeys.load(settings.signature_api_keys, settings.signature_api_keys_file)
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    registry = CollectorRegistry()
    broker = KafkaBroker(settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, client_id="signature",
                         logger=logging.getLogger("signature.kafka"), log_level=logging.DEBUG)

    async def publish(key: str, value: bytes) -> None:
        await broker.publish(value, settings.topic_status, key=key.encode(),
                             headers={"content-type": CLOUDEVENTS_CONTENT_TYPE})

    service = SignatureService(settings, SignatureStore(mongo, settings.mongo_database),
                               WorkingCalendar.load(settings.calendar), trust_roots(settings.signature_trust_roots),
                               publish, registry)
    subscriber = broker.subscriber(settings.topic_events, group_id=settings.signature_group_id, batch=True,
                                   max_records=500, auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR)

    @subscriber
    async def on_events(message: KafkaMessage) -> None:
        try:
            await service.handle(message.raw_message)
        except PyMongoError as exc:
            log.warning("database unavailable, the batch will be retried", error=str(exc))
            await asyncio.sleep(1)
            raise

    async def start_broker() -> None:
        while True:
            try:
                await broker.start()
                return
            except (KafkaError, OSError) as exc:
                log.warning("kafka not reachable, retrying", error=str(exc))
                with contextlib.suppress(Exception):
                    await broker.stop()
                await asyncio.sleep(1)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(start_broker())
        yield
        task.cancel()
        await broker.stop()
        await service.http.aclose()
        if sealer is not None:
            sealer.close()
        await mongo.close()

    app = FastAPI(title="Dossier signatures", version="1", lifespan=lifespan,
                  description="Verifies the digital signatures (ký số) on results and records them.")

    def authenticate(authorization: str | None) -> None:
        if keys.identify(authorization) is None:
            raise HTTPException(401, "a valid Bearer key is required", headers={"WWW-Authenticate": "Bearer"})

    @app.post("/v1/dossiers/{code}/documents/{document_id}", summary="Upload a signed result (PDF) to verify",
              responses={401: {}, 413: {}, 415: {}})
    async def upload(code: str, document_id: str, request: Request,
                     authorization: str | None = Header(default=None)) -> dict[str, Any]:
        authenticate(authorization)
        return await service.check(code, document_id, await read_pdf(request))

    async def read_pdf(request: Request) -> bytes:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/pdf":
            raise HTTPException(415, "send the document as application/pdf")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.signature_max_bytes:
                raise HTTPException(413, f"larger than {settings.signature_max_bytes} bytes")
        return bytes(body)

    sealer = Sealer.from_settings(settings)

    @app.post("/v1/dossiers/{code}/documents/{document_id}/seal", summary="The agency's PAdES seal on a result",
              responses={401: {}, 413: {}, 415: {}, 501: {"description": "no seal key configured"}},
              response_class=Response)
    async def seal(code: str, document_id: str, request: Request,
                   authorization: str | None = Header(default=None)) -> Response:
        authenticate(authorization)
        if sealer is None:
            raise HTTPException(501, "no seal key configured (DOSSIER_SIGNATURE_SEAL_*)")
        pdf = await read_pdf(request)
        try:
            sealed = await asyncio.to_thread(sealer.seal, pdf)
        except Exception as exc:  # pyHanko refuses what it cannot sign: not a PDF, encrypted, ...
            raise HTTPException(422, f"cannot seal this document: {exc}") from exc
        log.info("result sealed", dossier=code, document=document_id)
        return Response(sealed, media_type="application/pdf")

    @app.get("/v1/dossiers/{code}/documents", summary="A dossier's documents with their verdicts", responses={401: {}})
    async def list_documents(code: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        authenticate(authorization)
        return {"dossier_code": code, "documents": [d.view() for d in await service.documents(code)]}

    async def not_ready() -> str | None:
        try:
            await mongo.admin.command("ping")
        except PyMongoError:
            return "mongodb unreachable"
        return None if subscriber.consumer is not None else "not consuming yet"

    add_operational_routes(app, registry, not_ready, needs="Kafka and MongoDB")
    return app
