"""`python -m services.processing [serve]`: serve processing (its consumer and HTTP API) on its port.
`... review-open` (once, after upgrading to the reviews of abandoned dossiers, docs/security.md "Retention of
personal data"): every dossier stored open is put up for a review, `DOSSIER_PERSONAL_IDLE_DAYS` + the retention
days after its last step, as a receipt processed since is at its receipt. Safe to run again: a dossier reviewed
twice is looked at once a day, and erased only if it did not change.
`... reseal` (once, after upgrading from a version before v1.3, every consumer stopped, as Kafka's admin user):
every applicant written in clear sealed, on the topics and in the store (services/processing/reseal.py)."""

import argparse
import asyncio
import sys

import orjson
from pymongo import AsyncMongoClient

from services.processing.app import create_app
from services.processing.reseal import ConsumersRunning, reseal
from services.processing.settings import ProcessingSettings
from services.processing.store import DossierStore
from shared.http import serve
from shared.personal import DossierKeys, Retention


async def review_open(settings: ProcessingSettings) -> dict[str, int]:
    """Every dossier stored open put up for its review; how many."""
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        database = mongo[settings.mongo_database]
        retention = Retention(database, DossierKeys(database), settings.personal_retention_days, settings.clock,
                              settings.personal_idle_days)
        reviewed = 0
        async for found in DossierStore(mongo, settings.mongo_database).open_summaries():
            await retention.review({code: steps for code, (steps, _) in found.items()},
                                   {code: last for code, (_, last) in found.items() if last is not None})
            reviewed += len(found)
        return {"reviewed": reviewed}
    finally:
        await mongo.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.processing", description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", default="serve", choices=("serve", "review-open", "reseal"))
    args = parser.parse_args(argv)
    settings = ProcessingSettings()
    if args.command == "reseal" and not settings.personal_index_secret.get_secret_value():
        # Without it each dossier would be listed for a citizen under another key than intake's: never found again.
        raise SystemExit("the citizens' index needs its secret: DOSSIER_PERSONAL_INDEX_SECRET, or the stack's secrets "
                         "(deploy/local/run.sh admin -m services.processing reseal, on the local stack)")
    if args.command == "serve":
        serve("processing", lambda: create_app(settings), settings, settings.processing_port)
    else:
        try:
            done = asyncio.run(review_open(settings) if args.command == "review-open" else reseal(settings))
        except ConsumersRunning as running:
            raise SystemExit(str(running)) from None
        sys.stdout.write(orjson.dumps(done).decode() + "\n")


if __name__ == "__main__":
    main()
