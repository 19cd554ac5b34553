"""What the metrics service consumes (docs/contract.md §2)."""

from services.metrics.service import MetricsService
from shared.contracts import StatusRecord
from shared.service import Record


async def on_status(records: list[Record[StatusRecord]], service: MetricsService) -> None:
    """Every status record (each replica its own group): processing's are stored, then counted for
    /metrics and the reports; signature verdicts are counted; clock records another replica
    published are noted, so that this one does not publish them again."""
    await service.handle(records)
