"""A signed result's verdict (ký số): every signature's integrity and coverage, the signer's chain to
the configured trust roots, its validity, offline (no network calls). Pure: bytes in, verdict out.

Verdicts follow ETSI EN 319 102-1: `invalid` when the document or a signature is broken (not a
PDF, encrypted, no signature, modified after signing, a signature that does not cover what it
should); `indeterminate` when the signatures are intact but their trust cannot be established (an
unknown CA, an expired or not yet valid certificate, no revocation proof when required); `valid`
otherwise.
"""

import io
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

# A later signature or revision may add what pyHanko's difference analysis allows (signatures,
# form filling, timestamps); the last signature must cover the whole file.
_WHOLE = (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION)


@dataclass(frozen=True)
class SignatureCheck:
    field: str
    signer: str | None
    serial: str | None
    issuer: str | None
    signing_time: datetime | None
    algorithm: str | None
    intact: bool
    trusted: bool
    verdict: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    verdict: str  # valid | invalid | indeterminate
    reasons: tuple[str, ...] = ()
    signatures: tuple[SignatureCheck, ...] = field(default=())


def verify(pdf: bytes, trust_roots: list[asn1_x509.Certificate]) -> Verdict:
    if not pdf.lstrip()[:5] == b"%PDF-":
        return Verdict("invalid", ("not a PDF",))
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        if reader.encrypted:
            return Verdict("invalid", ("encrypted PDF: cannot be verified",))
        embedded = list(reader.embedded_signatures)
    except (PdfReadError, ValueError, KeyError, IndexError) as exc:
        return Verdict("invalid", (f"unreadable PDF: {exc}",))
    if not embedded:
        return Verdict("invalid", ("no signature in the document",))
    context = ValidationContext(trust_roots=trust_roots, allow_fetching=False)
    checks = [_check(sig, context, last=n == len(embedded) - 1) for n, sig in enumerate(embedded)]
    worst = "invalid" if any(c.verdict == "invalid" for c in checks) else \
        "indeterminate" if any(c.verdict == "indeterminate" for c in checks) else "valid"
    return Verdict(worst, tuple(r for c in checks for r in c.reasons), tuple(checks))


def _check(sig, context: ValidationContext, last: bool) -> SignatureCheck:
    name = sig.field_name
    try:
        status = validate_pdf_signature(sig, context)
    except Exception as exc:  # pyHanko raises many kinds on malformed signatures: each is a verdict
        return SignatureCheck(name, None, None, None, None, None, False, False, "invalid",
                              (f"{name}: signature cannot be read: {exc}",))
    cert = status.signing_cert
    reasons = []
    if not status.intact:
        reasons.append(f"{name}: the document was modified after signing")
    elif not status.valid:
        reasons.append(f"{name}: the signature does not match the signer's key")
    if status.coverage not in _WHOLE or (last and status.coverage != SignatureCoverageLevel.ENTIRE_FILE
                                         and not status.docmdp_ok):
        reasons.append(f"{name}: the signature does not cover the whole document")
    elif not status.docmdp_ok:
        reasons.append(f"{name}: changes after signing that the signature does not allow")
    broken = bool(reasons)
    if not status.trusted:
        summary = getattr(status, "trust_problem_indic", None)
        reasons.append(f"{name}: the signer's certificate does not chain to a trusted CA or is not valid now"
                       + (f" ({summary})" if summary else ""))
    return SignatureCheck(
        field=name,
        signer=cert.subject.human_friendly if cert else None,
        serial=format(cert.serial_number, "x") if cert else None,
        issuer=cert.issuer.human_friendly if cert else None,
        signing_time=status.signer_reported_dt,
        algorithm=f"{status.md_algorithm}/{status.pkcs7_signature_mechanism}",
        intact=status.intact and status.valid,
        trusted=status.trusted,
        verdict="invalid" if broken else "indeterminate" if not status.trusted else "valid",
        reasons=tuple(reasons),
    )
