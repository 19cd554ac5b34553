"""Intake against the real Kafka: what is accepted is on `dossier-events`, what is refused is not."""

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import orjson
import pytest
from pymongo import AsyncMongoClient

from shared.mongo import Chain
from shared.personal import DossierKeys, unseal
from tests.fixtures.sample import VN, dossier_code, dossier_history, event
from tests.integration.conftest import (ANY_SOURCE_KEY, PROVINCE_KEY, at_each_instant, end_offsets, fuzz, read_topic,
                                         service, wait_until)

SINGLE = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def auth(key: str = ANY_SOURCE_KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def post(intake, body, headers=SINGLE, key=ANY_SOURCE_KEY) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{intake.url}/v1/events", content=content, headers=headers | auth(key), timeout=30)


def published_since(settings, offsets) -> list:
    return asyncio.run(read_topic(settings, settings.topic_events, since=offsets))


def opened(settings, written: dict) -> dict:
    """An event as written to Kafka, its receipt's applicant opened with the dossier's key from the
    database (intake seals it: shared/personal.py)."""
    sealed = (written.get("data") or {}).get("applicant", {}).get("sealed")
    if sealed is None:
        return written

    async def key() -> bytes | None:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            return await DossierKeys(client[settings.mongo_database]).key_of(written["subject"])
        finally:
            await client.close()

    clear = unseal(asyncio.run(key()), written["subject"], sealed)
    assert clear is not None and "phone" not in written["data"]["applicant"]
    applicant = clear | {k: v for k, v in written["data"]["applicant"].items() if k != "sealed"}
    return written | {"data": written["data"] | {"applicant": applicant}}


def test_a_batch_is_on_the_topic_in_order_per_dossier_with_the_cloudevents_binding(intake, settings):
    before = asyncio.run(end_offsets(settings, settings.topic_events))
    start = datetime(2025, 7, 1, 8, 0, tzinfo=VN)
    histories = [dossier_history(dossier_code(sequence=n), start + timedelta(minutes=n)) for n in range(20)]
    # Interleave the dossiers' events as a one-stop-shop system would send them.
    batch = [e for step in zip(*histories, strict=True) for e in step]

    answer = post(intake, batch, BATCH)

    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": len(batch)}
    records = published_since(settings, before)
    assert len(records) == len(batch)
    for record in records:
        assert dict(record.headers) == {"content-type": b"application/cloudevents+json"}
        assert record.key.decode() == json.loads(record.value)["subject"]
    for history in histories:
        code = history[0]["subject"]
        on_topic = [json.loads(r.value) for r in records if r.key.decode() == code]
        assert [e["id"] for e in on_topic] == [e["id"] for e in history]
        assert len({r.partition for r in records if r.key.decode() == code}) == 1
    first = json.loads(records[0].value)
    # The event exactly as sent, with the instant it reached intake (its sync, docs/domain.md §6).
    assert settings.clock() - datetime.fromisoformat(first.pop("intaketime")) < timedelta(minutes=1)
    assert opened(settings, first) in batch


@at_each_instant
def test_the_arrival_is_stamped_by_the_stacks_clock(pipeline):
    settings = pipeline.settings
    before = asyncio.run(end_offsets(settings, settings.topic_events))
    pipeline.post([event("dossier.rated")])
    [record] = published_since(settings, before)
    arrived = datetime.fromisoformat(json.loads(record.value)["intaketime"])
    assert timedelta(0) <= settings.clock() - arrived < timedelta(minutes=1)


def test_a_receipt_sent_again_to_two_replicas_is_listed_once_under_one_key(intake, settings):
    """A portal re-sends each dossier's receipt with every snapshot: the citizen's index in FerretDB lists it once,
    whether the replica holds its key in memory or reads it, and whichever of concurrent requests wins."""
    phone = "09" + uuid.uuid4().int.__str__()[-8:]
    day = datetime(2024, 2, 29, tzinfo=VN)  # no other test's dossiers: they would be other citizens'
    first, second = dossier_code(day, sequence=4242), dossier_code(day, sequence=4243)
    receipts = {code: event("dossier.received", code, applicant={"name": "Lê Văn Gửi", "phone": phone})
                for code in (first, second)}
    other = service("intake", settings).start()  # a second replica, nothing in its memory
    try:
        for replica in (intake, intake, other, other, intake):
            assert post(replica, receipts[first]).status_code == 202
        with ThreadPoolExecutor(4) as pool:  # a new dossier of the same citizen, sent at once to both
            answers = list(pool.map(lambda replica: post(replica, receipts[second]), (intake, other) * 2))
        assert [a.status_code for a in answers] == [202] * 4
    finally:
        other.stop()

    async def stored() -> tuple[dict, list]:
        client = AsyncMongoClient(settings.mongo_url)
        try:
            database = client[settings.mongo_database]
            keys = {code: await database["dossier_keys"].find_one({"_id": code}) for code in (first, second)}
            return keys, await Chain(database["citizen_dossiers"]).read(keys[first]["citizen"])
        finally:
            await client.close()

    keys, links = asyncio.run(stored())
    assert keys[first]["citizen"] == keys[second]["citizen"]
    assert [link["dossier"] for link in links] == [first, second]


def test_a_single_event_as_plain_json_is_accepted(intake, settings):
    before = asyncio.run(end_offsets(settings, settings.topic_events))
    sent = event("dossier.rated", id_="single-1")
    answer = post(intake, sent, {"content-type": "application/json"})
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 1}
    assert [{k: v for k, v in json.loads(r.value).items() if k != "intaketime"}
            for r in published_since(settings, before)] == [sent]


def test_an_invalid_event_in_a_batch_publishes_nothing_and_says_where(intake, settings):
    before = asyncio.run(end_offsets(settings, settings.topic_events))
    batch = [event("dossier.received"), event("dossier.received", channel="fax"), event("dossier.rated")]

    answer = post(intake, batch, BATCH)

    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"index": 1, "field": "data.channel", "message": "Input should be 'direct', 'online' or 'postal'"}
    ]
    assert published_since(settings, before) == []


@pytest.mark.parametrize(
    ("headers", "body", "key", "status"),
    [
        (SINGLE, event("dossier.rated"), "wrong-key", 401),
        ({"content-type": "text/plain"}, event("dossier.rated"), ANY_SOURCE_KEY, 415),
        ({}, event("dossier.rated"), ANY_SOURCE_KEY, 415),
        (SINGLE, b"{not json", ANY_SOURCE_KEY, 400),
        (SINGLE, b'{"id": "\xff\xfe"}', ANY_SOURCE_KEY, 400),  # invalid UTF-8
        (SINGLE, b"[" * 5000 + b"]" * 5000, ANY_SOURCE_KEY, 400),  # deeper than any event
        (SINGLE, [event("dossier.rated")], ANY_SOURCE_KEY, 400),  # an array sent as one event
        (BATCH, event("dossier.rated"), ANY_SOURCE_KEY, 400),  # one event sent as a batch
        (BATCH, [event("dossier.rated")] * 1001, ANY_SOURCE_KEY, 413),
        (SINGLE, event("dossier.stopped", reason="x" * 1_100_000), ANY_SOURCE_KEY, 413),
        (SINGLE, event("dossier.rated") | {"source": "urn:motcua:26"}, PROVINCE_KEY, 403),
    ],
    ids=["bad-key", "text-plain", "no-content-type", "malformed", "invalid-utf8", "deep-json",
         "array-as-single", "object-as-batch", "batch-over-1000", "body-over-1MiB", "source-not-allowed"],
)
def test_refusals_publish_nothing(intake, settings, headers, body, key, status):
    before = asyncio.run(end_offsets(settings, settings.topic_events))
    answer = post(intake, body, headers, key)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
    assert published_since(settings, before) == []


def test_a_province_key_may_send_its_own_source(intake):
    assert post(intake, event("dossier.rated"), key=PROVINCE_KEY).status_code == 202


def test_health_readiness_and_metrics(intake):
    assert httpx.get(f"{intake.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{intake.url}/readyz").status_code == 200
    post(intake, event("dossier.digitized"))
    metrics = httpx.get(f"{intake.url}/metrics").text
    assert 'intake_events_total{outcome="accepted",type="dossier.digitized"}' in metrics
    assert "intake_kafka_available 1.0" in metrics
    assert 'intake_requests_total{status="202"}' in metrics


def test_logs_mask_phone_numbers(intake):
    post(intake, event("dossier.received", applicant={"phone": "0987654321", "sms_opt_in": True}))
    post(intake, event("dossier.received", applicant={"phone": "0987654321"}, channel="fax"))
    assert "0987654321" not in intake.logs()


def test_kafka_down_answers_503_and_accepts_again_once_it_is_back(intake, settings, stack):
    sent = event("dossier.received", id_="outage-1")
    stack.run("kafka", "stop")
    try:
        down = post(intake, sent)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert httpx.get(f"{intake.url}/readyz").status_code == 503
    finally:
        stack.run("kafka", "start")
    # The caller retries until accepted; the retries are harmless (deduplicated downstream by source+id).
    wait_until(lambda: post(intake, sent).status_code == 202, timeout=60, message="intake accepting again")
    records = published_since(settings, None)
    assert any(json.loads(r.value)["id"] == "outage-1" for r in records)
    assert httpx.get(f"{intake.url}/readyz").status_code == 200


def test_generated_requests_find_no_server_error_and_publish_only_what_was_accepted(intake, settings):
    """schemathesis generates requests from intake's own OpenAPI document: none may get a 5xx, and
    what is on the topic afterwards is exactly the events of the requests answered 202."""
    before = asyncio.run(end_offsets(settings, settings.topic_events))
    accepted = []

    def count_accepted(ctx, response, case) -> None:
        if response.status_code == 202:
            accepted.extend(case.body if isinstance(case.body, list) else [case.body])

    assert fuzz(intake.url, auth(), examples=60, checks=(count_accepted,)) >= 1
    published = [json.loads(r.value)["id"] for r in published_since(settings, before)]
    assert sorted(published) == sorted(e["id"] for e in accepted)
