"""The agency's seal with its key on a real PKCS#11 token (SoftHSM2, Debian) and in a PKCS#12 file;
the sealed result verifies valid."""

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from services.signature.seal import Sealer
from services.signature.settings import SignatureSettings
from services.signature.verify import verify
from tests.integration.conftest import ROOT as REPO
from tests.fixtures.pki import Party, blank_pdf, sign

ROOT = Party("Root CA test", ca=True)
CA = Party("VNPT-CA test", issuer=ROOT, ca=True)
AGENCY = Party("UBND xa Ba Thuoc", issuer=CA)
SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")


@pytest.fixture
def token(tmp_path, monkeypatch) -> Path:
    """A SoftHSM2 token of its own holding the agency's key (installed from Debian if missing)."""
    subprocess.run(["bash", str(REPO / "deploy" / "local" / "install-apt.sh"), "softhsm2"], check=True)
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    key = tmp_path / "key.pem"
    key.write_bytes(AGENCY.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    run = lambda *args: subprocess.run(["softhsm2-util", *args], check=True, capture_output=True, env=os.environ)  # noqa: E731
    run("--init-token", "--free", "--label", "dossier", "--pin", "1234", "--so-pin", "5678")
    run("--import", str(key), "--token", "dossier", "--label", "seal", "--id", "01", "--pin", "1234")
    key.unlink()  # the key now lives on the token only
    chain = tmp_path / "seal.pem"
    chain.write_bytes(b"".join(p.cert.public_bytes(serialization.Encoding.PEM) for p in (AGENCY, CA)))
    return chain


def test_a_seal_with_the_key_on_a_softhsm2_token_verifies(token):
    sealer = Sealer.from_settings(SignatureSettings(
        environment="local",
        signature_seal_pkcs11_lib=SOFTHSM, signature_seal_token_label="dossier", signature_seal_key_label="seal",
        signature_seal_cert=token, signature_seal_password="1234"))
    try:
        signed_by_official = sign(blank_pdf(), Party("Nguyen Van A", issuer=CA))
        sealed = sealer.seal(signed_by_official)
    finally:
        sealer.close()
    result = verify(sealed, [ROOT.asn1])
    assert result.verdict == "valid", result.reasons
    assert [c.field for c in result.signatures] == ["Signature1", "AgencySeal"]
    assert "UBND xa Ba Thuoc" in result.signatures[1].signer


def test_a_seal_with_a_pkcs12_file_verifies(tmp_path):
    p12 = tmp_path / "seal.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"seal", AGENCY.key, AGENCY.cert, [CA.cert], serialization.BestAvailableEncryption(b"secret")))
    sealer = Sealer.from_settings(SignatureSettings(environment="local", signature_seal_pkcs12=p12,
                                                     signature_seal_password="secret"))
    assert verify(sealer.seal(blank_pdf()), [ROOT.asn1]).verdict == "valid"


def test_without_a_key_nothing_is_sealed():
    assert Sealer.from_settings(SignatureSettings()) is None
