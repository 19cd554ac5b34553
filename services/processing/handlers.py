"""What the processing service consumes (docs/contract.md §2)."""

from services.processing.processor import Processor
from shared.events import DossierEvent
from shared.service import Record


async def on_dossier_events(records: list[Record[DossierEvent]], processor: Processor) -> None:
    """Every dossier event (replicas share group `processing`): folded into the dossier's history,
    written, then its status changes published on dossier-status and the events the fold rejects on
    dossier-events.dlq; offsets committed last."""
    await processor.handle(records)
