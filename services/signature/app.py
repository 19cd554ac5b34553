"""Signature's wiring: the `dossier-events` subscriber, uploads, the documents list, health, metrics."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Header, HTTPException, Request, Response
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from services.signature.documents import trust_roots
from services.signature.seal import Sealer
from services.signature.service import SignatureService, SignatureStore
from services.signature.settings import SignatureSettings
from shared.auth import ApiKeys, require_key
from shared.calendar import WorkingCalendar
from shared.consumer import (
    batch_subscriber,
    handle_or_rewind,
    make_broker,
    ready_when_consuming,
    start_broker,
)
from shared.events import NOT_A_DOSSIER_CODE, is_dossier_code
from shared.http import add_operational_routes
from shared.kafka import CLOUDEVENTS_CONTENT_TYPE

log = structlog.get_logger()


def create_app(settings: SignatureSettings | None = None) -> FastAPI:
    settings = settings or SignatureSettings()
    keys = ApiKeys.load(settings.signature_api_keys, settings.signature_api_keys_file)
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    registry = CollectorRegistry()
    broker = make_broker(settings, "signature")

    async def publish(key: str, value: bytes) -> None:
        await broker.publish(value, settings.topic_status, key=key.encode(),
                             headers={"content-type": CLOUDEVENTS_CONTENT_TYPE})

    service = SignatureService(settings, SignatureStore(mongo, settings.mongo_database),
                               WorkingCalendar.load(settings.calendar), trust_roots(settings.signature_trust_roots),
                               publish, registry)
    subscriber = batch_subscriber(broker, settings.topic_events, settings.signature_group_id, 500)

    @subscriber
    async def on_events(message: KafkaMessage) -> None:
        await handle_or_rewind(service.handle(message.raw_message))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def start() -> None:
            await start_broker(broker, settings.topic_events, settings.signature_group_id)

        task = asyncio.create_task(start())
        yield
        task.cancel()
        await broker.stop()
        await service.http.aclose()
        if sealer is not None:
            sealer.close()
        await mongo.close()

    app = FastAPI(title="Dossier signatures", version="1", lifespan=lifespan,
                  description="Verifies the digital signatures (ký số) on results and records them.")

    @app.post("/v1/dossiers/{code}/documents/{document_id}", summary="Upload a signed result (PDF) to verify",
              responses={401: {}, 413: {}, 415: {}})
    async def upload(code: str, document_id: str, request: Request,
                     authorization: str | None = Header(default=None)) -> dict[str, Any]:
        require_key(keys, authorization)
        valid_code(code)
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

    def valid_code(code: str) -> None:
        if not is_dossier_code(code):
            raise HTTPException(400, NOT_A_DOSSIER_CODE)

    @app.post("/v1/dossiers/{code}/documents/{document_id}/seal", summary="The agency's PAdES seal on a result",
              responses={401: {}, 413: {}, 415: {}, 501: {"description": "no seal key configured"}},
              response_class=Response)
    async def seal(code: str, document_id: str, request: Request,
                   authorization: str | None = Header(default=None)) -> Response:
        require_key(keys, authorization)
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
        require_key(keys, authorization)
        valid_code(code)
        return {"dossier_code": code, "documents": [d.view() for d in await service.documents(code)]}

    add_operational_routes(app, registry, ready_when_consuming(mongo, subscriber), needs="Kafka and MongoDB")
    return app
