"""Processing on the real Kafka and FerretDB: the stored state is the reducer's, whatever happens."""

import asyncio
import json
import random
from datetime import datetime, timedelta

import httpx
from aiokafka import AIOKafkaProducer

from tests.fixtures.sample import VN, dossier_code, event
from services.processing.app import with_open_state
from services.processing.history import view
from shared.contracts import DeadLetter, dead_letter_topic
from shared.kafka import client_options
from shared.calendar import WorkingCalendar
from shared.dossier import fold
from shared.events import parse_event
from tests.integration.conftest import OPERATOR, at_each_instant, read_topic, wait_until

CAL = WorkingCalendar.load()


def life(code: str, start: datetime, kind: str) -> list[dict]:
    """A dossier's events in time order, for a few kinds of life."""

    def at(hours: float) -> datetime:
        return start + timedelta(hours=hours)

    # Some are taken by another centre of the province (NĐ 118; v1.2 `received_by_unit`).
    elsewhere = {"received_by_unit": "000.00.12.H56"} if kind == "supplement" else {}
    steps = [event("dossier.received", code, at(0), processing_time={"value": 2, "unit": "working_days"}, **elsewhere)]
    steps.append(event("dossier.digitized", code, at(0.1)))
    if kind == "supplement":
        steps += [event("dossier.supplement_requested", code, at(2)), event("dossier.supplement_received", code, at(26))]
    if kind == "obligation":
        steps += [event("dossier.obligation_requested", code, at(3)), event("dossier.obligation_fulfilled", code, at(30))]
    if kind == "withdrawn":
        return [*steps, event("dossier.withdrawn", code, at(5))]
    if kind == "open":
        return steps
    return [
        *steps,
        event("dossier.resolved", code, at(40)),
        event("dossier.payment_completed", code, at(41)),
        event("dossier.returned", code, at(42)),
        event("dossier.rated", code, at(43)),
    ]


def histories(count: int, seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    start = datetime(2025, 7, 7, 8, 0, tzinfo=VN)
    kinds = ["plain", "supplement", "obligation", "withdrawn", "open"]
    result = {}
    for n in range(count):
        code = dossier_code(start, sequence=seed * 1000 + n)
        result[code] = life(code, start + timedelta(minutes=rng.randrange(0, 60 * 24 * 5)), kinds[n % len(kinds)])
    return result


def expected_view(events: list[dict], now: datetime) -> dict:
    return with_open_state(view(fold([parse_event(e) for e in events], CAL).dossier), now, CAL)


def wait_for_states(processing, expected: dict[str, list[dict]], timeout: float = 60) -> None:
    def all_there() -> bool:
        for code, events in expected.items():
            answer = httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR)
            if answer.status_code != 200 or answer.json() != expected_view(events, processing.clock()):
                return False
        return True

    wait_until(all_there, timeout=timeout, interval=0.5, message="processing's states equal the reducer's")


def metric(process, series: str) -> float:
    for line in httpx.get(f"{process.url}/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def status_events(settings) -> list[dict]:
    return [json.loads(r.value) for r in asyncio.run(read_topic(settings, settings.topic_status))]


@at_each_instant
def test_shuffled_events_with_duplicates_fold_to_the_reducers_state(pipeline):
    processing = pipeline.add_processing().start()
    expected = histories(25, seed=1)
    everything = [e for events in expected.values() for e in events]
    rng = random.Random(7)
    sent = everything + rng.sample(everything, 40)  # redeliveries by the one-stop-shop system
    rng.shuffle(sent)

    pipeline.post(sent, batch=37)

    wait_for_states(processing, expected)

    def last_announced() -> dict[str, tuple]:
        # One partition per dossier: its status events are in order, the last one is the latest.
        return {e["subject"]: (e["data"]["new"]["state"], e["data"]["new"]["due_at"])
                for e in status_events(pipeline.settings)}

    final = {code: (view["state"], view["due_at"])
             for code, view in ((c, expected_view(e, processing.clock())) for c, e in expected.items())}
    wait_until(lambda: last_announced() == final, timeout=30, message="the last status event of each dossier")
    assert "0912345678" not in processing.logs()  # the applicants' phone, in every receipt


def test_a_dossier_lookup_knows_only_real_codes(pipeline):
    processing = pipeline.add_processing().start()
    assert httpx.get(f"{processing.url}/v1/dossiers/000.00.38.H56-250707-9999", headers=OPERATOR).status_code == 404
    for code in ['{"$gt": ""}', ".*", "$where", "000.00.38.H56-251332-0001", "x" * 5000]:
        assert httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 400, code


def test_killed_between_the_write_and_the_commit_it_leaves_the_same_state(pipeline):
    doomed = pipeline.add_processing()
    doomed.module = ["tests.fixtures.faulty", "processing"]  # exits after its first write
    doomed.start()
    expected = histories(10, seed=2)
    pipeline.post([e for events in expected.values() for e in events])
    assert doomed.process.wait(timeout=60) == 3  # written to the database, not published, not committed

    processing = pipeline.add_processing().start()

    wait_for_states(processing, expected)
    # The outbox written with the state is published after the restart: every dossier is announced.
    wait_until(lambda: {e["subject"] for e in status_events(pipeline.settings)} == set(expected),
               timeout=30, message="every dossier announced on the status topic")


def test_poison_events_go_to_the_dead_letter_topic_while_the_partition_flows(pipeline):
    processing = pipeline.add_processing().start()
    start = datetime(2025, 7, 7, 9, 0, tzinfo=VN)
    code = dossier_code(start, sequence=3001)
    poisoned = [
        event("dossier.received", code, start),
        event("dossier.withdrawn", code, start + timedelta(hours=1)),
        event("dossier.resolved", code, start + timedelta(hours=2), id_="impossible"),  # after withdrawn
    ]
    pipeline.post(poisoned)

    async def inject_garbage() -> None:
        producer = AIOKafkaProducer(**client_options(pipeline.settings))
        await producer.start()
        try:
            for garbage in [b"\xff\xfe not json", b'{"specversion": "1.0"}', b"[]"]:
                await producer.send_and_wait(pipeline.settings.topic_events, garbage, key=code.encode())
        finally:
            await producer.stop()

    asyncio.run(inject_garbage())
    after = histories(5, seed=3) | {code: poisoned}
    pipeline.post([e for c, events in after.items() if c != code for e in events])

    wait_for_states(processing, after)
    # What the fold rejects: dossier-events.dlq (contract v1), with its reason.
    [rejected] = asyncio.run(read_topic(pipeline.settings, pipeline.settings.topic_dlq))
    assert DeadLetter.from_headers(rejected.headers).reason == "dossier.resolved cannot follow state withdrawn"
    assert json.loads(rejected.value)["id"] == "impossible"
    # What does not even parse: the group's own dead-letter topic, byte for byte, with its origin.
    topic = dead_letter_topic(pipeline.settings.topic_events, "processing")
    dead = asyncio.run(read_topic(pipeline.settings, topic))
    letters = [DeadLetter.from_headers(r.headers) for r in dead]
    assert sorted(r.value for r in dead) == sorted([b"\xff\xfe not json", b'{"specversion": "1.0"}', b"[]"])
    assert {(w.error, w.group, w.origin_topic) for w in letters} == {
        ("undecodable", "processing", pipeline.settings.topic_events)}
    assert all(w.reason and w.origin_offset is not None for w in letters)
    metrics = httpx.get(f"{processing.url}/metrics").text
    assert (f'dead_letters_total{{error="undecodable",group="processing",topic="{pipeline.settings.topic_events}"}} 3.0'
            in metrics)
    assert 'processing_events_total{outcome="dead_lettered"} 1.0' in metrics


def test_two_instances_in_one_group_share_the_partitions(pipeline):
    first = pipeline.add_processing().start()
    second = pipeline.add_processing().start()
    wait_until(
        lambda: metric(first, "processing_assigned_partitions") + metric(second, "processing_assigned_partitions") == 3
        and metric(second, "processing_assigned_partitions") > 0,
        message="the group shares the three partitions",
    )
    expected = histories(40, seed=4)

    pipeline.post([e for events in expected.values() for e in events])

    wait_for_states(first, expected)

    def applied(process) -> float:
        return metric(process, 'processing_events_total{outcome="applied"}')

    assert applied(first) > 0 and applied(second) > 0
    assert applied(first) + applied(second) == sum(len(events) for events in expected.values())


def test_events_whose_receipt_never_comes_are_dead_lettered_after_the_limit(pipeline):
    processing = pipeline.add_processing(
        DOSSIER_PROCESSING_WAITING_LIMIT_HOURS=str(1 / 3600), DOSSIER_PROCESSING_SWEEP_INTERVAL_SECONDS="0.5"
    ).start()
    start = datetime(2025, 7, 7, 9, 0, tzinfo=VN)
    orphan = dossier_code(start, sequence=4001)
    pipeline.post([event("dossier.resolved", orphan, start, id_="orphan-1")])

    def dead_letters() -> list:
        return asyncio.run(read_topic(pipeline.settings, pipeline.settings.topic_dlq))

    [dead] = wait_until(dead_letters, timeout=30, message="the orphan event in the dead-letter topic")
    assert dict(dead.headers)["dlq-reason"].decode() == f"no dossier.received for {orphan} within 0.000277778 hours"
    assert json.loads(dead.value)["id"] == "orphan-1"
    assert httpx.get(f"{processing.url}/v1/dossiers/{orphan}", headers=OPERATOR).status_code == 404
