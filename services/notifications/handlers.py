"""What the notifications service consumes (docs/contract.md §2)."""

from services.notifications.core import Core
from shared.contracts import StatusRecord
from shared.consumer_app import Record


async def on_status(records: list[Record[StatusRecord]], core: Core) -> None:
    """Every status record (group `notifications`): the SMS a dossier's change asks for (received,
    supplement requested, result ready, returned, apology; due soon if the deployment wants it) are
    stored before the offsets are committed, then sent; signature verdicts ask for none."""
    decided = await core.decider.decide(records)
    await core.store.keep_citizens(decided.standing, decided.firsts)
    await core.sender.queue(decided.messages)
