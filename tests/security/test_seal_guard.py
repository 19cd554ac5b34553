"""Finding 8 (docs/security.md): the agency's seal signs only what it should.

Only a seal key (`DOSSIER_SIGNATURE_SEAL_KEYS`, apart from the API keys that upload and list) may ask
for the seal, and only for a document its dossier registered (the `dossier.signed` event of the system
that received the dossier, carrying the document's hash) and that was verified `valid`: those bytes,
no others. The seal's log line names the document by its SHA-256.

The service is built by its own `create_app` (the real routes, pyHanko's verification, a PKCS#12 seal)
and driven in-process (httpx's ASGI transport, no lifespan: no Kafka); its MongoDB store is a dict,
and the verdicts it would announce are kept here.
"""

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import TypeAdapter
from structlog.testing import capture_logs

from services.signature import app as signature_app
from services.signature.core import SignatureCore
from services.signature.settings import SignatureSettings
from services.signature.verify import verify
from shared.auth import key_hash
from shared.events import DossierEvent
from shared.consumer_app import Record
from tests.fixtures.pki import Party, blank_pdf, sign
from tests.fixtures.sample import SAMPLE_DATA, SOURCE, dossier_code, event
from tests.fixtures.signature_store import MemoryStore

ROOT = Party("Root CA test", ca=True)
CA = Party("VNPT-CA test", issuer=ROOT, ca=True)
OFFICIAL = Party("Nguyen Van A", issuer=CA)
AGENCY = Party("UBND xa Ba Thuoc", issuer=CA)
STRANGER = Party("Someone", issuer=Party("Unknown CA", ca=True))  # chains to no trusted root
UPLOADER = "upload-key-for-the-seal-tests"  # a one-stop system's key: uploads and lists
SEALER = "seal-key-for-the-seal-tests"  # the agency's result system: may ask for the seal
EVENTS = TypeAdapter(DossierEvent)
APPLICANT = SAMPLE_DATA["dossier.received"]["applicant"]


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def key(name: str, secret: str, **scope: Any) -> dict[str, Any]:
    return {"name": name, "key_sha256": key_hash(secret), "sources": ["*"]} | scope


class Signature:
    """The signature service of `create_app`, its store in memory and its announcements kept."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: Any):
        roots = tmp_path / "roots"
        roots.mkdir()
        (roots / "root.pem").write_bytes(ROOT.cert.public_bytes(serialization.Encoding.PEM))
        seal = tmp_path / "seal.p12"
        seal.write_bytes(pkcs12.serialize_key_and_certificates(
            b"seal", AGENCY.key, AGENCY.cert, [CA.cert], serialization.BestAvailableEncryption(b"secret")))
        self.settings = SignatureSettings(**{
            "environment": "local",
            "kafka_bootstrap_servers": "127.0.0.1:9",  # nothing here reaches Kafka or MongoDB
            "mongo_url": "mongodb://127.0.0.1:9",
            "signature_trust_roots": roots,
            "signature_seal_pkcs12": seal,
            "signature_seal_password": "secret",
            # The agency's result system uploads too: its key is in both lists.
            "signature_api_keys": [key("one-stop", UPLOADER), key("agency", SEALER)],
            "signature_seal_keys": [key("agency-seal", SEALER)],
        } | values)
        self.store = MemoryStore()
        self.announced: list[Any] = []
        built: list[SignatureCore] = []
        announced = self.announced

        class Kept(SignatureCore):
            def __init__(self, settings, store, calendar, roots, publish, registry):  # noqa: ANN001
                async def keep(verdict: Any) -> None:
                    announced.append(verdict)

                super().__init__(settings, store, calendar, roots, keep, registry)
                built.append(self)

        monkeypatch.setattr(signature_app, "SignatureStore", lambda client, database: self.store)
        monkeypatch.setattr(signature_app, "SignatureCore", Kept)
        self.app = signature_app.create_app(self.settings)
        [self.core] = built

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://signature") as c:
            return await c.request(method, path, timeout=30, **kwargs)

    def told(self, *events: dict[str, Any]) -> None:
        """Events of `dossier-events`, as the consumer hands them over."""
        records = [Record(EVENTS.validate_python(e), orjson.dumps(e), e["subject"].encode(), "dossier-events", 0, n, 0)
                   for n, e in enumerate(events)]
        asyncio.run(self.core.handle(records))

    def upload(self, code: str, document_id: str, pdf: bytes) -> dict[str, Any]:
        answer = asyncio.run(self.call("POST", f"/v1/dossiers/{code}/documents/{document_id}", content=pdf,
                                       headers=bearer(UPLOADER) | {"content-type": "application/pdf"}))
        assert answer.status_code == 200, answer.text
        return answer.json()

    def seal(self, code: str, document_id: str, pdf: bytes, secret: str | None = SEALER) -> httpx.Response:
        headers = {"content-type": "application/pdf"} | (bearer(secret) if secret else {})
        return asyncio.run(self.call("POST", f"/v1/dossiers/{code}/documents/{document_id}/seal", content=pdf,
                                     headers=headers))


def received(code: str, source: str = SOURCE) -> dict[str, Any]:
    return event("dossier.received", code) | {"source": source}


def signed(code: str, pdf: bytes, document_id: str = "KQ-1", source: str = SOURCE) -> dict[str, Any]:
    e = event("dossier.signed", code, document_id=document_id, document_sha256=hashlib.sha256(pdf).hexdigest())
    return e | {"source": source}


@pytest.fixture
def signature(monkeypatch, tmp_path) -> Signature:
    return Signature(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def result() -> bytes:
    """A result signed by an official whose CA the service trusts."""
    return sign(blank_pdf(), OFFICIAL)


def registered_and_valid(signature: Signature, pdf: bytes, sequence: int, document_id: str = "KQ-1") -> str:
    """A dossier whose result `pdf` was registered by its owner and verified valid; its code."""
    code = dossier_code(sequence=sequence)
    signature.told(received(code), signed(code, pdf, document_id))
    assert signature.upload(code, document_id, pdf)["verdict"] == "valid"
    return code


def test_only_a_seal_key_may_ask_for_the_seal(signature, result):
    code = registered_and_valid(signature, result, 801)

    refused = signature.seal(code, "KQ-1", result, secret=UPLOADER)  # an upload key, authenticated
    assert refused.status_code == 403, refused.text[:300]
    assert refused.headers["content-type"].startswith("application/json") and "seal" in refused.json()["detail"]
    assert signature.seal(code, "KQ-1", result, secret=None).status_code == 401
    assert signature.seal(code, "KQ-1", result, secret="guessed").status_code == 401
    assert signature.seal(code, "KQ-1", result).status_code == 200


def test_without_seal_keys_nobody_may_seal(monkeypatch, tmp_path, result):
    signature = Signature(monkeypatch, tmp_path, signature_seal_keys=[])
    code = registered_and_valid(signature, result, 802)
    assert signature.seal(code, "KQ-1", result, secret=UPLOADER).status_code == 403


def test_a_pdf_never_registered_for_the_dossier_is_not_sealed(signature, result):
    code = dossier_code(sequence=803)
    signature.told(received(code))
    anything = sign(blank_pdf("Bất kỳ"), OFFICIAL)  # validly signed, but the dossier never named it

    refused = signature.seal(code, "KQ-9", anything)
    assert refused.status_code == 409 and "not registered" in refused.json()["detail"], refused.text[:300]

    # Uploaded and verified valid is not enough: no dossier.signed event carried its hash.
    assert signature.upload(code, "KQ-9", anything)["verdict"] == "valid"
    refused = signature.seal(code, "KQ-9", anything)
    assert refused.status_code == 409 and "not registered" in refused.json()["detail"], refused.text[:300]


@pytest.mark.parametrize("pdf, status", [
    (sign(blank_pdf(), STRANGER), "indeterminate"),  # a signer no trusted CA vouches for
    (blank_pdf(), "invalid"),  # no signature at all
])
def test_a_registered_document_whose_verdict_is_not_valid_is_not_sealed(signature, pdf, status):
    code = dossier_code(sequence=804)
    signature.told(received(code), signed(code, pdf))
    refused = signature.seal(code, "KQ-1", pdf)  # registered, not verified yet
    assert refused.status_code == 409 and "not been verified valid" in refused.json()["detail"], refused.text[:300]

    assert signature.upload(code, "KQ-1", pdf)["verdict"] == status
    refused = signature.seal(code, "KQ-1", pdf)
    assert refused.status_code == 409 and status in refused.json()["detail"], refused.text[:300]


def test_only_the_bytes_registered_and_verified_valid_are_sealed(signature, result):
    code = registered_and_valid(signature, result, 805)

    other = sign(blank_pdf("Khác"), OFFICIAL)  # valid too, but not this document
    refused = signature.seal(code, "KQ-1", other)
    assert refused.status_code == 422, refused.text[:300]
    assert hashlib.sha256(other).hexdigest() in refused.json()["detail"]

    sealed = signature.seal(code, "KQ-1", result)
    assert sealed.status_code == 200 and sealed.headers["content-type"] == "application/pdf", sealed.text[:300]
    assert sealed.content.startswith(result)  # the verified bytes, with the seal appended
    checked = verify(sealed.content, [ROOT.asn1])
    assert checked.verdict == "valid" and [c.field for c in checked.signatures] == ["Signature1", "AgencySeal"]


def test_a_valid_verdict_on_other_bytes_than_the_registered_ones_seals_nothing(signature, result):
    code = dossier_code(sequence=806)
    signature.told(received(code))
    assert signature.upload(code, "KQ-1", result)["verdict"] == "valid"  # before the dossier named it
    registered = sign(blank_pdf("Bản đã đăng ký"), OFFICIAL)
    signature.told(signed(code, registered))  # the dossier's own result: another document

    for pdf in (result, registered):
        refused = signature.seal(code, "KQ-1", pdf)
        assert refused.status_code == 409 and "not been verified valid" in refused.json()["detail"], refused.text[:300]


def test_a_document_of_another_dossier_is_not_sealed(signature, result):
    theirs = registered_and_valid(signature, result, 807)
    mine = dossier_code(sequence=808)
    signature.told(received(mine))

    refused = signature.seal(mine, "KQ-1", result)
    assert refused.status_code == 409 and "not registered" in refused.json()["detail"], refused.text[:300]

    # Registered for this dossier too, but verified for the other one only.
    signature.told(signed(mine, result))
    refused = signature.seal(mine, "KQ-1", result)
    assert refused.status_code == 409 and "not been verified valid" in refused.json()["detail"], refused.text[:300]
    assert signature.seal(theirs, "KQ-1", result).status_code == 200


def test_a_document_registered_by_another_system_than_the_dossiers_is_not_sealed(signature, result):
    code = dossier_code(sequence=809)
    signature.told(received(code), signed(code, result, source="urn:motcua:99"))  # not the dossier's owner
    assert signature.upload(code, "KQ-1", result)["verdict"] == "valid"
    refused = signature.seal(code, "KQ-1", result)
    assert refused.status_code == 409 and "not registered" in refused.json()["detail"], refused.text[:300]

    unknown = dossier_code(sequence=810)  # a document of a dossier whose receipt was never seen
    signature.told(signed(unknown, result))
    assert signature.upload(unknown, "KQ-1", result)["verdict"] == "valid"
    refused = signature.seal(unknown, "KQ-1", result)
    assert refused.status_code == 409 and "receipt" in refused.json()["detail"], refused.text[:300]


@pytest.mark.parametrize("scope, allowed", [
    ({"provinces": ["38"]}, True),  # Thanh Hóa: the dossier's commune 14923 (Xã Bá Thước) is there
    ({"provinces": ["01"]}, False),
    ({"provinces": ["38"], "communes": ["14926"]}, False),
    ({"sources": [SOURCE]}, True),
    ({"sources": ["urn:motcua:99"]}, False),  # the dossiers another system received
])
def test_a_seal_key_seals_only_the_dossiers_of_its_scope(monkeypatch, tmp_path, result, scope, allowed):
    signature = Signature(monkeypatch, tmp_path, signature_seal_keys=[key("agency-seal", SEALER, **scope)])
    code = registered_and_valid(signature, result, 811)
    assert signature.seal(code, "KQ-1", result).status_code == (200 if allowed else 403)


def test_a_seal_is_logged_with_the_documents_hash_and_nothing_personal(signature, result):
    code = registered_and_valid(signature, result, 812)
    with capture_logs() as logs:
        sealed = signature.seal(code, "KQ-1", result)
        refused = signature.seal(code, "KQ-1", result, secret=UPLOADER)
    assert (sealed.status_code, refused.status_code) == (200, 403)

    [line] = [e for e in logs if e["event"] == "result sealed"]
    assert line["sha256"] == hashlib.sha256(result).hexdigest()
    assert line["sealed_sha256"] == hashlib.sha256(sealed.content).hexdigest()
    assert (line["dossier"], line["document"], line["key"]) == (code, "KQ-1", "agency-seal")
    assert any(e["event"] == "seal refused" and e["key"] == "one-stop" for e in logs)  # who tried, kept too
    told = json.dumps(logs, default=str, ensure_ascii=False)
    assert APPLICANT["phone"] not in told and APPLICANT["name"] not in told
