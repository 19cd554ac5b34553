"""The delivery-report reader: a gateway's report on a message (Kannel's `GET /v1/dlr`, an HTTP
provider's `POST /v1/dlr/http`, each mapped to a status by its provider) moves the message forward,
once. The signature of the report's URL is checked before (app.py).

Reports come one per request, two per message from Kannel: they are recorded together, those that
came while the previous ones were being written in one write (a group commit), and each request is
answered once its own report is recorded.
"""

from collections.abc import Callable
from datetime import datetime

import structlog

from services.notifications.instruments import NotificationMetrics
from services.notifications.messages import Message, MessageStatus, Move
from services.notifications.providers import Kannel
from services.notifications.sender import Sender
from services.notifications.store import MessageStore
from shared.group_commit import GroupCommit

log = structlog.get_logger()


class DeliveryReports:
    def __init__(self, store: MessageStore, sender: Sender, metrics: NotificationMetrics,
                 clock: Callable[[], datetime]):
        self.store = store
        self.sender = sender
        self.metrics = metrics
        self.clock = clock
        self._recorded = GroupCommit(self._record)

    async def from_kannel(self, message_id: str, kind: int) -> bool:
        """A Kannel delivery report (its dlr-mask type); repeating one changes nothing."""
        to = Kannel.report_status(kind)
        if to is None:
            return False  # e.g. 4: buffered by the SMSC, nothing to record
        return await self.reached(message_id, to)

    async def reached(self, message_id: str, to: MessageStatus) -> bool:
        """A gateway says the message reached status `to`; recorded once, and its status only moves forward.
        A report on a message no gateway was given (still to send, or refused) is ignored: it must
        not keep the citizen's SMS from being sent."""
        if not to.reported:
            return False
        message = self.sender.handed(message_id)  # this replica handed it over: no read needed
        if message is None:
            message = await self.store.message(message_id)
            if message is None:
                return False  # not ours (a report for a message of another deployment, or a forged id)
            if not await self.store.handed_over(message_id):
                self.metrics.reports_ignored.labels("not_sent").inc()
                log.warning("delivery report for a message not sent, ignored", message=message_id, status=to)
                return False
        self.sender.forget(message_id)  # the gateway has it: never sent again
        return await self._recorded((message, Move(message_id, to, self.clock())))

    async def _record(self, reports: list[tuple[Message, Move]]) -> list[bool]:
        """The reports waiting, written together; whether each was recorded now (a report twice in them:
        by the first). A failed write fails their requests (the gateway reports again)."""
        recorded = await self.sender.record_many(reports)
        now = []
        for _, move in reports:
            now.append(move.id in recorded)
            recorded.discard(move.id)
        return now
