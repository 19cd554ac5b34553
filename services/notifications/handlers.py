"""What the notifications service consumes (docs/contract.md §2)."""

from services.notifications.service import Notifier
from shared.contracts import StatusRecord
from shared.service import Record


async def on_status(records: list[Record[StatusRecord]], notifier: Notifier) -> None:
    """Every status record (group `notifications`): the SMS a dossier's change asks for (received,
    supplement requested, result ready, returned, apology; due soon if the deployment wants it) are
    stored before the offsets are committed, then sent; signature verdicts ask for none."""
    await notifier.handle(records)
