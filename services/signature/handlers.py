"""What the signature service consumes (docs/contract.md §2)."""

from services.signature.service import SignatureService
from shared.events import AnyEvent
from shared.service import Record


async def on_dossier_events(records: list[Record[AnyEvent]], service: SignatureService) -> None:
    """Every dossier event (group `signature`): receipts, signatures requested and signed are
    recorded; a signed document given by URL is fetched and verified, its verdict announced on
    dossier-status as dossier.signature_verified. A PAKN's events (`feedback.*`) concern no document: skipped."""
    await service.handle(records)
