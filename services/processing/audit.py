"""The audit log of operators' reads of personal data (docs/security.md): who read which dossier's name
or phone, and when. Each read is one insert-only document, written before the answer leaves, and a
log line; neither holds the personal data itself."""

import uuid
from collections.abc import Callable
from datetime import datetime

import structlog
from pymongo.asynchronous.collection import AsyncCollection

log = structlog.get_logger()


class AuditLog:
    def __init__(self, collection: AsyncCollection, clock: Callable[[], datetime]):
        self._collection = collection
        self._clock = clock

    async def read(self, operator: str, dossier: str, what: str) -> None:
        at = self._clock()
        await self._collection.insert_one({"_id": uuid.uuid4().hex, "operator": operator, "dossier": dossier,
                                           "read": what, "at": at})
        log.info("audit: personal data read", operator=operator, dossier=dossier, read=what, at=at.isoformat())
