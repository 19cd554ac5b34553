"""What the metrics service consumes (docs/contract.md §2)."""

from services.metrics.core import MetricsCore
from shared.contracts import StatusRecord
from shared.consumer_app import Record


async def on_status(records: list[Record[StatusRecord]], core: MetricsCore) -> None:
    """Every status record (each replica its own group): processing's are stored, then counted for
    /metrics and the reports; signature verdicts are counted; clock records another replica
    published are noted, so that this one does not publish them again."""
    await core.handle(records)
