"""What the signature service consumes (docs/contract.md §2)."""

from services.signature.core import SignatureCore
from shared.events import AnyEvent
from shared.consumer_app import Record


async def on_dossier_events(records: list[Record[AnyEvent]], core: SignatureCore) -> None:
    """Every dossier event (group `signature`): receipts, signatures requested and signed are
    recorded; a signed document given by URL is fetched and verified, its verdict announced on
    dossier-status as dossier.signature_verified. A PAKN's events (`feedback.*`) concern no document: skipped."""
    await core.handle(records)
