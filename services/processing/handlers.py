"""What the processing service consumes (docs/contract.md §2)."""

from services.processing.feedback import FeedbackProcessor
from services.processing.processor import Processor
from shared.events import AnyEvent, is_feedback
from shared.consumer_app import Record


async def on_dossier_events(records: list[Record[AnyEvent]], processor: Processor,
                            feedback: FeedbackProcessor | None = None) -> None:
    """Every dossier event (replicas share group `processing`): folded into the dossier's history,
    written, then its status changes published on dossier-status and the events the fold rejects on
    dossier-events.dlq; offsets committed last. A PAKN's events (`feedback.*`) likewise, into the PAKN's."""
    dossiers = [r for r in records if not is_feedback(r.value)]
    if dossiers or feedback is None:
        await processor.handle(dossiers)
    if (pakn := [r for r in records if is_feedback(r.value)]) and feedback is not None:
        await feedback.handle(pakn)
