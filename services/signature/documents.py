"""A dossier's signed documents from their records (insert-only), and the trust roots.

Records: `requested` (dossier.signature_requested), `signed` (dossier.signed: hash, URL),
`verified` (a verdict on the bytes received). A document's status moves requested → received →
valid | invalid | indeterminate; the signature step's length is counted in working hours, on the
same calendar as processing. Only a document verified `valid`, in the bytes its dossier registered,
may take the agency's seal.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from shared.calendar import WorkingCalendar
from shared.mongo import as_utc


def trust_roots(folder: Path | None) -> list[asn1_x509.Certificate]:
    """The trust roots, each parsed whole (`native`): documents are verified in threads side by side, and asn1crypto
    parses a field on first use, not safely from two threads (a valid document was judged invalid now and then)."""
    roots = []
    for path in sorted(folder.glob("*.pem")) if folder else ():
        for _, _, der in pem.unarmor(path.read_bytes(), multiple=True):
            root = asn1_x509.Certificate.load(der)
            root.native  # noqa: B018 (parsed now, before any thread reads it)
            roots.append(root)
    return roots


@dataclass(frozen=True)
class Document:
    document_id: str
    status: str  # requested | received | valid | invalid | indeterminate
    requested_at: datetime | None
    signed_at: datetime | None
    sha256: str | None
    working_hours: float | None  # from the request to the signature
    verdict: dict[str, Any] | None

    def view(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "status": self.status,
                "requested_at": self.requested_at.isoformat() if self.requested_at else None,
                "signed_at": self.signed_at.isoformat() if self.signed_at else None,
                "document_sha256": self.sha256, "signature_working_hours": self.working_hours,
                "verdict": self.verdict}


def documents(records: list[dict[str, Any]], calendar: WorkingCalendar) -> list[Document]:
    by_document: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_document.setdefault(record["document_id"], []).append(record)
    out = []
    for document_id, mine in sorted(by_document.items()):
        kinds = {r["kind"]: r for r in sorted(mine, key=lambda r: r["recorded_at"])}
        requested, signed, verified = kinds.get("requested"), kinds.get("signed"), kinds.get("verified")
        requested_at = _at(requested["time"]) if requested else None
        signed_at = _at(signed["time"]) if signed else None
        hours = None
        if requested_at and signed_at:
            hours = round(calendar.working_between(requested_at, signed_at).total_seconds() / 3600, 2)
        status = verified["verdict"]["verdict"] if verified else "received" if signed else "requested"
        out.append(Document(document_id, status, requested_at, signed_at, signed["sha256"] if signed else None, hours,
                            verified["verdict"] if verified else None))
    return out


class NotSealable(Exception):
    """Why a document may not take the agency's seal, in words fit for the caller."""


def receipt(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The dossier's receipt as recorded here: its owner (`source`) and commune, if seen."""
    return next((r for r in records if r["kind"] == "dossier"), None)


def sealable(records: list[dict[str, Any]], document_id: str) -> str:
    """The SHA-256 of the only bytes of `document_id` the agency may seal: those the system that received
    the dossier registered (its dossier.signed event), once verified `valid` for this dossier."""
    dossier = receipt(records)
    if dossier is None:
        raise NotSealable("the dossier's receipt is not known here")
    signed = next((r for r in records if r["kind"] == "signed" and r["document_id"] == document_id), None)
    # Records from before sources were kept have none on either side: equal.
    if signed is None or signed.get("source") != dossier.get("source"):
        raise NotSealable(f"document {document_id} is not registered for this dossier "
                          "by the system that received it")
    verdicts = [r["verdict"]["verdict"] for r in sorted(records, key=lambda r: r["recorded_at"])
                if r["kind"] == "verified" and r["document_id"] == document_id
                and r["verdict"]["document_sha256"] == signed["sha256"]]
    if "valid" not in verdicts:
        raise NotSealable(f"document {document_id} has not been verified valid "
                          f"({verdicts[-1] if verdicts else 'no verdict on its registered bytes'})")
    return signed["sha256"]


def _at(value: str | datetime) -> datetime:
    """A recorded instant: BSON dates come back naive, in UTC."""
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))
