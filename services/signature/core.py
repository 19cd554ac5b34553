"""Signature's work apart from HTTP: records from `dossier-events`, verifications, verdict events."""

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.signature.documents import Document, documents
from services.signature.fetch import DocumentFetcher
from services.signature.settings import SignatureSettings
from services.signature.store import Dossier, Free, SignatureStore
from services.signature.verify import Verdict, verify
from shared.calendar import WorkingCalendar
from shared.contracts import SignatureData, SignatureVerified, record_id
from shared.events import DossierEvent
from shared.consumer_app import Record

log = structlog.get_logger()
VERDICT_CACHE_SECONDS = 300  # a verdict depends on time too (expiry, revocation): kept a few minutes only
FETCH_FAILED = "fetch failed"  # all a verdict says: what the target answered would make us its probe
FETCHES_AT_ONCE = 16
RESUME_AFTER_SECONDS = 120  # a fetch that failed is tried again this long after, by any replica
WAITING = {"by": None, "since": 0.0}  # a fetch no replica has started: any replica's next resume takes it
RESUME_EVERY_SECONDS = 10  # a replica at most half full takes up the waiting fetches within this; says it is alive
SILENT_FOR_SECONDS = 60  # a replica silent this long has stopped: the fetches it held are anyone's

Publish = Callable[[SignatureVerified], Awaitable[None]]


def verdict_json(verdict: Verdict, sha256: str) -> dict[str, Any]:
    return {
        "verdict": verdict.verdict, "reasons": list(verdict.reasons), "document_sha256": sha256,
        "signatures": [{"field": c.field, "signer": c.signer, "serial": c.serial, "issuer": c.issuer,
                        "signing_time": c.signing_time.isoformat() if c.signing_time else None,
                        "timestamped": c.timestamped, "revocation_data": c.revocation_data,
                        "algorithm": c.algorithm, "intact": c.intact, "trusted": c.trusted, "verdict": c.verdict,
                        "reasons": list(c.reasons)} for c in verdict.signatures],
    }


def judged(records: list[dict[str, Any]], document_id: str) -> bool:
    """Whether a verdict on this document's bytes is recorded (not only one that could not fetch them)."""
    return any(r["kind"] == "verified" and r["document_id"] == document_id and r["verdict"]["document_sha256"]
               for r in records)


class SignatureCore:
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
        self.fetcher = DocumentFetcher(settings.signature_fetch_allowed_hosts, settings.signature_max_bytes,
                                       settings.signature_fetch_timeout_seconds)
        self._gate = asyncio.Semaphore(FETCHES_AT_ONCE)
        self._fetching: dict[str, asyncio.Task] = {}  # "code|document_id" -> its fetch, in this process
        self._token = uuid.uuid4().hex  # this process, in the fetches it stores (`by`)
        self._waiting = False  # fetches of this process wait in the store (its queue was full)
        self._taking_up: asyncio.Task | None = None
        self.pending = 0  # fetches stored and not done, by any replica: counted (`count_pending`), then kept
        self._stored = 0  # fetches this process stored (`count_pending`)
        self._resuming = asyncio.Lock()
        self._closing = False
        self._refused: set[str] = set()  # fetches held in the store and not started: given back at the next resume
        self._beaten = float("-inf")  # when this replica last said it is alive (`_beat`)
        Gauge("signature_fetches_under_way", "Documents being fetched and verified after their batch was committed",
              registry=registry).set_function(lambda: len(self._fetching))
        Gauge("signature_fetches_pending", "Documents to fetch and verify, under way or waiting (every replica's)",
              registry=registry).set_function(lambda: self.pending)
        self._verdicts: dict[str, tuple[float, Verdict]] = {}  # sha-256 -> (when, verdict), for a few minutes

    async def handle(self, records: list[Record[DossierEvent]]) -> None:
        """Records a dossier's receipt, its documents requested and signed; a signed document given by
        URL is fetched and verified in the background, so that a slow document store never holds the
        batch: the fetch is stored as pending first, and resumed if this process stops."""
        now = self.settings.clock()
        rows, fetches = [], []
        for record in records:
            event = record.value
            code, data = event.subject, event.data
            # `source`: the system that told it; a document is sealed only if the dossier's receiver registered it.
            base = {"code": code, "recorded_at": now, "time": event.time, "source": event.source}
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
                    fetches.append({"_id": f"{code}|{data.document_id}", "code": code,
                                    "document_id": data.document_id, "url": str(data.document_url),
                                    "since": time.time(), "by": self._token})
        # Those beyond this process's queue wait in the store as nobody's: any replica with room takes them up.
        room = max(0, self.settings.signature_fetches_queued - len(self._fetching))
        waiting = [fetch | WAITING for fetch in fetches[room:]]
        await self.store.add(rows)
        if fetches[:room] and time.monotonic() - self._beaten > RESUME_EVERY_SECONDS:
            await self._beat()  # alive before holding any: another replica's resume would take them
        self._pending_by(await self.store.remember_fetches(fetches[:room] + waiting))
        self._waiting = self._waiting or bool(waiting)
        for fetch in fetches[:room]:
            self._fetch_later(fetch)

    async def resume(self) -> bool:
        """Say this replica is alive, and start the pending fetches no replica alive holds: those waiting (beyond
        what a replica holds), those a replica that stopped held, and those that failed two minutes ago
        (`_fetch_and_check` releases them). Those taken are claimed first, where they are still as read, so that
        another replica's resume leaves them (not atomic on FerretDB: two resumes at one instant may both take one,
        fetched twice, announced twice under one id, its verdict perhaps in two links, read as one). One read of the
        pending fetches at a time: the periodic one and a take-up (`_done`) do not both hold them; none with the queue
        over half full (`_done` takes them up once it is half empty: under a steady flow that keeps every replica over
        half full, the new fetches go first, and the waiting ones after it eases). False when one was under way."""
        if self._resuming.locked():
            return False
        async with self._resuming:
            await self._beat()
            await self.store.wait_again(sorted(self._refused))  # held by this replica, and not started
            self._refused.clear()
            now = time.time()
            alive = await self.store.replicas_alive(now - SILENT_FOR_SECONDS) | {self._token: len(self._fetching)}
            if await self.store.pending_count() <= sum(alive.values()):
                return True  # every pending fetch is held by a replica alive: no read of them all
            if not self._has_room():  # the store scans for free ones past those held: read once half empty (`_done`)
                self._waiting = True
                return True
            free = Free(list(alive), now - RESUME_AFTER_SECONDS, now - SILENT_FOR_SECONDS)
            room = self.settings.signature_fetches_queued - len(self._fetching)
            taken: list[dict[str, Any]] = []
            # A batch of what there is room for and one more, which says some are left.
            async for fetch in self.store.pending_fetches(free, max(room, 0) + 1):
                if len(taken) >= room:
                    self._waiting = True  # the rest when the queue empties (`_done`): read only until it is full
                    break
                if fetch["_id"] not in self._fetching:
                    taken.append(fetch)
            won = await self.store.claim_fetches(taken, self._token, free)
            for fetch in taken:
                if fetch["_id"] in won:
                    self._fetch_later(fetch)
        return True

    async def _beat(self) -> None:
        await self.store.beat(self._token, len(self._fetching))
        self._beaten = time.monotonic()

    async def count_pending(self) -> None:
        """The pending fetches counted in the store (other replicas change them too), and those this process stored
        while the count was read (a count read before they were stored said 0 after: found by a test). Its deletions
        meanwhile are left out: the gauge may say a few too many until the next count, never 0 too early."""
        stored = self._stored
        count = await self.store.pending_count()
        self.pending = count + self._stored - stored

    def _pending_by(self, change: int) -> None:
        self.pending = max(0, self.pending + change)
        self._stored += max(0, change)

    def _fetch_later(self, fetch: dict[str, Any]) -> None:
        """Start a fetch this replica holds in the store; one it cannot start now is given back at its next resume
        (`_refused`), else nobody would take it while this replica is alive."""
        if self._closing:  # held until this replica is silent: then anyone's
            return
        if (under_way := self._fetching.get(fetch["_id"])) is not None:
            # A redelivery while its fetch ends: stored as pending again after that fetch forgot it, so looked
            # at once more when it ends (judged by then: forgotten, not fetched again).
            under_way.add_done_callback(lambda _: self._fetch_later(fetch))
            return
        if len(self._fetching) >= self.settings.signature_fetches_queued:
            self._waiting = True  # taken up from the store as the queue empties (`_done`)
            self._refused.add(fetch["_id"])
            return
        task = asyncio.create_task(self._fetch_and_check(fetch["code"], fetch["document_id"], fetch["url"]))
        self._fetching[fetch["_id"]] = task
        task.add_done_callback(lambda _: self._done(fetch["_id"]))

    def _done(self, fetch_id: str) -> None:
        """A fetch ended: with the queue half empty, those waiting in the store are taken up (they waited for the
        next `resume` of a fetch two minutes old before: `make demo` stopped its results' server meanwhile)."""
        self._fetching.pop(fetch_id, None)
        if self._waiting and self._has_room() and self._taking_up is None and not self._closing:
            self._waiting = False
            self._taking_up = asyncio.create_task(self._take_up())

    def _has_room(self) -> bool:
        """Whether the queue is half empty (or less full)."""
        return len(self._fetching) <= self.settings.signature_fetches_queued // 2

    async def _take_up(self) -> None:
        try:
            if not await self.resume():
                self._waiting = True  # the resume under way may have read the pending fetches before the last waited
        except Exception:  # the next `resume` tries again
            self._waiting = True
            log.exception("taking up the waiting document fetches failed")
        finally:
            self._taking_up = None

    async def _fetch_and_check(self, code: str, document_id: str, url: str) -> None:
        try:
            async with self._gate:
                read = await self.store.read(code)
                if not judged(read.records, document_id):  # else delivered again: its bytes were had and judged
                    if (pdf := await self.fetcher.fetch(url)) is not None:
                        await self.check(code, document_id, pdf, read)
                    else:  # nothing to judge: ETSI's SIGNED_DATA_NOT_FOUND (a redelivery fetches it again)
                        await self.record(code, document_id, Verdict("indeterminate", (FETCH_FAILED,)), "", read)
                self._pending_by(-await self.store.forget_fetch(code, document_id))
        except Exception:  # left pending, released: `resume` tries it again in RESUME_AFTER_SECONDS
            log.exception("document fetch and verification failed", dossier=code, document=document_id)
            with contextlib.suppress(Exception):  # else the next start's resume takes it up
                await self.store.release_fetch(code, document_id)

    async def close(self) -> None:
        self._closing = True  # nothing more is started: neither a take-up nor a fetch
        if self._taking_up is not None:
            self._taking_up.cancel()
            await asyncio.gather(self._taking_up, return_exceptions=True)
        held = [*self._fetching, *sorted(self._refused)]
        under_way = list(self._fetching.values())
        for task in under_way:
            task.cancel()
        await asyncio.gather(*under_way, return_exceptions=True)
        with contextlib.suppress(Exception):  # given back, anyone's at once; else anyone's once this replica is silent
            await self.store.wait_again(held)
        await self.fetcher.aclose()

    async def check(self, code: str, document_id: str, pdf: bytes, read: Dossier | None = None) -> dict[str, Any]:
        """Verify a document's bytes against the signed event's hash and the trust roots; record, announce.
        `read`: the dossier, if already read."""
        sha = hashlib.sha256(pdf).hexdigest()
        read = await self.store.read(code) if read is None else read
        signed = next((r for r in read.records if r["kind"] == "signed" and r["document_id"] == document_id), None)
        if signed and signed["sha256"] != sha:
            verdict = Verdict("invalid", (f"SHA-256 {sha} differs from the signed event's {signed['sha256']}",))
        elif (known := self._verdicts.get(sha)) and time.monotonic() - known[0] < VERDICT_CACHE_SECONDS:
            verdict = known[1]  # the same bytes, verified a moment ago (one result fetched for many dossiers)
        else:
            with self.seconds.time():
                verdict = await asyncio.to_thread(verify, pdf, self.roots)
            now = time.monotonic()
            self._verdicts = {k: v for k, v in self._verdicts.items() if now - v[0] < VERDICT_CACHE_SECONDS}
            self._verdicts[sha] = (now, verdict)
        return await self.record(code, document_id, verdict, sha, read)

    async def record(self, code: str, document_id: str, verdict: Verdict, sha: str,
                     read: Dossier | None = None) -> dict[str, Any]:
        """Announce a verdict and record it after the dossier's records as `read` (if already read: a fetch's
        verdict costs one insert, and the summary the lookup reads, rewritten with it, unless a link was appended
        since: then the next reader summarises). Announced first: recorded,
        a document is judged and its fetch not tried again, so a verdict recorded and not announced (Kafka refused it)
        was never announced (a review found it); announced and not recorded, the next try announces it again, with
        the same record id."""
        read = await self.store.read(code) if read is None else read
        records = read.records
        result = verdict_json(verdict, sha)
        now = self.settings.clock()
        dossier = next((r for r in records if r["kind"] == "dossier"), {})
        signed = next((r for r in records if r["kind"] == "signed" and r["document_id"] == document_id), None)
        data = SignatureData(dossier_code=code, commune_code=dossier.get("commune_code"), sector=dossier.get("sector"),
                             document_id=document_id, signed_at=signed["time"] if signed else None, **result)
        await self.publish(SignatureVerified(id=record_id(code, document_id, sha, verdict.verdict), subject=code,
                                             time=now, data=data))
        await self.store.add([{"_id": f"{code}|{document_id}|verified|{sha}", "code": code, "kind": "verified",
                               "document_id": document_id, "recorded_at": now, "time": now, "verdict": result}], read)
        self.verdicts.labels(verdict.verdict).inc()
        log.info("document verified", dossier=code, document=document_id, verdict=verdict.verdict)
        return result

    async def records(self, code: str) -> list[dict[str, Any]]:
        """The dossier's records: its receipt, documents requested, signed and verified."""
        return await self.store.of_dossier(code)

    async def documents(self, code: str) -> list[Document]:
        return documents([r for r in await self.store.of_dossier(code) if r["kind"] != "dossier"], self.calendar)
