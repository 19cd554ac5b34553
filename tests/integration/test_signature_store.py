"""The signature service's store on the real FerretDB: what one fetched result costs it."""

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter
from pymongo import AsyncMongoClient

from services.signature.core import SignatureCore
from services.signature.settings import SignatureSettings
from services.signature.store import SignatureStore
from shared.calendar import WorkingCalendar
from shared.consumer_app import Record
from shared.events import DossierEvent
from tests.fixtures.pki import Party, blank_pdf, sign
from tests.fixtures.sample import dossier_code, event
from tests.integration.conftest import namespace
from tests.integration.test_mongo import Commands

EVENTS = TypeAdapter(DossierEvent)
ROOT = Party("Root CA test", ca=True)
OFFICIAL = Party("Nguyen Van A", issuer=Party("VNPT-CA test", issuer=ROOT, ca=True))
URL = "http://documents.example/KQ-1.pdf"


def record(e: dict[str, Any]) -> Record[Any]:
    return Record(EVENTS.validate_python(e), orjson.dumps(e), e["subject"].encode(), "dossier-events", 0, 0, 0)


async def fetched_result(settings, commands: Commands, codes: list[str], pdf: bytes) -> tuple[list, list, list]:
    """Each dossier received and its result signed (a URL to fetch); then their fetches made (the fetcher
    answers the PDF), the commands sent for that, and for the documents' lookup after."""
    client = AsyncMongoClient(settings.mongo_url, event_listeners=[commands])
    published: list[Any] = []

    async def publish(verdict: Any) -> None:
        published.append(verdict)

    async def fetch(url: str) -> bytes:
        return pdf

    core = SignatureCore(SignatureSettings(environment="local", signature_fetches_queued=0), SignatureStore(
        client, settings.mongo_database), WorkingCalendar.load(), [ROOT.asn1], publish, CollectorRegistry())
    core.fetcher.fetch = fetch
    sha = hashlib.sha256(pdf).hexdigest()
    try:
        for code in codes:  # queue of 0: each fetch waits in the store, none starts here
            await core.handle([record(event("dossier.received", code))])
            await core.handle([record(event("dossier.signed", code, document_id="KQ-1", document_sha256=sha,
                                            document_url=URL))])
        commands.sent.clear()
        await asyncio.gather(*(core._fetch_and_check(code, "KQ-1", URL) for code in codes))
        made = list(commands.sent)
        commands.sent.clear()
        listed = [await core.documents(code) for code in codes]
        return made, list(commands.sent), listed
    finally:
        await core.close()
        await client.close()


def test_a_fetched_result_costs_the_store_five_statements_and_its_lookup_two_reads(stack):
    """`make demo` did not catch up on a 2-core machine: its ~20,000 results were the tail, each ~10 statements
    (the dossier's chain read three times: before the fetch, before the verdict's append, and after it for the
    summary). The chain as read before the fetch now places the verdict, and the summary is written with it."""
    settings = namespace(stack)
    commands = Commands()
    codes = [dossier_code(sequence=n) for n in range(1, 6)]
    made, lookup, listed = asyncio.run(fetched_result(settings, commands, codes, sign(blank_pdf(), OFFICIAL)))
    per_result: Callable[[str], float] = lambda name: made.count(name) / len(codes)
    assert (per_result("find"), per_result("insert"), per_result("update"), per_result("delete")) == (2, 1, 1, 1), made
    assert lookup == ["find", "find"] * len(codes), lookup  # the summary, and the link after it: none
    assert [[d.status for d in docs] for docs in listed] == [["valid"]] * len(codes)
