"""Finding 3 (docs/security.md): the signature service's fetch of a `document_url` (SSRF).

In process, against small servers on 127.0.0.1. A guard on `socket.connect` refuses, and records, any
connection to another address: a refusal is shown to come before connecting, and no test sends
traffic off this machine. Names are answered by a stub of `socket.getaddrinfo`.
"""

import asyncio
import hashlib
import ipaddress
import json
import socket
import ssl
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter
from structlog.testing import capture_logs

from services.signature import core as signature_core
from services.signature.fetch import Refused, permitted
from services.signature.core import SignatureCore
from services.signature.settings import SignatureSettings
from shared.calendar import WorkingCalendar
from shared.events import DossierEvent
from shared.consumer_app import Record
from tests.fixtures.sample import dossier_code, event
from tests.fixtures.signature_store import MemoryStore

CODE = dossier_code(sequence=303)
SECRET = "SECRET-MARKER-7f3a"  # what a target answers: never in a verdict, a record or a log
EVENTS = TypeAdapter(DossierEvent)
Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Signature:
    """A SignatureCore on a MemoryStore, and what it announced."""

    def __init__(self, store: MemoryStore | None = None, **config: Any):
        settings = SignatureSettings(**{"environment": "local", "signature_max_bytes": 100_000,
                                        "signature_fetch_timeout_seconds": 2} | config)
        self.store = store or MemoryStore()
        self.published: list[Any] = []

        async def publish(verdict: Any) -> None:
            self.published.append(verdict)

        self.core = SignatureCore(settings, self.store, WorkingCalendar.load(), [], publish, CollectorRegistry())

    async def verdict(self, count: int = 1, timeout: float = 8) -> Any:
        """The first verdict announced (its data), once `count` are."""
        async with asyncio.timeout(timeout):
            while len(self.published) < count:
                await asyncio.sleep(0.02)
        return self.published[0].data

    def verified(self) -> list[dict[str, Any]]:
        return [r for r in self.store.rows.values() if r["kind"] == "verified"]


@pytest.fixture
async def signatures() -> AsyncIterator[Callable[..., Signature]]:
    made: list[Signature] = []

    def make(**config: Any) -> Signature:
        made.append(Signature(**config))
        return made[-1]

    yield make
    for s in made:
        await s.core.close()


def signed(url: str, body: bytes = b"", document_id: str = "KQ-1") -> Record[Any]:
    e = event("dossier.signed", CODE, document_id=document_id, document_sha256=hashlib.sha256(body).hexdigest(),
              document_url=url)
    return Record(EVENTS.validate_python(e), orjson.dumps(e), CODE.encode(), "dossier-events", 0, 0, 0)


def stall(replica: Signature, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replica's fetches never end (until it closes)."""
    async def stalled(url: str) -> bytes:
        await asyncio.Event().wait()
        return b""

    monkeypatch.setattr(replica.core.fetcher, "fetch", stalled)


def sharing(*replicas: Signature) -> None:
    """Replicas on the first's store, as on one database."""
    for replica in replicas[1:]:
        replica.store = replica.core.store = replicas[0].store


@pytest.fixture
def connects(monkeypatch) -> list[Any]:
    """Connection attempts to anything but 127.0.0.1: refused, and listed here."""
    attempts: list[Any] = []
    real = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] == "127.0.0.1":
            return real(sock, address)
        attempts.append(address)
        raise ConnectionRefusedError(f"test guard: no connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: guarded(sock, address) or 0)
    return attempts


class Names:
    """Made-up names: each lookup of a name takes the next of its answers (the last one repeats)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []


@pytest.fixture
def names(monkeypatch) -> Names:
    made_up, real = Names(), socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in made_up.answers:
            return real(host, port, *args, **kwargs)
        made_up.lookups.append(name)
        queue = made_up.answers[name]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        port = int(port or 0)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return made_up


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []  # each request's head, as received

    def header(self, name: str, n: int = 0) -> str | None:
        for line in self.requests[n].split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name:
                return value.strip()
        return None


@asynccontextmanager
async def server(answer: Answer, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[str, Server]]:
    """An HTTP(S) server on 127.0.0.1 that reads a request's head and lets `answer` write; its
    connections are cut when the block ends."""
    seen, tasks = Server(), set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())
        seen.connections += 1
        try:
            seen.requests.append((await reader.readuntil(b"\r\n\r\n")).decode("latin-1"))
            await answer(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
    try:
        yield f"http{'s' if tls else ''}://127.0.0.1:{listening.sockets[0].getsockname()[1]}", seen
    finally:
        listening.close()
        for task in tasks:
            task.cancel()


def answering(status: str, body: bytes, *headers: str) -> Answer:
    async def answer(writer: asyncio.StreamWriter) -> None:
        head = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", "connection: close", *headers]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    return answer


def raw(data: bytes) -> Answer:
    """An answer written as it is, HTTP or not."""
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(data)

    return answer


# -- where a fetch may go ---------------------------------------------------------------------------

async def test_loopback_is_refused_unless_allow_listed(signatures, connects):
    async with server(answering("200 OK", b"hello")) as (base, seen):
        plain = signatures()
        await plain.core.handle([signed(f"{base}/kq.pdf", b"hello")])
        assert (await plain.verdict()).reasons == ["fetch failed"]
        assert seen.connections == 0

        listed = signatures(signature_fetch_allowed_hosts=["127.0.0.1"])
        await listed.core.handle([signed(f"{base}/kq.pdf", b"hello")])
        judged = await listed.verdict()
        assert (judged.verdict, judged.reasons) == ("invalid", ["not a PDF"])  # had, and judged
        assert seen.connections == 1


@pytest.mark.parametrize("address", [
    "169.254.169.254", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "0.0.0.0", "127.0.0.2",
    "100.64.0.1", "[::1]", "[fc00::1]", "[fd12:3456::1]", "[fe80::1]", "[::]", "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]", "[::ffff:10.0.0.1]", "[2002:a00:1::1]",
])
async def test_private_loopback_and_link_local_addresses_are_refused_before_connecting(signatures, connects, address):
    signature = signatures()
    await signature.core.handle([signed(f"http://{address}/latest/meta-data/")])
    assert (await signature.verdict()).reasons == ["fetch failed"]
    assert connects == []


@pytest.mark.parametrize("answers", [["10.0.0.7"], ["93.184.216.34", "169.254.169.254"], ["fd00::7"]])
async def test_a_name_resolving_to_a_private_address_is_refused_before_connecting(signatures, connects, names,
                                                                                  answers):
    names.answers["docs.example.test"] = [answers]
    signature = signatures()
    await signature.core.handle([signed("http://docs.example.test/kq.pdf")])
    assert (await signature.verdict()).reasons == ["fetch failed"]
    assert connects == []  # not even to the public address of a name that also answers a private one


async def test_the_connection_goes_to_the_address_checked(signatures, connects, names):
    """DNS rebinding: the name answers a public address when checked, then loopback; the connection
    goes to the address checked (here refused by the guard: nothing leaves this machine)."""
    async with server(answering("200 OK", b"hello")) as (base, seen):
        port = int(base.rsplit(":", 1)[1])
        names.answers["rebind.example.test"] = [["93.184.216.34"], ["127.0.0.1"]]
        signature = signatures()
        await signature.core.handle([signed(f"http://rebind.example.test:{port}/kq.pdf")])
        assert (await signature.verdict()).reasons == ["fetch failed"]
        assert connects == [("93.184.216.34", port)] and seen.connections == 0
        assert names.lookups == ["rebind.example.test"]


async def test_an_allow_listed_name_is_fetched_from_its_address_with_its_host_header(signatures, connects, names):
    async with server(answering("200 OK", b"hello")) as (base, seen):
        port = int(base.rsplit(":", 1)[1])
        names.answers["docs.internal.test"] = [["127.0.0.1"], ["10.9.9.9"]]
        signature = signatures(signature_fetch_allowed_hosts=["Docs.Internal.Test."])
        await signature.core.handle([signed(f"http://docs.internal.test:{port}/kq.pdf", b"hello")])
        assert (await signature.verdict()).reasons == ["not a PDF"]
        assert seen.header("host") == f"docs.internal.test:{port}"
        assert connects == [] and names.lookups == ["docs.internal.test"]


class Tls:
    """A CA (its PEM file) and a server's context with a certificate for docs.internal.test only; the
    TLS names the server was asked for (SNI)."""

    def __init__(self, folder: Any) -> None:
        now = datetime.now(UTC)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

        def certificate(subject: str, public: Any, ca: bool) -> x509.Certificate:
            builder = (x509.CertificateBuilder()
                       .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                       .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
                       .public_key(public).serial_number(x509.random_serial_number())
                       .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
                       .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            if not ca:
                builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
            return builder.sign(ca_key, hashes.SHA256())

        pem = serialization.Encoding.PEM
        self.ca_file, chain, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
        self.ca_file.write_bytes(certificate("Test CA", ca_key.public_key(), ca=True).public_bytes(pem))
        chain.write_bytes(certificate("docs.internal.test", key.public_key(), ca=False).public_bytes(pem))
        key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(chain, key_file)
        self.asked: list[str | None] = []
        self.context.sni_callback = lambda _socket, name, _context: self.asked.append(name)


async def test_https_is_pinned_keeping_its_name_for_sni_and_the_certificate(signatures, names, tmp_path, monkeypatch):
    tls = Tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))  # trusted as a deployment's own CA would be
    async with server(answering("200 OK", b"hello"), tls.context) as (base, seen):
        port = int(base.rsplit(":", 1)[1])
        names.answers |= {"docs.internal.test": [["127.0.0.1"]], "other.internal.test": [["127.0.0.1"]]}
        signature = signatures(signature_fetch_allowed_hosts=["docs.internal.test", "other.internal.test"])
        await signature.core.handle([signed(f"https://docs.internal.test:{port}/kq.pdf", b"hello", "KQ-1"),
                                        signed(f"https://other.internal.test:{port}/kq.pdf", b"hello", "KQ-2")])
        await signature.verdict(count=2)
        reasons = {v.data.document_id: v.data.reasons for v in signature.published}
        assert reasons == {"KQ-1": ["not a PDF"], "KQ-2": ["fetch failed"]}  # the certificate is for docs. only
        assert sorted(tls.asked) == ["docs.internal.test", "other.internal.test"]
        assert seen.requests and seen.header("host") == f"docs.internal.test:{port}"


@pytest.mark.parametrize(("address", "allowed"), [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("::ffff:8.8.8.8", True),
    ("127.0.0.1", False), ("169.254.169.254", False), ("10.0.0.1", False), ("172.16.5.5", False),
    ("192.168.0.1", False), ("0.0.0.0", False), ("255.255.255.255", False), ("224.0.0.1", False),
    ("100.64.0.1", False), ("::1", False), ("::", False), ("fc00::1", False), ("fe80::1%eth0", False),
    ("::ffff:127.0.0.1", False), ("::ffff:192.168.0.1", False), ("2002:7f00:1::", False), ("64:ff9b::a00:1", False),
])
def test_the_checker_allows_public_addresses_only(address, allowed):
    if allowed:
        assert permitted("docs.example", [address], frozenset()) == [ipaddress.ip_address(address)]
    else:
        with pytest.raises(Refused):
            permitted("docs.example", [address], frozenset())
        assert permitted("docs.example", [address], frozenset({"docs.example"})) == [ipaddress.ip_address(address)]


def test_the_checker_refuses_a_name_with_any_private_answer_or_none():
    with pytest.raises(Refused):
        permitted("docs.example", ["8.8.8.8", "10.0.0.1"], frozenset())
    with pytest.raises(Refused):
        permitted("docs.example", [], frozenset({"docs.example"}))


def test_the_allow_list_is_a_json_list_in_the_environment(monkeypatch):
    monkeypatch.setenv("DOSSIER_SIGNATURE_FETCH_ALLOWED_HOSTS", '["127.0.0.1", "tailieu.motcua.local"]')
    assert SignatureSettings(environment="local").signature_fetch_allowed_hosts == ["127.0.0.1", "tailieu.motcua.local"]
    assert SignatureSettings.model_fields["signature_fetch_allowed_hosts"].default == []  # public addresses only


# -- how long and how much --------------------------------------------------------------------------

def dripping(where: str) -> Answer:
    """A byte every half second: of the body after the headers, or of the headers themselves."""
    async def answer(writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"
        if where == "body":
            writer.write(head)
            head = b"x" * 1000
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.5)

    return answer


@pytest.mark.parametrize("where", ["body", "headers"])
async def test_a_drip_fed_answer_ends_at_the_deadline(signatures, where):
    async with server(dripping(where)) as (base, _):
        signature = signatures(signature_fetch_allowed_hosts=["127.0.0.1"])  # deadline 2 s
        started = time.monotonic()
        async with asyncio.timeout(8):
            await signature.core.handle([signed(f"{base}/kq.pdf")])
            assert (await signature.verdict()).reasons == ["fetch failed"]
        assert time.monotonic() - started < 2 + 1.5


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip'd to about 64 KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(packer.compress(bytes(1 << 20)) for _ in range(64)) + packer.flush()


async def test_a_gzip_bomb_is_refused_and_never_inflated(signatures, gzip_bomb):
    async with server(answering("200 OK", gzip_bomb, "content-encoding: gzip")) as (base, seen):
        signature = signatures(signature_fetch_allowed_hosts=["127.0.0.1"], signature_max_bytes=1 << 20)
        tracemalloc.start()
        try:
            await signature.core.handle([signed(f"{base}/kq.pdf")])
            assert (await signature.verdict()).reasons == ["fetch failed"]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20, f"{peak:,} bytes allocated: the body was inflated"
        assert seen.header("accept-encoding") == "identity"


async def test_a_body_over_the_limit_is_refused_by_its_raw_size(signatures):
    chunked = b"".join(b"%x\r\n%s\r\n" % (10_000, b"x" * 10_000) for _ in range(30)) + b"0\r\n\r\n"
    declared = answering("200 OK", b"x" * 100_001)
    undeclared = raw(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked)
    async with server(declared) as (base, _), server(undeclared) as (other, _):
        for url in (f"{base}/kq.pdf", f"{other}/kq.pdf"):
            signature = signatures(signature_fetch_allowed_hosts=["127.0.0.1"])  # 100,000 bytes
            await signature.core.handle([signed(url)])
            assert (await signature.verdict()).reasons == ["fetch failed"]


# -- what a verdict says --------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    answering(f"500 {SECRET}", f"<h1>{SECRET}</h1>".encode()),
    answering("404 Not Found", f"no such key {SECRET}".encode()),
    answering("403 Forbidden", b"", f"x-debug: {SECRET}"),
    raw(f"HTTP/1.1 {SECRET}\r\n\r\n".encode()),  # a parser's error would quote it
    raw(f"{SECRET} SSH-2.0-OpenSSH_9.6\r\n".encode()),  # not HTTP at all: a port scan's answer
], ids=["500", "404", "403-header", "bad-status-line", "not-http"])
async def test_a_verdict_never_carries_what_the_target_answered(signatures, answer):
    async with server(answer) as (base, _):
        signature = signatures(signature_fetch_allowed_hosts=["127.0.0.1"])
        with capture_logs() as logs:
            await signature.core.handle([signed(f"{base}/kq.pdf")])
            found = await signature.verdict()
        assert (found.verdict, found.reasons) == ("indeterminate", ["fetch failed"])
        told = signature.published[0].to_bytes().decode() + json.dumps(signature.verified(), default=str)
        assert SECRET not in told
        assert SECRET not in json.dumps(logs, default=str)
        assert any(e["event"] == "document fetch failed" for e in logs)  # the detail goes to the log


async def test_redirects_are_not_followed(signatures):
    async with server(answering("200 OK", b"hello")) as (inner, behind):
        async with server(answering("302 Found", b"", f"location: {inner}/secret")) as (outer, _):
            signature = signatures(signature_fetch_allowed_hosts=["127.0.0.1"])
            await signature.core.handle([signed(f"{outer}/kq.pdf")])
            assert (await signature.verdict()).reasons == ["fetch failed"]
        assert behind.connections == 0


# -- fetches and the consumer's batch ---------------------------------------------------------------

def slowly(seconds: float, body: bytes) -> Answer:
    async def answer(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)
        await answering("200 OK", body)(writer)

    return answer


async def test_a_batch_is_handled_without_waiting_for_its_fetches(signatures):
    async with server(slowly(1.5, b"hello")) as (base, _):
        signature = signatures(signature_fetch_allowed_hosts=["127.0.0.1"])
        started = time.monotonic()
        async with asyncio.timeout(8):
            await signature.core.handle([signed(f"{base}/kq.pdf", b"hello")])
        assert time.monotonic() - started < 0.5
        assert [r["kind"] for r in signature.store.rows.values()] == ["signed"]  # stored before it returned
        assert (await signature.verdict()).reasons == ["not a PDF"]


async def test_a_redelivered_event_is_fetched_and_recorded_once(signatures):
    async with server(slowly(0.5, b"hello")) as (base, seen):
        signature = signatures(signature_fetch_allowed_hosts=["127.0.0.1"])
        batch = [signed(f"{base}/kq.pdf", b"hello")]
        async with asyncio.timeout(8):
            await asyncio.gather(signature.core.handle(batch), signature.core.handle(batch))
            await signature.verdict()
            await signature.core.handle(batch)  # judged already: not fetched again
            await asyncio.sleep(0.8)
        assert seen.connections == 1
        assert len(signature.published) == 1 and len(signature.verified()) == 1
        assert signature.store.pending == {}


async def test_a_fetch_cut_by_a_restart_is_resumed(signatures, monkeypatch):
    async with server(slowly(0.5, b"hello")) as (base, _):
        before = signatures(signature_fetch_allowed_hosts=["127.0.0.1"])
        await before.core.handle([signed(f"{base}/kq.pdf", b"hello")])
        await before.core.close()  # stopped before the document came
        assert before.published == [] and len(before.store.pending) == 1

        monkeypatch.setattr("services.signature.core.RESUME_AFTER_SECONDS", 0)
        after = signatures(store=before.store, signature_fetch_allowed_hosts=["127.0.0.1"])
        await after.core.resume()
        assert (await after.verdict()).reasons == ["not a PDF"]
        assert after.store.pending == {}


async def test_a_fetch_that_fails_is_released_not_taken_up_again_at_once(signatures, monkeypatch):
    """Fetches beyond the queue are taken up as it empties (those stored with this process's token). One that failed
    kept that token: every take-up started it again at once, a loop a hostile document could drive (found by a
    review). A failed fetch is released: taken up by age only, as before."""
    signature = signatures(signature_fetches_queued=1)
    attempts: list[str] = []

    async def failing(code: str, document_id: str, pdf: bytes, records: Any = None) -> Any:
        attempts.append(document_id)
        raise RuntimeError("the parser broke")

    async def fetched(url: str) -> bytes:
        return b"%PDF-1.7 whatever"

    monkeypatch.setattr(signature.core, "check", failing)
    monkeypatch.setattr(signature.core.fetcher, "fetch", fetched)
    await signature.core.handle([signed("http://docs.example.test/kq.pdf", document_id=f"KQ-{n}") for n in range(4)])
    async with asyncio.timeout(8):  # each failure's traceback is logged: a few tenths of a second on a busy machine
        while len(attempts) < 4:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert sorted(attempts) == ["KQ-0", "KQ-1", "KQ-2", "KQ-3"]  # each once: the waiting taken up, none again
    assert all(fetch["by"] is None for fetch in signature.store.pending.values())


async def test_a_verdict_kafka_refused_is_announced_when_the_fetch_is_tried_again(signatures, monkeypatch):
    """The verdict was recorded before it was announced: Kafka refusing the announcement left the fetch pending, and
    its next try found the document judged and forgot it, announced never (found by a review). Announced first,
    recorded then: a try that fails before the record fetches and announces again (the same record id)."""
    signature = signatures()
    refusals = [KafkaConnectionError("the broker is down")]

    async def publish(verdict: Any) -> None:
        if refusals:
            raise refusals.pop()
        signature.published.append(verdict)

    async def fetched(url: str) -> bytes:
        return b"hello"  # not a PDF: an invalid verdict, quickly

    monkeypatch.setattr(signature.core, "publish", publish)
    monkeypatch.setattr(signature.core.fetcher, "fetch", fetched)
    monkeypatch.setattr(signature_core, "RESUME_AFTER_SECONDS", 0)
    await signature.core.handle([signed("http://docs.example.test/kq.pdf", b"hello")])
    await asyncio.sleep(0.2)
    assert signature.published == [] and signature.store.pending  # refused: still to do
    await signature.core.resume()
    data = await signature.verdict()
    assert (data.document_id, data.verdict) == ("KQ-1", "invalid") and not signature.store.pending


async def test_a_resume_reads_the_pending_fetches_only_until_its_queue_is_full(signatures, monkeypatch):
    """A resume read every pending fetch into memory at once, and a take-up beside it read them again: a flood of
    signed events with URLs held twice its size (found by a review). It reads them as they come and stops once its
    queue is full."""
    signature = signatures(signature_fetches_queued=2)
    stall(signature, monkeypatch)
    await signature.core.handle([signed("http://docs.example.test/kq.pdf", document_id=f"KQ-{n}") for n in range(50)])
    signature.store.fetches_read = 0
    await signature.core.resume()
    assert len(signature.store.pending) == 50 and signature.store.fetches_read <= 3


async def test_a_replica_with_its_queue_over_half_full_reads_no_pending_fetch_at_its_look(signatures, monkeypatch):
    """Each look (every 10 s) of a replica with a little room read the store for a few free fetches: FerretDB scans
    for them past every fetch held (2.4-3 s of its time for ~17,000 pending, while `make demo` ran). The fetches
    waiting are taken up once the queue is half empty (`_done`), as when it is full."""
    signature = signatures(signature_fetches_queued=10)
    stalled = asyncio.Event()

    async def fetch(url: str) -> bytes:
        if "quick" not in url:
            await stalled.wait()
        return b"hello"

    monkeypatch.setattr(signature.core.fetcher, "fetch", fetch)
    await signature.core.handle([signed(f"http://docs.example.test/{'quick' if n < 3 else 'slow'}.pdf",
                                        document_id=f"KQ-{n}") for n in range(12)])
    await signature.verdict(3)
    signature.store.fetches_read = 0
    await signature.core.resume()
    assert signature.store.fetches_read == 0 and len(signature.core._fetching) == 7
    stalled.set()
    await signature.verdict(12)


async def test_a_busy_replicas_waiting_fetches_are_taken_up_by_another_at_once(signatures, monkeypatch):
    """Fetches beyond a replica's queue waited in the store under its name: another replica, idle, took them up only
    two minutes on (RESUME_AFTER_SECONDS, meant for a replica that stopped). They wait as nobody's now: the next
    resume of any replica with room takes them, claimed, so that the busy one does not fetch them again."""
    busy, idle = signatures(signature_fetches_queued=1), signatures()
    sharing(busy, idle)
    stalled, fetched = asyncio.Event(), {"busy": [], "idle": []}

    def fetching(name: str) -> Callable[[str], Awaitable[bytes]]:
        async def fetch(url: str) -> bytes:
            fetched[name].append(url)
            if name == "busy":
                await stalled.wait()
            return b"hello"  # not a PDF: a verdict at once
        return fetch

    monkeypatch.setattr(busy.core.fetcher, "fetch", fetching("busy"))
    monkeypatch.setattr(idle.core.fetcher, "fetch", fetching("idle"))
    await busy.core.handle([signed(f"http://docs.example.test/{n}.pdf", document_id=f"KQ-{n}") for n in range(4)])
    await asyncio.sleep(0.1)
    assert fetched == {"busy": ["http://docs.example.test/0.pdf"], "idle": []}
    await idle.core.resume()
    await idle.verdict(count=3)
    assert sorted(fetched["idle"]) == [f"http://docs.example.test/{n}.pdf" for n in (1, 2, 3)]
    stalled.set()
    await busy.verdict()
    await busy.core.resume()
    await asyncio.sleep(0.1)
    assert fetched["busy"] == ["http://docs.example.test/0.pdf"] and busy.store.pending == {}


async def test_a_fetch_held_long_by_a_replica_alive_is_left_to_it(signatures, monkeypatch):
    """A fetch looked abandoned two minutes after it was claimed, though it still waited in its replica's queue
    behind the 16 under way: another replica fetched it too (found by a review; here scaled down, two minutes
    0.3 s and one fetch at a time). A fetch is another replica's only once its holder has been silent."""
    monkeypatch.setattr(signature_core, "RESUME_AFTER_SECONDS", 0.3)
    busy, idle = signatures(), signatures()
    sharing(busy, idle)
    busy.core._gate = asyncio.Semaphore(1)
    fetched: dict[str, list[str]] = {"busy": [], "idle": []}

    def fetching(name: str, seconds: float) -> Callable[[str], Awaitable[bytes]]:
        async def fetch(url: str) -> bytes:
            fetched[name].append(url)
            await asyncio.sleep(seconds)
            return b"hello"
        return fetch

    monkeypatch.setattr(busy.core.fetcher, "fetch", fetching("busy", 0.3))
    monkeypatch.setattr(idle.core.fetcher, "fetch", fetching("idle", 0))
    await busy.core.handle([signed(f"http://docs.example.test/{n}.pdf", document_id=f"KQ-{n}") for n in range(3)])
    await asyncio.sleep(0.5)
    await idle.core.resume()
    await busy.verdict(count=3)
    assert fetched["idle"] == [] and len(fetched["busy"]) == 3


async def test_a_silent_replicas_fetches_are_anyones(signatures, monkeypatch):
    """A replica that stopped without a word (killed) holds its fetches no more once silent for a while; one that
    stopped in order gives them back at once."""
    monkeypatch.setattr(signature_core, "SILENT_FOR_SECONDS", 0.3)
    killed, stopped, other = signatures(), signatures(), signatures()
    sharing(killed, stopped, other)
    async def fetched(url: str) -> bytes:
        return b"hello"

    for replica in (killed, stopped):
        stall(replica, monkeypatch)
    monkeypatch.setattr(other.core.fetcher, "fetch", fetched)
    await killed.core.handle([signed("http://docs.example.test/a.pdf", document_id="KQ-A")])
    await stopped.core.handle([signed("http://docs.example.test/b.pdf", document_id="KQ-B")])
    await stopped.core.close()
    await other.core.resume()
    assert (await other.verdict()).document_id == "KQ-B"  # given back at its stop
    await asyncio.sleep(0.4)
    await other.core.resume()
    await other.verdict(count=2)
    assert sorted(v.data.document_id for v in other.published) == ["KQ-A", "KQ-B"]  # its holder silent


async def test_a_claim_keeps_the_other_replicas_off(signatures, monkeypatch):
    """Two replicas resuming read the same waiting fetches: the claim only takes those still waiting, and a replica
    starts only those it won (a claim overwrote another's before: found by a review)."""
    busy, idle, third = signatures(signature_fetches_queued=1), signatures(), signatures()
    sharing(busy, idle, third)
    stall, fetched = asyncio.Event(), {"busy": [], "idle": [], "third": []}

    def fetching(name: str) -> Callable[[str], Awaitable[bytes]]:
        async def fetch(url: str) -> bytes:
            fetched[name].append(url)
            await stall.wait()
            return b"hello"
        return fetch

    for name, replica in (("busy", busy), ("idle", idle), ("third", third)):
        monkeypatch.setattr(replica.core.fetcher, "fetch", fetching(name))
    await busy.core.handle([signed(f"http://docs.example.test/{n}.pdf", document_id=f"KQ-{n}") for n in range(4)])
    await asyncio.gather(idle.core.resume(), third.core.resume())
    await asyncio.sleep(0.1)
    assert sorted(fetched["idle"] + fetched["third"]) == [f"http://docs.example.test/{n}.pdf" for n in (1, 2, 3)]
    stall.set()


async def test_a_resume_reads_only_the_fetches_it_may_take(signatures, monkeypatch):
    """Fetches under way at other replicas were all read by each resume, every 10 s (found by a review): none is read
    when the replicas alive hold every pending fetch, and the store answers only the free ones otherwise."""
    busy, idle = signatures(), signatures()
    sharing(busy, idle)
    stall(busy, monkeypatch)
    await busy.core.handle([signed("http://docs.example.test/kq.pdf", document_id=f"KQ-{n}") for n in range(16)])
    busy.store.fetches_read = 0
    await idle.core.resume()
    assert busy.store.fetches_read == 0 and not idle.core._fetching


async def test_a_replica_closing_starts_no_fetch(signatures, monkeypatch):
    """At a stop, the fetches cancelled took up the waiting ones as they ended: fetches started after the close, left
    pending as the loop ended (a test's teardown showed one). They stay pending in the store, for the next start."""
    signature = signatures(signature_fetches_queued=2)
    stall(signature, monkeypatch)
    await signature.core.handle([signed("http://docs.example.test/kq.pdf", document_id=f"KQ-{n}") for n in range(10)])
    await signature.core.close()
    await asyncio.sleep(0.1)
    assert not [t for t in asyncio.all_tasks() if "_fetch_and_check" in repr(t.get_coro())]
    assert len(signature.store.pending) == 10
