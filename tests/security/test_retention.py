"""Finding 6: personal data kept forever. The applicant's name and phone travelled in clear in
`dossier.received` (on `dossier-events`, its dead-letter topics, processing's stored history) and in
processing's status records on `dossier-status`, which Kafka keeps forever. Now intake seals them under
a key of the dossier's own, and processing erases the key at retention (crypto-shredding,
docs/security.md "Retention of personal data"): after it, no topic, dead-letter topic, collection nor
service log holds them readable. Deterministic: the clock is moved past retention and the sweep runs at
start; nothing waits on Kafka's log cleaner."""

import asyncio
import json
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import bson
import httpx
from pymongo import MongoClient

from shared.kafka import client_options
from tests.fixtures.sample import dossier_code, event
from tests.integration.conftest import OPERATOR, read_topic, service, wait_until
from tests.integration.test_notifications import messages, start_notifications

TOKEN = uuid.uuid4().hex[:6] + "qz"  # in the name: whatever way it is written, this part is ASCII
NAME = f"Lê Thị Quên {TOKEN}"
PHONE = "09" + "".join(secrets.choice("0123456789") for _ in range(8))
RETENTION_DAYS = 90  # DOSSIER_PERSONAL_RETENTION_DAYS's default


def readable_forms() -> list[re.Pattern[bytes]]:
    """The phone and the name in any form they could be written in: 09…, 849…, +84 9…, with dots or
    spaces, the name as UTF-8, JSON-escaped or without its accents (the token in it). A masked phone
    (its last digits) is not the phone."""
    digits = PHONE[1:]  # the national number, in every form: 0…, 84…, +84…
    return [re.compile(r"[ .\-]?".join(digits).encode()), re.compile(TOKEN.encode()),
            re.compile(re.escape(NAME.encode())), re.compile(re.escape(json.dumps(NAME).encode()))]


def hits_in(blob: bytes) -> bool:
    return any(form.search(blob) for form in readable_forms())


async def topics_of_the_run(settings) -> list[str]:
    """Every topic of the test's namespace: events, status, their dead-letter topics, any other."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)
    try:
        prefix = settings.topic_events.removesuffix("dossier-events")
        return sorted(t for t in await consumer.topics() if t.startswith(prefix))
    finally:
        await consumer.stop()


async def topic_hits(settings) -> dict[str, int]:
    found = {}
    for topic in await topics_of_the_run(settings):
        records = await read_topic(settings, topic)
        count = sum(hits_in((r.key or b"") + (r.value or b"") + b"".join(v for _, v in r.headers or []))
                    for r in records)
        if count:
            found[topic] = count
    return found


def collection_hits(settings) -> dict[str, int]:
    client = MongoClient(settings.mongo_url)
    try:
        database = client[settings.mongo_database]
        return {name: count for name in database.list_collection_names()
                if (count := sum(hits_in(bson.encode(doc)) for doc in database[name].find()))}
    finally:
        client.close()


def life(code: str, at: datetime) -> list[dict]:
    applicant = {"name": NAME, "phone": PHONE, "sms_opt_in": True}
    receipt = event("dossier.received", code, at, applicant=applicant)
    forged = event("dossier.received", code, at - timedelta(days=1), applicant=applicant) | {
        "source": "urn:motcua:40"}  # another source's receipt: dead-lettered (finding 1), with the phone
    return [receipt, forged, event("dossier.resolved", code, at + timedelta(minutes=30)),
            event("dossier.returned", code, at + timedelta(minutes=40))]


def test_the_phone_and_name_are_ciphertext_on_kafka_and_unreadable_anywhere_after_retention(stack, pipeline):
    stack.ensure("kannel")
    processing = pipeline.add_processing().start()
    notifications = start_notifications(pipeline)
    now = datetime.now(UTC)
    code = dossier_code(now, sequence=int(TOKEN[:4], 16) % 10000)
    pipeline.post(life(code, now - timedelta(hours=2)))
    wait_until(lambda: (m := messages(notifications, code)) and m[0]["status"] == "delivered", timeout=60,
               message="the receipt's SMS delivered")
    view = wait_until(lambda: (a := httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR)
                               ).status_code == 200 and a.json()["state"] == "returned" and a.json(),
                      message="the dossier returned")
    assert view["applicant"]["name"] == NAME and view["applicant"]["phone"].endswith(PHONE[-2:])
    lookup = httpx.get(f"{processing.url}/v1/lookup/{code}", params={"phone4": PHONE[-4:]})
    assert lookup.status_code == 200, lookup.text

    # On Kafka (the receipt, its dead letter, the status records), only ciphertext from the start.
    assert asyncio.run(topic_hits(pipeline.settings)) == {}

    # Past retention: processing's sweep erases the key at start; notifications' purge the SMS bodies.
    processing.stop()
    notifications.stop()
    offset = str(timedelta(days=RETENTION_DAYS + 2).total_seconds())
    later = pipeline.add_processing(DOSSIER_CLOCK_OFFSET_SECONDS=offset).start()
    notifications = start_notifications(pipeline, DOSSIER_CLOCK_OFFSET_SECONDS=offset)
    wait_until(lambda: not collection_hits(pipeline.settings), timeout=60, message="nothing readable in the database")

    assert asyncio.run(topic_hits(pipeline.settings)) == {}
    assert collection_hits(pipeline.settings) == {}
    for process in (pipeline.intake, processing, later, notifications):
        assert not hits_in(process.logs().encode()), process.name
    # Opening fails: the operator sees no name, the 4 digits no longer open the lookup.
    after = httpx.get(f"{later.url}/v1/dossiers/{code}", headers=OPERATOR).json()
    assert after["applicant"]["name"] is None and after["applicant"]["phone"] is None
    assert httpx.get(f"{later.url}/v1/lookup/{code}", params={"phone4": PHONE[-4:]}).status_code == 404
    assert_sealed_records_do_not_open(pipeline.settings, code)
    notifications.stop()


def assert_sealed_records_do_not_open(settings, code: str) -> None:
    from shared.personal import DossierKeys, opened_applicant
    from shared.events import parse_event_json

    records = asyncio.run(read_topic(settings, settings.topic_events))
    receipts = [parse_event_json(r.value) for r in records if r.key == code.encode()]
    sealed = [e.data.applicant for e in receipts if e.type == "dossier.received"]
    assert sealed and all(a.sealed and a.phone is None and a.name is None for a in sealed)

    async def opened():
        from pymongo import AsyncMongoClient
        client = AsyncMongoClient(settings.mongo_url)
        try:
            keys = DossierKeys(client[settings.mongo_database])
            key = await keys.key_of(code)
            return key, [opened_applicant(key, code, a) for a in sealed]
        finally:
            await client.close()

    key, applicants = asyncio.run(opened())
    assert key is None and applicants == [None] * len(sealed)
