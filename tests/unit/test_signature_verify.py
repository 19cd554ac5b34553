"""Verifying signed results with pyHanko against a test PKI (issue 7's verdicts)."""

from datetime import timedelta

import pytest

from services.signature.verify import verify
from tests.pki import NOW, Party, blank_pdf, sign

ROOT = Party("Root CA test", ca=True)
CA = Party("VNPT-CA test", issuer=ROOT, ca=True)  # stands in for a Vietnamese CA under the national root
OFFICIAL = Party("Nguyễn Văn A - Chủ tịch UBND xã", issuer=CA)
DEPUTY = Party("Trần Thị B - Phó Chủ tịch", issuer=CA)
EXPIRED = Party("Lê Văn C", issuer=CA, start=NOW - timedelta(days=400), end=NOW - timedelta(days=1))
STRANGER_ROOT = Party("Unknown CA", ca=True)
STRANGER = Party("Someone", issuer=STRANGER_ROOT)
TRUSTED = [ROOT.asn1]


def test_a_valid_signature():
    result = verify(sign(blank_pdf(), OFFICIAL), TRUSTED)
    assert result.verdict == "valid" and result.reasons == ()
    [check] = result.signatures
    assert "Nguyễn Văn A" in check.signer and "VNPT-CA test" in check.issuer
    assert check.serial == format(OFFICIAL.cert.serial_number, "x") and check.algorithm.startswith("sha256")


def test_modified_after_signing_is_invalid():
    signed = bytearray(sign(blank_pdf(), OFFICIAL))
    at = signed.index(b"/MediaBox")
    signed[at + 12: at + 13] = b"9"  # a byte inside the signed range
    result = verify(bytes(signed), TRUSTED)
    assert result.verdict == "invalid" and "modified after signing" in result.reasons[0]


@pytest.mark.parametrize("party, problem", [(STRANGER, "trusted CA"), (EXPIRED, "not valid now")])
def test_an_untrusted_or_expired_signer_is_indeterminate(party, problem):
    result = verify(sign(blank_pdf(), party), TRUSTED)
    assert result.verdict == "indeterminate" and problem in result.reasons[0]


def test_two_signatures_with_an_incremental_update():
    twice = sign(sign(blank_pdf(), DEPUTY, "Signature1"), OFFICIAL, "Signature2")
    result = verify(twice, TRUSTED)
    assert result.verdict == "valid", result.reasons
    assert [c.field for c in result.signatures] == ["Signature1", "Signature2"]


@pytest.mark.parametrize("data, reason", [
    (b"GIF89a not a pdf", "not a PDF"),
    (blank_pdf(), "no signature"),
    (blank_pdf(password="mật khẩu"), "encrypted"),
    (sign(blank_pdf(), OFFICIAL)[:400], "unreadable"),
])
def test_bad_input_gets_an_invalid_verdict_with_its_reason(data, reason):
    result = verify(data, TRUSTED)
    assert result.verdict == "invalid" and reason in result.reasons[0]
