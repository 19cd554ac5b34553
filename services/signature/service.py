"""Signature's work apart from HTTP: records from `dossier-events`, verifications, verdict events."""

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import structlog
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo import AsyncMongoClient

from services.signature.documents import Document, documents
from services.signature.settings import SignatureSettings
from services.signature.verify import Verdict, verify
from shared.calendar import WorkingCalendar
from shared.events import EventErrors, parse_event_json
from shared.mongo import Chain
from shared.status import status_id

log = structlog.get_logger()

SOURCE = "urn:dossier-tracker:signature"
TYPE = "dossier.signature_verified"
Publish = Callable[[str, bytes], Awaitable[None]]


def verdict_json(verdict: Verdict, sha256: str) -> dict[str, Any]:
    return {
        "verdict": verdict.verdict, "reasons": list(verdict.reasons), "document_sha256": sha256,
        "signatures": [{"field": c.field, "signer": c.signer, "serial": c.serial, "issuer": c.issuer,
                        "signing_time": c.signing_time.isoformat() if c.signing_time else None,
                        "timestamped": c.timestamped, "revocation_data": c.revocation_data,
                        "algorithm": c.algorithm, "intact": c.intact, "trusted": c.trusted, "verdict": c.verdict,
                        "reasons": list(c.reasons)} for c in verdict.signatures],
    }


class SignatureStore:
    """A dossier's records (its receipt, documents requested, signed and verified) in a chain per
    dossier (shared.mongo.Chain): insert-only, read by key. A record written twice (a redelivered
    batch) is kept once, by its `_id`."""

    def __init__(self, client: AsyncMongoClient, database: str):
        db = client[database]
        self._records = Chain(db["signature_dossiers"], summaries=db["signature_views"])

    async def add(self, records: list[dict[str, Any]]) -> None:
        by_dossier: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_dossier.setdefault(record["code"], []).append(record)
        await asyncio.gather(*(self._records.append(code, {"records": mine}) for code, mine in by_dossier.items()))

    async def of_dossier(self, code: str) -> list[dict[str, Any]]:
        unique: dict[str, dict[str, Any]] = {}
        for entry in await self._records.entries(str(code)):
            for record in entry["records"]:
                unique.setdefault(record["_id"], record)
        return list(unique.values())


class SignatureService:
    def __init__(self, settings: SignatureSettings, store: SignatureStore, calendar: WorkingCalendar, roots: list,
                 publish: Publish, registry: CollectorRegistry):
        self.settings = settings
        self.store = store
        self.calendar = calendar
        self.roots = roots
        self.publish = publish
        self.verdicts = Counter("signature_verdicts", "Documents verified, by verdict", ["verdict"], registry=registry)
        self.seconds = Histogram("signature_verify_duration_seconds", "Time to verify one document",
                                 registry=registry, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.http = httpx.AsyncClient(timeout=settings.signature_fetch_timeout_seconds, follow_redirects=False)

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        now = datetime.now(UTC)
        rows, fetches = [], []
        for record in records:
            try:
                event = parse_event_json(record.value or b"")
            except EventErrors:
                continue  # processing dead-letters what does not decode
            code, data = event.subject, event.data
            base = {"code": code, "recorded_at": now, "time": event.time}
            if event.type == "dossier.received":
                rows.append(base | {"_id": f"{code}||dossier", "kind": "dossier", "document_id": None,
                                    "commune_code": data.commune_code, "sector": data.sector})
            elif event.type == "dossier.signature_requested":
                rows.append(base | {"_id": f"{code}|{data.document_id}|requested", "kind": "requested",
                                    "document_id": data.document_id, "signer": data.signer})
            elif event.type == "dossier.signed":
                rows.append(base | {"_id": f"{code}|{data.document_id}|signed", "kind": "signed",
                                    "document_id": data.document_id, "sha256": data.document_sha256,
                                    "url": str(data.document_url) if data.document_url else None})
                if data.document_url:
                    fetches.append((code, data.document_id, str(data.document_url)))
        await self.store.add(rows)
        for code, document_id, url in fetches:
            fetched = await self.fetch(url)
            if isinstance(fetched, bytes):
                await self.check(code, document_id, fetched)
            else:
                await self.record(code, document_id, Verdict("invalid", (fetched,)), "")

    async def fetch(self, url: str) -> bytes | str:
        """The document's bytes, or why they could not be had (size-limited, http/https only)."""
        if not url.startswith(("http://", "https://")):
            return f"document_url {url} is not http or https"
        limit = self.settings.signature_max_bytes
        try:
            async with self.http.stream("GET", url) as answer:
                if answer.status_code != 200:
                    return f"document_url answered {answer.status_code}"
                body = bytearray()
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        return f"document larger than {limit} bytes"
                return bytes(body)
        except httpx.HTTPError as exc:
            return f"document_url unreachable: {exc}"

    async def check(self, code: str, document_id: str, pdf: bytes) -> dict[str, Any]:
        """Verify a document's bytes against the signed event's hash and the trust roots; record, announce."""
        sha = hashlib.sha256(pdf).hexdigest()
        records = await self.store.of_dossier(code)
        signed = next((r for r in records if r["kind"] == "signed" and r["document_id"] == document_id), None)
        if signed and signed["sha256"] != sha:
            verdict = Verdict("invalid", (f"SHA-256 {sha} differs from the signed event's {signed['sha256']}",))
        else:
            with self.seconds.time():
                verdict = await asyncio.to_thread(verify, pdf, self.roots)
        return await self.record(code, document_id, verdict, sha, records)

    async def record(self, code: str, document_id: str, verdict: Verdict, sha: str,
                     records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Record a verdict and announce it; `records` are the dossier's, if already read."""
        records = await self.store.of_dossier(code) if records is None else records
        result = verdict_json(verdict, sha)
        now = datetime.now(UTC)
        await self.store.add([{"_id": f"{code}|{document_id}|verified|{sha}", "code": code, "kind": "verified",
                               "document_id": document_id, "recorded_at": now, "time": now, "verdict": result}])
        await self.store.of_dossier(code)  # a verdict ends a document's records: summarised for the lookup
        self.verdicts.labels(verdict.verdict).inc()
        dossier = next((r for r in records if r["kind"] == "dossier"), {})
        event = {
            "specversion": "1.0", "id": status_id(code, document_id, sha, verdict.verdict), "source": SOURCE,
            "type": TYPE, "subject": code, "time": now.isoformat(), "datacontenttype": "application/json",
            "data": {"dossier_code": code, "commune_code": dossier.get("commune_code"), "sector": dossier.get("sector"),
                     "document_id": document_id, **result},
        }
        await self.publish(code, orjson.dumps(event))
        log.info("document verified", dossier=code, document=document_id, verdict=verdict.verdict)
        return result

    async def documents(self, code: str) -> list[Document]:
        return documents([r for r in await self.store.of_dossier(code) if r["kind"] != "dossier"], self.calendar)
