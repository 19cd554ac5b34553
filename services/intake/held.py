"""What processing holds of dossiers, read by key for the portal format's lookup (TraCuuHoSo, docs/dvcqg.md §8).

Intake reads, never writes, processing's summary of a dossier (`dossiers`, `_id` = the dossier code:
services/processing/store.py): one key read a dossier. The summary is written once a batch's outbox is
published, so the answer is as of the last batch processing finished (a replica stopped mid-batch leaves it one
batch behind until the batch is redone). Intake stays coupled to processing only through Kafka for writes: with
processing down, the lookup answers what was last summarized.
"""

from pymongo.asynchronous.database import AsyncDatabase

from shared.dvcqg_lookup import Held, held_of
from shared.mongo import get_many, unpack

SUMMARIES = "dossiers"  # processing's collection (services/processing/store.py)


class HeldDossiers:
    """The summaries of dossiers by their codes, read by their `_id`s in one query."""

    def __init__(self, database: AsyncDatabase):
        self._summaries = database[SUMMARIES]

    async def read(self, codes: list[str]) -> dict[str, Held]:
        """The dossiers of these codes that processing holds (PyMongoError when MongoDB is away)."""
        found = await get_many(self._summaries, codes)
        return {code: held_of(code, unpack(doc["blob"])) for code, doc in found.items()}
