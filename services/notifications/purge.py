"""The purge: the numbers and texts of messages (and the daily slots, which name numbers) are deleted
after the retention days; the messages, their statuses and the counts stay. A message still to send
keeps its number."""

from collections.abc import Callable
from datetime import datetime, timedelta

from services.notifications.sender import Sender
from services.notifications.store import MessageStore


class Purge:
    def __init__(self, retention_days: float, store: MessageStore, sender: Sender, clock: Callable[[], datetime]):
        self.retention = timedelta(days=retention_days)
        self.store = store
        self.sender = sender
        self.clock = clock

    async def run(self) -> int:
        """What was written before the retention, deleted; how many documents."""
        return await self.store.purge(self.clock() - self.retention, self.sender.pending)
