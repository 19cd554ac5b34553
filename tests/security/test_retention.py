"""Finding 6: personal data kept forever. The applicant's name and phone travelled in clear in
`dossier.received` (on `dossier-events`, its dead-letter topics, processing's stored history) and in
processing's status records on `dossier-status`, which Kafka keeps forever. Now intake seals them under
a key of the dossier's own, and processing erases the key at retention (crypto-shredding,
docs/security.md "Retention of personal data"): after it, no topic, dead-letter topic, collection nor
service log holds them readable. Deterministic: the clock is moved past retention and the sweep runs at
start; nothing waits on Kafka's log cleaner."""

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import bson
import httpx
from pymongo import MongoClient

from shared.kafka import client_options
from tests.fixtures.sample import dossier_code, event
from tests.integration.conftest import (ROOT, SECRETS, OPERATOR, ServiceProcess, read_topic, service, settings_env,
                                        wait_until)
from tests.integration.test_notifications import messages, start_notifications

RETENTION_DAYS = 90  # DOSSIER_PERSONAL_RETENTION_DAYS's default
IDLE_DAYS = 365  # DOSSIER_PERSONAL_IDLE_DAYS's default


def a_citizen() -> tuple[str, str, str]:
    """(token, name, phone) of a citizen no other test has: the token, in the name, is ASCII whatever
    way the name is written."""
    token = uuid.uuid4().hex[:6] + "qz"
    return token, f"Lê Thị Quên {token}", "09" + "".join(secrets.choice("0123456789") for _ in range(8))


TOKEN, NAME, PHONE = a_citizen()
TOKEN2, NAME2, PHONE2 = a_citizen()  # the export and erasure test's
TOKEN3, NAME3, PHONE3 = a_citizen()  # the abandoned dossier's
TOKEN4, NAME4, PHONE4 = a_citizen()  # a dossier someone else sends a receipt for (not erased: not in FORMS)
TOKEN5, NAME5, PHONE5 = a_citizen()  # a dossier stored open before the reviews existed


def readable_forms(token: str, name: str, phone: str) -> list[re.Pattern[bytes]]:
    """The phone and the name in any form they could be written in: 09…, 849…, +84 9…, with dots or
    spaces, the name as UTF-8, JSON-escaped or without its accents (the token in it). A masked phone
    (its last digits) is not the phone."""
    digits = phone[1:]  # the national number, in every form: 0…, 84…, +84…
    return [re.compile(r"[ .\-]?".join(digits).encode()), re.compile(token.encode()),
            re.compile(re.escape(name.encode())), re.compile(re.escape(json.dumps(name).encode()))]


FORMS = [form for citizen in [(TOKEN, NAME, PHONE), (TOKEN2, NAME2, PHONE2), (TOKEN3, NAME3, PHONE3),
                               (TOKEN5, NAME5, PHONE5)] for form in readable_forms(*citizen)]


def hits_in(blob: bytes, forms: list[re.Pattern[bytes]] | None = None) -> bool:
    return any(form.search(blob) for form in (FORMS if forms is None else forms))


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


async def topic_hits(settings, forms: list[re.Pattern[bytes]] | None = None) -> dict[str, int]:
    """Per topic of the run, its records holding a readable form (FORMS unless given)."""
    found = {}
    for topic in await topics_of_the_run(settings):
        records = await read_topic(settings, topic)
        count = sum(hits_in((r.key or b"") + (r.value or b"") + b"".join(v for _, v in r.headers or []), forms)
                    for r in records)
        if count:
            found[topic] = count
    return found


def collection_hits(settings, forms: list[re.Pattern[bytes]] | None = None) -> dict[str, int]:
    """Per collection of the run's database, its documents holding a readable form (FORMS unless given)."""
    client = MongoClient(settings.mongo_url)
    try:
        database = client[settings.mongo_database]
        return {name: count for name in database.list_collection_names()
                if (count := sum(hits_in(bson.encode(doc), forms) for doc in database[name].find()))}
    finally:
        client.close()


def life(code: str, at: datetime, name: str = NAME, phone: str = PHONE) -> list[dict]:
    applicant = {"name": name, "phone": phone, "sms_opt_in": True}
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


def received_open(pipeline, token: str, name: str, phone: str) -> tuple[ServiceProcess, str, datetime]:
    """A processing of the test's, and the code of a dossier received two hours ago (then nothing), once it is
    processed: its lookup opens with the phone's 4 digits. With the instant it was posted."""
    processing = pipeline.add_processing().start()
    now = datetime.now(UTC)
    code = dossier_code(now, sequence=int(token[:4], 16) % 10000)
    pipeline.post(life(code, now - timedelta(hours=2), name, phone)[:1])
    wait_until(lambda: httpx.get(f"{processing.url}/v1/lookup/{code}", params={"phone4": phone[-4:]}
                                 ).status_code == 200, message="the dossier processed")
    return processing, code, now


def erased_once_idle(pipeline, code: str, phone: str) -> ServiceProcess:
    """Processing started again with its clock past the idle and retention days; returned once the dossier's
    lookup no longer opens (its key erased by the sweep at start)."""
    offset = timedelta(days=IDLE_DAYS + RETENTION_DAYS + 2).total_seconds()
    later = pipeline.add_processing(DOSSIER_CLOCK_OFFSET_SECONDS=str(offset)).start()
    wait_until(lambda: httpx.get(f"{later.url}/v1/lookup/{code}", params={"phone4": phone[-4:]}
                                 ).status_code == 404, timeout=60, message="the idle dossier's key erased")
    return later


def fresh_intake(pipeline) -> None:
    """Another intake than the one that holds the dossiers' keys in memory (as another replica, or an hour later)."""
    pipeline.intake.stop()
    pipeline.intake = service("intake", pipeline.settings).start()


def run_module(settings, module: str, *args: str) -> dict:
    """`python -m <module> <args>` on the test's namespace, as an operator runs it; its JSON answer."""
    env = os.environ | settings_env(settings) | {"DOSSIER_SECRETS_DIR": str(SECRETS), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-6000:]
    return json.loads(done.stdout)


def test_a_dossier_left_open_loses_its_personal_data_once_abandoned(stack, pipeline):
    """A dossier that never ends (abandoned, or its end never sent) kept its key, so its applicant, forever: it
    is now reviewed DOSSIER_PERSONAL_IDLE_DAYS + DOSSIER_PERSONAL_RETENTION_DAYS after its receipt, and its key
    erased if it did not change since (shared/personal.py `Retention`). Its receipt sent again then gets no key."""
    processing, code, now = received_open(pipeline, TOKEN3, NAME3, PHONE3)
    processing.stop()

    later = erased_once_idle(pipeline, code, PHONE3)
    assert httpx.get(f"{later.url}/v1/dossiers/{code}", headers=OPERATOR).json()["applicant"] == {
        "name": None, "phone": None}
    assert collection_hits(pipeline.settings) == {}
    assert_sealed_records_do_not_open(pipeline.settings, code)

    # Its receipt sent again (a portal's snapshot), through an intake that never held its key: before, it made a
    # new key, which nothing erased, and sealed the name and phone under it.
    fresh_intake(pipeline)
    pipeline.post(life(code, now - timedelta(hours=2), NAME3, PHONE3)[:1])
    assert_sealed_records_do_not_open(pipeline.settings, code)
    assert asyncio.run(topic_hits(pipeline.settings)) == {} and collection_hits(pipeline.settings) == {}


def test_a_dossier_stored_open_before_the_reviews_existed_is_reviewed_once_the_command_has_run(stack, pipeline):
    """A store from before the reviews has open dossiers no review was scheduled for: `python -m services.processing
    review-open`, once, puts each up for one, from its last step."""
    processing, code, _ = received_open(pipeline, TOKEN5, NAME5, PHONE5)
    processing.stop()
    client = MongoClient(pipeline.settings.mongo_url)
    client[pipeline.settings.mongo_database].drop_collection("dossier_erasures")  # as a store before the reviews
    client.close()

    assert run_module(pipeline.settings, "services.processing", "review-open") == {"reviewed": 1}

    erased_once_idle(pipeline, code, PHONE5)
    assert collection_hits(pipeline.settings) == {}


def assert_sealed_records_do_not_open(settings, code: str) -> None:
    from shared.personal import DossierKeys, opened_applicant
    from shared.events import parse_event_json

    records = asyncio.run(read_topic(settings, settings.topic_events))
    receipts = [parse_event_json(r.value) for r in records if r.key == code.encode()]
    applicants = [e.data.applicant for e in receipts if e.type == "dossier.received"]
    assert applicants and all(a.phone is None and a.name is None for a in applicants)
    sealed = [a for a in applicants if a.sealed]  # a receipt sent again after the erasure carries none
    assert sealed

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


def personal_command(settings, action: str, phone: str) -> dict:
    """`python -m shared.personal <action> --phone …` on the test's namespace, as an operator runs it."""
    return run_module(settings, "shared.personal", action, "--phone", phone)


def test_a_citizen_exports_then_erases_what_is_held_for_their_number(stack, pipeline):
    """Nghị định 13/2023/NĐ-CP and the Law on Personal Data Protection: a citizen may see, and have
    erased, what is held for them. Their number, in any written form, finds their dossiers (the blind index)."""
    stack.ensure("kannel")
    processing = pipeline.add_processing().start()
    notifications = start_notifications(pipeline)
    try:
        now = datetime.now(UTC)
        code = dossier_code(now, sequence=int(TOKEN2[:4], 16) % 10000)
        pipeline.post(life(code, now - timedelta(hours=2), NAME2, PHONE2)[:1])
        wait_until(lambda: (m := messages(notifications, code)) and m[0]["status"] == "delivered", timeout=60,
                   message="the receipt's SMS delivered")
        wait_until(lambda: httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 200,
                   message="the dossier processed")
        held = personal_command(pipeline.settings, "export", "+84 " + PHONE2[1:])
        assert [d["dossier_code"] for d in held["dossiers"]] == [code]
        assert held["dossiers"][0]["applicant"] == {"name": NAME2, "phone": PHONE2, "sms_opt_in": True}
        assert [m["to"] for m in held["messages"]] == ["+84" + PHONE2[1:]] and code in held["messages"][0]["text"]

        erased = personal_command(pipeline.settings, "erase", PHONE2)
        assert erased == {"dossiers": 1, "keys": 1, "texts": 1}
        assert personal_command(pipeline.settings, "export", PHONE2) == {"dossiers": [], "messages": []}
        assert asyncio.run(topic_hits(pipeline.settings)) == {}
        assert collection_hits(pipeline.settings) == {}
        shown = httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).json()["applicant"]
        assert shown == {"name": None, "phone": None}
        assert messages(notifications, code)[0]["to"] is None
    finally:
        notifications.stop()


def test_a_receipt_sent_for_someone_elses_dossier_gives_its_phone_neither_their_data_nor_their_erasure(stack, pipeline):
    """Any sender's receipt lists its dossier in the citizens' index for the phone it gives, at intake, before
    processing refuses a foreign one (finding 1): `export --phone` of that phone opened the real applicant's name
    and phone, and `erase --phone` erased their key. Now both act only on the dossiers whose applicant, as
    processing accepted it, has that number."""
    processing, code, now = received_open(pipeline, TOKEN4, NAME4, PHONE4)
    other = "09" + "".join(secrets.choice("0123456789") for _ in range(8))
    forged = event("dossier.received", code, now - timedelta(hours=1),
                   applicant={"name": "Kẻ Giả Mạo", "phone": other, "sms_opt_in": False}) | {"source": "urn:motcua:40"}
    fresh_intake(pipeline)
    pipeline.post([forged])

    assert personal_command(pipeline.settings, "export", other) == {"dossiers": [], "messages": []}
    assert personal_command(pipeline.settings, "erase", other) == {"dossiers": 0, "keys": 0, "texts": 0}
    held = personal_command(pipeline.settings, "export", PHONE4)
    assert [(d["dossier_code"], d["applicant"]["name"]) for d in held["dossiers"]] == [(code, NAME4)]
    assert httpx.get(f"{processing.url}/v1/lookup/{code}", params={"phone4": PHONE4[-4:]}).status_code == 200

    # Its citizen erased: it is listed for neither number. Before, only the first number's listing went, and the
    # index still told which dossier the other number was given for.
    fresh_intake(pipeline)
    pipeline.post([forged])  # listed for that number again (its erasure above dropped its whole entry)
    assert listings_of(pipeline.settings, code) == 2
    assert personal_command(pipeline.settings, "erase", PHONE4) == {"dossiers": 1, "keys": 1, "texts": 0}
    assert listings_of(pipeline.settings, code) == 0


def listings_of(settings, code: str) -> int:
    """The links of the citizens' index that list this dossier (their blobs are JSON: shared.mongo.pack)."""
    client = MongoClient(settings.mongo_url)
    try:
        links = client[settings.mongo_database]["citizen_dossiers"].find()
        return sum(json.loads(link["blob"]).get("dossier") == code for link in links)
    finally:
        client.close()
