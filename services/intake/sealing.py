"""Intake seals every receipt's applicant before anything is published (docs/security.md, finding 6):
Kafka, the dead-letter topics and every store downstream see only ciphertext under the dossier's own
key (shared/personal.py). Both doors of intake, CloudEvents and the portal's format, go through here."""

from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shared.personal import CLEAR, DossierKeys, RecentKeys, sealed_applicant

RECEIVED = "dossier.received"
# The keys intake made or read lately, kept in its memory (shared/personal.py RecentKeys): a portal re-sends
# each dossier's receipt with every snapshot; 100,000 keys are about 23 MiB; each is read again after an hour
# (an erased key is used for at most that long: docs/security.md, finding 6).
RECENT_KEYS, RECENT_SECONDS = 100_000, 3600.0


def dossier_keys(database: AsyncDatabase, index_secret: str) -> DossierKeys:
    """The dossiers' keys as intake's two doors use them: recent ones kept in memory."""
    return DossierKeys(database, index_secret, RecentKeys(RECENT_KEYS, RECENT_SECONDS))


class KeysUnavailable(Exception):
    """MongoDB, where the dossiers' keys are, cannot be reached: nothing is published, the sender retries."""


def _personal(obj: Any) -> dict[str, Any] | None:
    """A receipt's applicant as sent, if it holds anything personal (more than CLEAR)."""
    if not isinstance(obj, dict) or obj.get("type") != RECEIVED or not isinstance(obj.get("data"), dict):
        return None
    applicant = obj["data"].get("applicant")
    return applicant if isinstance(applicant, dict) and set(applicant) - set(CLEAR) else None


async def sealed_receipts(personal: DossierKeys, objects: list[Any]) -> list[Any]:
    """The events' JSON objects (validated), every receipt's applicant sealed under its dossier's key,
    made if it has none."""
    applicants = [_personal(obj) for obj in objects]
    owners = {obj["subject"]: applicant.get("phone") for obj, applicant in zip(objects, applicants) if applicant}
    if not owners:
        return objects
    try:
        keys = await personal.keys_for(owners)
    except PyMongoError as exc:
        raise KeysUnavailable(str(exc)) from exc
    return [obj | {"data": obj["data"] | {"applicant": sealed_applicant(keys[obj["subject"]], obj["subject"], applicant)}}
            if applicant else obj for obj, applicant in zip(objects, applicants, strict=True)]


async def sealed_records(personal: DossierKeys, records: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Kafka records as intake wrote them (key, JSON), their receipts sealed: for the portal's door, whose
    snapshots repeat each dossier's receipt, most of them sent before."""
    objects = [orjson.loads(value) if RECEIVED.encode() in value else None for _, value in records]
    receipts = [obj for obj in objects if obj is not None]
    if not receipts:
        return records
    sealed = iter(await sealed_receipts(personal, receipts))
    return [(key, orjson.dumps(next(sealed)) if obj is not None else value)
            for (key, value), obj in zip(records, objects, strict=True)]
