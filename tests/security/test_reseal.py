"""Finding 6, what was left of it: receipts published before v1.3 carried the applicant's name and phone in
clear, and processing copied them into its status records, its stored history and its view. Kafka keeps them
forever, and no key of the dossier's own could shred them. `python -m services.processing reseal`, once, with the
consumers stopped, seals them on every topic and in the store, gives each dossier its key (listed for its
citizen) and puts it up for erasure; a dossier already past its retention keeps nothing. No consumer group
reads a record twice, nor misses one."""

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import client_options
from tests.fixtures.sample import dossier_code, event
from tests.integration.conftest import (OPERATOR, ROOT, SECRETS, STACK_DIR, read_topic, settings_env,
                                        wait_until)
from tests.security import test_retention as retention
from tests.security.test_retention import RETENTION_DAYS, a_citizen, personal_command, readable_forms, run_module

OLD = a_citizen()  # ended long ago: past retention when the command runs
WITHDRAWN = a_citizen()  # withdrawn long ago (no end): past retention too
ENDED = a_citizen()  # ended a day ago
OPEN = a_citizen()  # received an hour ago, still open
FORMS = [form for citizen in (OLD, WITHDRAWN, ENDED, OPEN) for form in readable_forms(*citizen)]


def topic_hits(settings) -> dict[str, int]:
    return asyncio.run(retention.topic_hits(settings, FORMS))


def collection_hits(settings) -> dict[str, int]:
    return retention.collection_hits(settings, FORMS)


def lives(now: datetime) -> dict[str, list[dict]]:
    """Code → events as intake published them before v1.3: the applicant in clear; for the dossier ended a day
    ago, another source's receipt too (dead-lettered with its phone)."""
    out = {}
    for (token, name, phone), received, ended in [(OLD, now - timedelta(days=200), now - timedelta(days=199)),
                                                 (WITHDRAWN, now - timedelta(days=201), now - timedelta(days=200)),
                                                 (ENDED, now - timedelta(days=2), now - timedelta(days=1)),
                                                 (OPEN, now - timedelta(hours=1), None)]:
        code = dossier_code(received, sequence=int(token[:4], 16) % 10000)
        applicant = {"name": name, "phone": phone, "sms_opt_in": True}
        events = [event("dossier.received", code, received, applicant=applicant)]
        if token == WITHDRAWN[0]:
            events.append(event("dossier.withdrawn", code, ended))
        elif ended:
            events += [event("dossier.received", code, received - timedelta(hours=1), applicant=applicant) | {
                "source": "urn:motcua:40"}, event("dossier.resolved", code, ended - timedelta(hours=1)),
                event("dossier.returned", code, ended)]
        out[code] = events
    return out


async def publish_in_clear(settings, lives_: dict[str, list[dict]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for code, events in lives_.items():
            for one in events:
                await producer.send_and_wait(settings.topic_events, orjson.dumps(one), key=code.encode())
    finally:
        await producer.stop()


async def standing(settings, group: str) -> dict[TopicPartition, tuple[int, list[str]]]:
    """Per partition of the events' topic: the group's lag and the ids of the records it has still to read."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    since = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == settings.topic_events}
    unread = await read_topic(settings, settings.topic_events, since)
    return {p: [orjson.loads(r.value)["id"] for r in unread if r.partition == p] for p in since}


async def ends(settings) -> dict[TopicPartition, int]:
    """Where each partition of the run's topics ends now."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)
    try:
        partitions = [TopicPartition(topic, p) for topic in await retention.topics_of_the_run(settings)
                      for p in range(settings.partitions)]
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def overridden(settings, topics: set[str]) -> dict[str, str]:
    """`segment.ms` where a topic has it set (the command sets it while it copies)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        found = {}
        for topic in topics:
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            found |= {topic: value for *_, entries in response.resources for name, value, _, source, *_ in entries
                      if name == "segment.ms" and source == 1}
        return found
    finally:
        await admin.close()


async def starts(settings, tp: TopicPartition) -> int:
    """Where a partition starts now (the command deletes the records it copied: those before the old end)."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)
    try:
        return (await consumer.beginning_offsets([tp]))[tp]
    finally:
        await consumer.stop()


def segment_holding(tp: TopicPartition, offset: int) -> int:
    """The base offset of the broker's segment file that holds `offset` (its files are named by their first)."""
    bases = [int(f.stem) for f in (STACK_DIR / "data" / "kafka" / f"{tp.topic}-{tp.partition}").glob("*.log")]
    return max(base for base in bases if base <= offset)


async def commit_at_start(settings, group: str) -> None:
    """A group that has read nothing yet of the events' topic (a consumer behind, stopped)."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic_events, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        await consumer.commit(starts)
    finally:
        await consumer.stop()


def test_applicants_written_in_clear_before_v13_are_sealed_on_every_topic_and_in_the_store(stack, pipeline):
    group, behind = "processing", f"behind-{uuid.uuid4().hex[:8]}"  # processing's user may join its own group only
    processing = pipeline.add_processing().start()
    now = datetime.now(UTC)
    sent = lives(now)
    old, withdrawn, ended, opened = list(sent)
    asyncio.run(publish_in_clear(pipeline.settings, sent))
    for code in sent:
        wait_until(lambda code=code: httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR
                                               ).status_code == 200, message=f"{code} processed")
    wait_until(lambda: httpx.get(f"{processing.url}/v1/dossiers/{ended}", headers=OPERATOR).json()["state"]
               == "returned", message="the ended dossier returned")
    # The finding: names and phones in clear on the topics (receipts, the dead letter, status records) and in the store.
    before = topic_hits(pipeline.settings), collection_hits(pipeline.settings)
    assert set(before[0]) == {pipeline.settings.topic_events, pipeline.settings.topic_status, pipeline.settings.topic_dlq}
    assert {"dossier_links", "dossier_histories", "dossiers"} <= set(before[1])
    # Refused while processing consumes: nothing written.
    refused = subprocess.run([sys.executable, "-m", "services.processing", "reseal"], cwd=ROOT, capture_output=True,
                             env=os.environ | settings_env(pipeline.settings) | {"DOSSIER_SECRETS_DIR": str(SECRETS)},
                             timeout=60)
    assert refused.returncode != 0 and b"consumer groups processing are running" in refused.stderr, refused.stderr
    assert (topic_hits(pipeline.settings), collection_hits(pipeline.settings)) == before
    processing.stop()
    asyncio.run(commit_at_start(pipeline.settings, behind))
    stood = {g: asyncio.run(standing(pipeline.settings, g)) for g in (group, behind)}
    ended_at = asyncio.run(ends(pipeline.settings))

    done = run_module(pipeline.settings, "services.processing", "reseal")

    assert done["dossiers"] == {"sealed": 2, "past retention": 2}, done
    assert topic_hits(pipeline.settings) == {}
    assert collection_hits(pipeline.settings) == {}
    # Every group stands where it stood: the same records still to read, none twice.
    assert {g: asyncio.run(standing(pipeline.settings, g)) for g in (group, behind)} == stood
    assert all(ids == [] for ids in stood[group].values()) and sum(map(len, stood[behind].values())) == 11
    # The copies began segments of their own: the originals' files hold none, and go at the broker's next
    # retention check (Kafka deletes whole segments, below the log's start), the topics' settings as they were.
    copied = {tp: end for tp, end in ended_at.items() if asyncio.run(starts(pipeline.settings, tp)) == end > 0}
    assert len(copied) >= 5 and {tp: segment_holding(tp, end) for tp, end in copied.items()} == copied
    assert not asyncio.run(overridden(pipeline.settings, {tp.topic for tp in copied}))
    assert run_module(pipeline.settings, "services.processing", "reseal")["dossiers"] == {
        "sealed": 0, "past retention": 0}  # again: nothing left to do

    later = pipeline.add_processing().start()
    for code, (_, name, phone) in [(ended, ENDED), (opened, OPEN)]:
        view = httpx.get(f"{later.url}/v1/dossiers/{code}", headers=OPERATOR).json()
        assert view["applicant"]["name"] == name and view["applicant"]["phone"].endswith(phone[-2:])
        assert httpx.get(f"{later.url}/v1/lookup/{code}", params={"phone4": phone[-4:]}).status_code == 200
    assert httpx.get(f"{later.url}/v1/dossiers/{old}", headers=OPERATOR).json()["applicant"] == {"name": None, "phone": None}
    assert httpx.get(f"{later.url}/v1/lookup/{old}", params={"phone4": OLD[2][-4:]}).status_code == 404
    assert httpx.get(f"{later.url}/v1/dossiers/{withdrawn}", headers=OPERATOR).json()["applicant"] == {
        "name": None, "phone": None}  # withdrawn has no end: it left the open states then
    # Listed for their citizens: their rights reach them (the past one has nothing left to export).
    assert [d["dossier_code"] for d in personal_command(pipeline.settings, "export", ENDED[2])["dossiers"]] == [ended]
    assert personal_command(pipeline.settings, "export", OLD[2])["dossiers"] == []
    later.stop()

    # Put up for erasure: past the ended dossier's retention, its key goes at processing's start.
    offset = str(timedelta(days=RETENTION_DAYS + 2).total_seconds())
    last = pipeline.add_processing(DOSSIER_CLOCK_OFFSET_SECONDS=offset).start()
    wait_until(lambda: httpx.get(f"{last.url}/v1/lookup/{ended}", params={"phone4": ENDED[2][-4:]}
                                 ).status_code == 404, message="the ended dossier's key erased")
    assert not httpx.get(f"{last.url}/v1/dossiers/{ended}", headers=OPERATOR).json()["applicant"].get("name")
    assert httpx.get(f"{last.url}/v1/lookup/{opened}", params={"phone4": OPEN[2][-4:]}).status_code == 200
