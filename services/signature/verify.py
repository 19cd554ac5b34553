"""A signed result's verdict (ký số): every signature's integrity and coverage, the signer's chain to
the configured trust roots, its validity and revocation, offline (no network calls). Pure: bytes
in, verdict out.

Verdicts follow ETSI EN 319 102-1: `invalid` when the document or a signature is broken (not a
PDF, encrypted, no signature, modified after signing, a signature that does not cover what it
should) or the signer's certificate was revoked before a trusted signing time; `indeterminate` when
the signatures are intact but their trust cannot be established (an unknown CA, an expired or not
yet valid certificate, a revoked certificate with no proof that it signed before); `valid`
otherwise.

Revocation is checked with what the document carries: CRLs and OCSP responses embedded in the
signature (Adobe's revocation-info archival) or in the document security store (PAdES-LT). None
embedded is not a failure: nothing is fetched.

Validity is judged now, or, when it fails now and the signature carries a trusted timestamp, at the
timestamp's time: a certificate that expired or was revoked after a timestamped signature leaves
that signature valid. The signer's own claimed signing time is recorded but never trusted.
"""

import io
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import NonexistentAttributeError, find_unique_cms_attribute
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
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
    timestamped: bool = False  # signing_time is a trusted timestamp's, not the signer's claim
    revocation_data: bool = False  # CRL or OCSP data embedded for the check


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
        stored = _document_revocation(reader)
    except Exception as exc:  # a hostile document raises what it can (PdfReadError, RecursionError, ...): a verdict
        return Verdict("invalid", (f"unreadable PDF: {type(exc).__name__}",))
    if not embedded:
        return Verdict("invalid", ("no signature in the document",))
    checks = [_check(sig, trust_roots, stored, last=n == len(embedded) - 1) for n, sig in enumerate(embedded)]
    worst = "invalid" if any(c.verdict == "invalid" for c in checks) else \
        "indeterminate" if any(c.verdict == "indeterminate" for c in checks) else "valid"
    return Verdict(worst, tuple(r for c in checks for r in c.reasons), tuple(checks))


@dataclass(frozen=True)
class _Revocation:
    crls: tuple[asn1_crl.CertificateList, ...] = ()
    ocsps: tuple[asn1_ocsp.OCSPResponse, ...] = ()

    def __add__(self, other: "_Revocation") -> "_Revocation":
        return _Revocation(self.crls + other.crls, self.ocsps + other.ocsps)


def _document_revocation(reader: PdfFileReader) -> _Revocation:
    """The CRLs and OCSP responses in the document security store (PAdES-LT)."""
    try:
        store = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return _Revocation()
    return _Revocation(
        tuple(asn1_crl.CertificateList.load(ref.get_object().read_data(DecodePurpose.CRL)) for ref in store.crls),
        tuple(asn1_ocsp.OCSPResponse.load(ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE))
              for ref in store.ocsps))


def _signature_revocation(sig) -> _Revocation:
    """The CRLs and OCSP responses a signature carries in its signed attributes (Adobe's archival)."""
    try:
        archival = find_unique_cms_attribute(sig.signer_info["signed_attrs"], "adobe_revocation_info_archival")
    except NonexistentAttributeError:
        return _Revocation()
    return _Revocation(tuple(archival["crl"] or ()), tuple(archival["ocsp"] or ()))


def _context(trust_roots, revocation: _Revocation, moment: datetime | None = None) -> ValidationContext:
    """Offline validation at `moment` (now when None); a past moment accepts revocation data issued later."""
    return ValidationContext(trust_roots=trust_roots, allow_fetching=False, crls=revocation.crls,
                             ocsps=revocation.ocsps, moment=moment, retroactive_revinfo=moment is not None)


def _validate(sig, trust_roots, revocation: _Revocation, moment: datetime | None = None):
    """pyHanko's validation of the signer at `moment`; its timestamp, if any, is always judged now."""
    return validate_pdf_signature(sig, _context(trust_roots, revocation, moment),
                                  ts_validation_context=_context(trust_roots, revocation))


def _check(sig, trust_roots, stored: _Revocation, last: bool) -> SignatureCheck:
    name = sig.field_name
    try:
        revocation = stored + _signature_revocation(sig)
        status = _validate(sig, trust_roots, revocation)
        stamp = status.timestamp_validity
        timestamped = bool(stamp and stamp.valid and stamp.intact and stamp.trusted)
        if timestamped and not status.trusted:
            status = _validate(sig, trust_roots, revocation, moment=stamp.timestamp)
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
    if status.revoked:
        revoked = status.revocation_details
        whose = "a CA certificate in the signer's chain" if revoked.ca_revoked else "the signer's certificate"
        reasons.append(f"{name}: {whose} was revoked on {revoked.revocation_date:%Y-%m-%d %H:%M} UTC"
                       + (", before the signature's timestamp" if timestamped else ""))
        # Revoked before a trusted signing time: the signature is void. Otherwise it may predate the
        # revocation, which nothing proves: indeterminate.
        broken = bool(reasons[:-1]) or timestamped
    else:
        broken = bool(reasons)
        if not status.trusted and not broken:  # a broken signature's trust says nothing more
            summary = getattr(status, "trust_problem_indic", None)
            when = "at the time of its timestamp" if timestamped else "now"
            reasons.append(f"{name}: the signer's certificate does not chain to a trusted CA or is not valid {when}"
                           + (f" ({summary})" if summary else ""))
    return SignatureCheck(
        field=name,
        signer=cert.subject.human_friendly if cert else None,
        serial=format(cert.serial_number, "x") if cert else None,
        issuer=cert.issuer.human_friendly if cert else None,
        signing_time=stamp.timestamp if timestamped else status.signer_reported_dt,
        algorithm=f"{status.md_algorithm}/{status.pkcs7_signature_mechanism}",
        intact=status.intact and status.valid,
        trusted=status.trusted,
        timestamped=timestamped,
        revocation_data=bool(revocation.crls or revocation.ocsps),
        verdict="invalid" if broken else "indeterminate" if not status.trusted else "valid",
        reasons=tuple(reasons),
    )
