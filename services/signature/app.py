"""Signature's wiring: the `dossier-events` subscription, uploads, the documents list, the agency's seal,
health, metrics."""

import asyncio
import hashlib
from functools import partial
from typing import Any, NoReturn

import structlog
from fastapi import FastAPI, Header, HTTPException, Request, Response
from prometheus_client import CollectorRegistry

from services.signature import handlers
from services.signature.documents import NotSealable, receipt, sealable, trust_roots
from services.signature.seal import Sealer
from services.signature.core import RESUME_EVERY_SECONDS, SignatureCore
from services.signature.settings import SignatureSettings
from services.signature.store import SignatureStore
from shared.auth import ApiKey, ApiKeys, may_send, require_dossier_code, require_key
from shared.calendar import WorkingCalendar
from shared.contracts import SignatureVerified
from shared.events import AnyEvent
from shared.consumer_app import ConsumerApp

log = structlog.get_logger()
TITLE = "Dossier signatures"
DESCRIPTION = "Verifies the digital signatures (ký số) on results and records them."


def build(settings: SignatureSettings) -> tuple[ConsumerApp, SignatureCore]:
    runtime = ConsumerApp("signature", settings, CollectorRegistry())

    async def publish(event: SignatureVerified) -> None:
        await runtime.publish(settings.topic_status, [(event.subject, event.to_bytes(), {})])

    core = SignatureCore(settings, SignatureStore(runtime.mongo, runtime.database),
                         WorkingCalendar.load(settings.calendar), trust_roots(settings.signature_trust_roots),
                         publish, runtime.registry)
    runtime.consume(settings.topic_events, settings.signature_group_id, AnyEvent,
                    partial(handlers.on_dossier_events, core=core), max_batch=500)
    runtime.publishes(settings.topic_status, SignatureVerified, "A result's digital signature, verified")
    runtime.every(RESUME_EVERY_SECONDS, "resuming pending document fetches", core.resume)
    runtime.every(1, "counting pending document fetches", core.count_pending)
    runtime.on_close(core.close)
    return runtime, core


def asyncapi() -> Any:
    """`faststream docs gen services.signature.app:asyncapi --factory`"""
    return build(SignatureSettings.model_construct())[0].asyncapi(TITLE, DESCRIPTION)  # defaults, not the environment


def create_app(settings: SignatureSettings | None = None) -> FastAPI:
    settings = settings or SignatureSettings()
    keys = ApiKeys.load(settings.signature_api_keys, settings.signature_api_keys_file)
    runtime, core = build(settings)
    sealer = Sealer.from_settings(settings)
    if sealer is not None:
        runtime.on_close(lambda: asyncio.to_thread(sealer.close))
    app = runtime.app(TITLE, DESCRIPTION)
    add_document_routes(app, settings, core, keys)
    add_seal_route(app, settings, core, keys, sealer)
    return app


async def read_pdf(request: Request, max_bytes: int) -> bytes:
    """The request's body as a PDF: 415 for another type, 413 past `max_bytes` (read as it comes)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/pdf":
        raise HTTPException(415, "send the document as application/pdf")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"larger than {max_bytes} bytes")
    return bytes(body)


def add_document_routes(app: FastAPI, settings: SignatureSettings, core: SignatureCore, keys: ApiKeys) -> None:
    """A signed result uploaded to verify, and a dossier's documents with their verdicts."""

    @app.post("/v1/dossiers/{code}/documents/{document_id}", summary="Upload a signed result (PDF) to verify",
              responses={401: {}, 413: {}, 415: {}})
    async def upload(code: str, document_id: str, request: Request,
                     authorization: str | None = Header(default=None)) -> dict[str, Any]:
        require_key(keys, authorization)
        require_dossier_code(code)
        return await core.check(code, document_id, await read_pdf(request, settings.signature_max_bytes))

    @app.get("/v1/dossiers/{code}/documents", summary="A dossier's documents with their verdicts", responses={401: {}})
    async def list_documents(code: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        require_key(keys, authorization)
        require_dossier_code(code)
        return {"dossier_code": code, "documents": [d.view() for d in await core.documents(code)]}


def refuse_seal(status: int, why: str, code: str, document_id: str, key: ApiKey) -> NoReturn:
    log.warning("seal refused", dossier=code, document=document_id, key=key.name, why=why)
    raise HTTPException(status, why)


def add_seal_route(app: FastAPI, settings: SignatureSettings, core: SignatureCore, keys: ApiKeys,
                   sealer: Sealer | None) -> None:
    """The agency's seal, on a document registered and verified valid for the dossier, by a seal key."""
    seal_keys = ApiKeys.load(settings.signature_seal_keys, settings.signature_seal_keys_file)

    @app.post("/v1/dossiers/{code}/documents/{document_id}/seal", summary="The agency's PAdES seal on a result",
              description="Seals the document's bytes as registered by the dossier's dossier.signed event and "
                          "verified valid: a seal key only (DOSSIER_SIGNATURE_SEAL_KEYS), within its scope.",
              responses={401: {}, 403: {"description": "not a seal key, or not for this dossier"},
                         409: {"description": "the document is not registered for the dossier or not verified valid"},
                         413: {}, 415: {}, 422: {"description": "not the bytes verified"},
                         501: {"description": "no seal key configured"}},
              response_class=Response)
    async def seal(code: str, document_id: str, request: Request,
                   authorization: str | None = Header(default=None)) -> Response:
        key = seal_keys.identify(authorization)
        if key is None:
            refuse_seal(403, "this key may not ask for the agency's seal", code, document_id,
                        require_key(keys, authorization))
        require_dossier_code(code)
        if sealer is None:
            raise HTTPException(501, "no seal key configured (DOSSIER_SIGNATURE_SEAL_*)")
        records = await core.records(code)
        dossier = receipt(records)
        if dossier and not (may_send(key, dossier.get("source") or "") and key.serves(dossier["commune_code"])):
            refuse_seal(403, "this key may not seal this dossier's documents", code, document_id, key)
        try:
            sha = sealable(records, document_id)
        except NotSealable as exc:
            refuse_seal(409, str(exc), code, document_id, key)
        pdf = await read_pdf(request, settings.signature_max_bytes)
        if (sent := hashlib.sha256(pdf).hexdigest()) != sha:
            refuse_seal(422, f"these bytes (SHA-256 {sent}) are not the document verified valid (SHA-256 {sha})",
                        code, document_id, key)
        try:
            sealed = await sealer.seal_in_turn(pdf)
        except Exception as exc:  # pyHanko refuses what it cannot sign: not a PDF, encrypted, ...
            raise HTTPException(422, f"cannot seal this document: {exc}") from exc
        log.info("result sealed", dossier=code, document=document_id, key=key.name, sha256=sha,
                 sealed_sha256=hashlib.sha256(sealed).hexdigest())
        return Response(sealed, media_type="application/pdf")
