"""Signature on the real Kafka and FerretDB: a request, a signature, an upload or a URL → a verdict,
recorded, listed and announced on `dossier-status`."""

import asyncio
import hashlib
import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.fixtures.sample import VN, dossier_code, event
from services.signature.verify import verify
from shared.auth import key_hash
from shared.kafka import client_options
from tests.integration.conftest import ANY_SOURCE_KEY, API_KEYS, RUN_ID, read_topic, service, wait_until
from tests.fixtures.pki import Party, blank_pdf, sign

ROOT = Party("Root CA test", ca=True)
CA = Party("VNPT-CA test", issuer=ROOT, ca=True)
OFFICIAL = Party("Nguyen Van A", issuer=CA)
AGENCY = Party("UBND xa Ba Thuoc", issuer=CA)
AUTH = {"authorization": f"Bearer {ANY_SOURCE_KEY}"}
SEAL_KEY = f"test-seal-{RUN_ID}"  # the agency's result system: only a seal key asks for the seal
SEAL = {"authorization": f"Bearer {SEAL_KEY}"}
START = datetime(2026, 3, 2, 9, 0, tzinfo=VN)


def start_signature(pipeline, tmp_path, port: int | None = None, **env: str):
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "root.pem").write_bytes(ROOT.cert.public_bytes(serialization.Encoding.PEM))
    seal = tmp_path / "seal.p12"  # the agency's seal key, in a PKCS#12 file here (SoftHSM2: test_seal.py)
    seal.write_bytes(pkcs12.serialize_key_and_certificates(
        b"seal", AGENCY.key, AGENCY.cert, [CA.cert], serialization.BestAvailableEncryption(b"secret")))
    return service("signature", pipeline.settings, port, DOSSIER_SIGNATURE_TRUST_ROOTS=str(roots),
                   DOSSIER_SIGNATURE_API_KEYS=json.dumps(API_KEYS), DOSSIER_SIGNATURE_MAX_BYTES="100000",
                   DOSSIER_SIGNATURE_SEAL_KEYS=json.dumps([{"name": "seal", "key_sha256": key_hash(SEAL_KEY),
                                                            "sources": ["*"]}]),
                   DOSSIER_SIGNATURE_SEAL_PKCS12=str(seal), DOSSIER_SIGNATURE_SEAL_PASSWORD="secret",
                   DOSSIER_SIGNATURE_FETCH_ALLOWED_HOSTS=json.dumps(["127.0.0.1"]), **env).start()


def documents(signature, code: str) -> list[dict]:
    answer = httpx.get(f"{signature.url}/v1/dossiers/{code}/documents", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()["documents"]


def links(pipeline, code: str) -> int:
    """The links of a dossier's chain in signature's store (shared.mongo.Chain: `code`, `code#1`, ...)."""
    async def count() -> int:
        client = AsyncMongoClient(pipeline.settings.mongo_url)
        try:
            collection = client[pipeline.settings.mongo_database]["signature_dossiers"]
            n = 0
            while await collection.find_one({"_id": code if n == 0 else f"{code}#{n}"}):
                n += 1
            return n
        finally:
            await client.close()

    return asyncio.run(count())


def caught_up(settings, group: str, topic: str) -> bool:
    """Whether the consumer group has committed every record of the topic."""
    async def check() -> bool:
        admin = AIOKafkaAdminClient(**client_options(settings))
        consumer = AIOKafkaConsumer(**client_options(settings))
        await admin.start()
        await consumer.start()
        try:
            [described] = await admin.describe_topics([topic])
            partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            ends = await consumer.end_offsets(partitions)
            return all(tp in committed and committed[tp].offset >= ends[tp] for tp in partitions)
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(check())


def verified_events(pipeline) -> list[dict]:
    events = [json.loads(r.value) for r in asyncio.run(read_topic(pipeline.settings, pipeline.settings.topic_status))]
    return [e for e in events if e["type"] == "dossier.signature_verified"]


def test_a_requested_signature_uploaded_is_verified_recorded_and_announced(pipeline, tmp_path):
    signature = start_signature(pipeline, tmp_path)
    try:
        pdf = sign(blank_pdf(), OFFICIAL)
        code = dossier_code(START, sequence=201)
        pipeline.post([
            event("dossier.received", code, START),
            event("dossier.signature_requested", code, START + timedelta(hours=2), document_id="KQ-1"),
            event("dossier.signed", code, START + timedelta(hours=26), document_id="KQ-1",
                  document_sha256=hashlib.sha256(pdf).hexdigest()),
        ])
        wait_until(lambda: [d["status"] for d in documents(signature, code)] == ["received"], message="signed event")
        answer = httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1", content=pdf,
                            headers=AUTH | {"content-type": "application/pdf"})
        assert answer.status_code == 200 and answer.json()["verdict"] == "valid", answer.text
        [document] = documents(signature, code)
        assert document["status"] == "valid" and "Nguyen Van A" in document["verdict"]["signatures"][0]["signer"]
        assert document["signature_working_hours"] == 8.0  # Mon 11:00 → Tue 11:00: one working day
        [announced] = wait_until(lambda: verified_events(pipeline), message="the verdict event")
        assert (announced["data"]["verdict"], announced["data"]["commune_code"]) == ("valid", "14923")

        other = sign(blank_pdf("Khác"), OFFICIAL)  # not the document that was signed
        wrong = httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1", content=other,
                           headers=AUTH | {"content-type": "application/pdf"}).json()
        assert wrong["verdict"] == "invalid" and "differs from the signed event" in wrong["reasons"][0]
        assert httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1", content=pdf,
                          headers={"content-type": "application/pdf"}).status_code == 401
        assert httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1", content=b"x",
                          headers=AUTH | {"content-type": "text/plain"}).status_code == 415
        assert httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1", content=b"%PDF-" + b"x" * 200_000,
                          headers=AUTH | {"content-type": "application/pdf"}).status_code == 413

        assert httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1/seal", content=pdf,
                          headers=AUTH | {"content-type": "application/pdf"}).status_code == 403
        assert httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1/seal", content=other,
                          headers=SEAL | {"content-type": "application/pdf"}).status_code == 422
        sealed = httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1/seal", content=pdf,
                            headers=SEAL | {"content-type": "application/pdf"}, timeout=30)
        assert sealed.status_code == 200 and sealed.headers["content-type"] == "application/pdf"
        assert verify(sealed.content, [ROOT.asn1]).verdict == "valid"
    finally:
        signature.stop()


class Documents(BaseHTTPRequestHandler):
    served: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802
        body = Documents.served.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("content-length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args) -> None:
        pass


def test_a_signed_event_with_a_url_is_fetched_and_verified_and_bad_documents_get_reasons(pipeline, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Documents)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signature = start_signature(pipeline, tmp_path)
    try:
        good, tampered = sign(blank_pdf(), OFFICIAL), bytearray(sign(blank_pdf(), OFFICIAL))
        at = tampered.index(b"/MediaBox")
        tampered[at + 12: at + 13] = b"9"
        Documents.served |= {"/good.pdf": good, "/tampered.pdf": bytes(tampered), "/text.pdf": b"hello"}
        base = f"http://127.0.0.1:{server.server_port}"
        code = dossier_code(START, sequence=202)
        signed = [event("dossier.signed", code, START + timedelta(hours=n + 1), document_id=name,
                        document_sha256=hashlib.sha256(body).hexdigest(), document_url=f"{base}/{name}.pdf")
                  for n, (name, body) in enumerate([("good", good), ("tampered", bytes(tampered)), ("text", b"hello"),
                                                    ("gone", good)])]
        pipeline.post([event("dossier.received", code, START)] + signed)
        found = wait_until(lambda: len([d for d in documents(signature, code) if d["verdict"]]) == 4
                           and documents(signature, code), timeout=60, message="four verdicts")
        verdicts = {d["document_id"]: (d["status"], (d["verdict"]["reasons"] or [""])[0]) for d in found}
        assert verdicts["good"] == ("valid", "")
        assert verdicts["tampered"][0] == "invalid" and "modified after signing" in verdicts["tampered"][1]
        assert verdicts["text"] == ("invalid", "not a PDF")
        assert verdicts["gone"] == ("indeterminate", "fetch failed")  # not judged: not had

        # Delivered again: what could not be had is fetched and judged; what was judged stays as it was.
        Documents.served["/gone.pdf"] = Documents.served.pop("/good.pdf")
        pipeline.post(signed)
        again = wait_until(lambda: (d := {d["document_id"]: d["status"] for d in documents(signature, code)})["gone"]
                           == "valid" and d, timeout=60, message="the document fetched again")
        assert again == {"good": "valid", "tampered": "invalid", "text": "invalid", "gone": "valid"}

        # Told a third time, every document judged: nothing is fetched and the dossier's chain does not grow.
        before = links(pipeline, code)
        pipeline.post([event("dossier.received", code, START)] + signed)
        wait_until(lambda: caught_up(pipeline.settings, "signature", pipeline.settings.topic_events), timeout=60,
                   message="the third telling consumed")
        assert links(pipeline, code) == before
    finally:
        signature.stop()
        server.shutdown()


class SlowDocuments(Documents):
    def do_GET(self) -> None:  # noqa: N802
        time.sleep(0.3)
        super().do_GET()


def fetches_pending(signature) -> float | None:
    for line in httpx.get(f"{signature.url}/metrics").text.splitlines():
        if line.startswith("signature_fetches_pending "):
            return float(line.split()[1])
    return None


def test_fetches_beyond_the_queue_wait_in_the_store_are_counted_and_done_soon(pipeline, tmp_path):
    """Past its queue a fetch waits in the store. The gauge a caller waits on counted only the queued ones, and the
    waiting were taken up two minutes later: `make demo` read 0, stopped its results' server, and 9,959 results
    became 'fetch failed' (found by running it). The gauge counts every pending fetch, and the waiting are taken up
    as the queue empties."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowDocuments)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signature = start_signature(pipeline, tmp_path, DOSSIER_SIGNATURE_FETCHES_QUEUED="2")
    try:
        good = sign(blank_pdf(), OFFICIAL)
        Documents.served["/slow.pdf"] = good
        code = dossier_code(START, sequence=203)
        signed = [event("dossier.signed", code, START + timedelta(hours=1), document_id=f"KQ-{n}",
                        document_sha256=hashlib.sha256(good).hexdigest(),
                        document_url=f"http://127.0.0.1:{server.server_port}/slow.pdf") for n in range(8)]
        pipeline.post([event("dossier.received", code, START)] + signed)
        wait_until(lambda: caught_up(pipeline.settings, "signature", pipeline.settings.topic_events), timeout=60,
                   message="the events consumed")
        wait_until(lambda: fetches_pending(signature) == 0, timeout=30, message="no fetch pending")
        assert {d["document_id"]: d["status"] for d in documents(signature, code)} == {
            f"KQ-{n}": "valid" for n in range(8)}
    finally:
        signature.stop()
        server.shutdown()
