"""Nothing lost, nothing counted twice, no SMS sent twice: a known event stream through the whole
real pipeline (intake → Kafka → processing → metrics and notifications → Kannel), with a fault
injected while it flows; then the final state, the report API and the SMS records are compared
with the reducer's expectation.
"""

import asyncio
import json
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import date

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.dossier import fold
from shared.events import parse_event
from shared.report import commune_report
from tests.integration.conftest import ANY_SOURCE_KEY, OPERATOR, STACK_DIR, RUN_ID, Pipeline, ServiceProcess, read_topic, \
    service, wait_until
from tests.integration.test_metrics import CAL, COMMUNE, FAST, counted
from shared.contracts import dead_letter_topic
from shared.kafka import client_options
from tests.integration.test_notifications import messages, received_by_smsc, start_notifications
from tests.integration.test_processing import histories, wait_for_states

DOSSIERS = 60


def phone(n: int) -> str:
    return f"0913{n:06d}"


def lives(seed: int) -> dict[str, list[dict]]:
    """DOSSIERS lives of five kinds, each applicant with a number of their own (no daily limit in the way)."""
    out = histories(DOSSIERS, seed=seed)
    for n, events in enumerate(out.values()):
        events[0]["data"]["applicant"] = {"name": "Trần Thị Bình", "phone": phone(n), "sms_opt_in": True}
    return out


@dataclass
class World:
    """The whole pipeline on a namespace of its own."""

    pipeline: Pipeline
    metrics: ServiceProcess
    notifications: ServiceProcess

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.pipeline.intake, *self.pipeline.processing, self.metrics, self.notifications]


@pytest.fixture
def world(stack, pipeline):
    stack.ensure("kannel")
    pipeline.add_processing().start()
    # Gateway retries every 2 s at most, and for long enough to outlast the outages below (in
    # production: 5 s doubling up to 10 min, 8 attempts).
    notifications = start_notifications(pipeline, DOSSIER_NOTIFICATIONS_MAX_ATTEMPTS="60")
    running = World(pipeline, service("metrics", pipeline.settings, **FAST).start(), notifications)
    yield running
    running.metrics.stop()
    running.notifications.stop()
    for component in ("kafka", "ferretdb", "kannel"):  # a test that failed half-way leaves the stack whole
        if not stack.running(component):
            stack.run(component, "start")


@dataclass(eq=False)
class Poster(threading.Thread):
    """The one-stop-shop system: posts batches at a steady pace and retries what was not accepted."""

    url: str
    events: list[dict]
    batch: int = 20
    pause: float = 0.4
    refused: int = 0  # 503: Kafka away
    unreachable: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        headers = {"authorization": f"Bearer {ANY_SOURCE_KEY}", "content-type": "application/cloudevents-batch+json"}
        for i in range(0, len(self.events), self.batch):
            while True:
                try:
                    answer = httpx.post(f"{self.url}/v1/events", json=self.events[i: i + self.batch], headers=headers,
                                        timeout=30)
                except httpx.HTTPError:
                    self.unreachable += 1
                else:
                    if answer.status_code == 202:
                        break
                    if answer.status_code != 503:
                        self.errors.append(f"{answer.status_code} {answer.text}")
                        return
                    self.refused += 1
                time.sleep(0.5)
            time.sleep(self.pause)

    def finish(self, timeout: float = 120) -> "Poster":
        self.join(timeout)
        assert not self.is_alive(), "the poster did not finish"
        assert not self.errors, self.errors
        return self


def post_while(world: World, expected: dict[str, list[dict]], seed: int, **pace) -> Poster:
    """Every event of `expected` once, plus 30 redeliveries, shuffled, posted in the background."""
    rng = random.Random(seed)
    everything = [e for events in expected.values() for e in events]
    sent = everything + rng.sample(everything, 30)
    rng.shuffle(sent)
    poster = Poster(world.pipeline.intake.url, sent, **pace)
    poster.start()
    return poster


def assert_settled(world: World, expected: dict[str, list[dict]], processing: ServiceProcess | None = None) -> None:
    """The final state everywhere equals the reducer's, and no applicant's number leaked."""
    wait_for_states(processing or world.pipeline.processing[-1], expected, timeout=180)

    wait_until(lambda: counted(world.metrics) == len(expected), timeout=120, message="every dossier counted")
    folds = [[parse_event(e) for e in events] for events in expected.values()]
    now = world.metrics.clock()  # the instant metrics judges open dossiers at, as its service does
    reference = commune_report([fold(f, CAL, as_of=now).dossier for f in folds], date(2025, 7, 1),
                               date(2025, 12, 31), now, CAL)
    answer = httpx.get(f"{world.metrics.url}/v1/reports/communes/{COMMUNE}",
                       params={"from": "2025-07-01", "to": "2025-12-31", "as_of": now.isoformat()}, headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    assert {k: answer.json()[k] for k in reference} == json.loads(json.dumps(reference))

    def all_delivered() -> bool:
        return all(m["status"] == "delivered" for code in expected for m in messages(world.notifications, code))

    wait_until(all_delivered, timeout=180, interval=1, message="every SMS delivered")
    for code in expected:
        ours = messages(world.notifications, code)
        smsc = received_by_smsc(code)
        assert ours, code  # at least the receipt
        assert len(smsc) == len(ours) == len(set(smsc)), (code, smsc)  # each message once, none twice

    assert_no_phone_numbers(world, expected)


def assert_no_phone_numbers(world: World, expected: dict[str, list[dict]]) -> None:
    """No applicant's number, in any form (0913…, +84913…, 84913…), in a log line or on /metrics."""
    numbers = [e[0]["data"]["applicant"]["phone"][1:] for e in expected.values()]
    logs = {p.log_path: p.log_path.read_text() for p in world.processes}
    logs |= {path: path.read_text() for path in (STACK_DIR / "logs").glob(f"*-{RUN_ID}-*.log")}
    assert all(logs.values())
    for process in world.processes:
        if process.process and process.process.poll() is None:
            logs[f"{process.name} /metrics"] = httpx.get(f"{process.url}/metrics").text
    leaks = [(where, n) for where, text in logs.items() for n in numbers if n in text]
    assert not leaks, leaks[:5]


def test_processing_killed_at_random_points_repeatedly(world):
    expected = lives(seed=11)
    [processing] = world.pipeline.processing
    poster = post_while(world, expected, seed=11)
    poisoned = inject_poison(world, count=3)
    rng = random.Random(11)
    kills = 0
    while poster.is_alive() or kills < 3:
        time.sleep(rng.uniform(0.3, 2.0))
        processing.stop(signal.SIGKILL)
        kills += 1
        processing.start()
    poster.finish()
    assert_settled(world, expected)

    settings = world.pipeline.settings
    dead = asyncio.run(read_topic(settings, dead_letter_topic(settings.topic_events, "processing")))
    assert {r.value for r in dead} == poisoned  # each poison dead-lettered (maybe twice if killed between)


def inject_poison(world: World, count: int) -> set[bytes]:
    """Undecodable records written straight to the events topic, as a broken producer would."""
    garbage = {f"\xff not an event {n}".encode("latin-1") for n in range(count)}

    async def write() -> None:
        producer = AIOKafkaProducer(**client_options(world.pipeline.settings))
        await producer.start()
        try:
            for n, value in enumerate(sorted(garbage)):
                await producer.send_and_wait(world.pipeline.settings.topic_events, value, key=f"poison-{n}".encode())
        finally:
            await producer.stop()

    asyncio.run(write())
    return garbage


def test_two_processing_replicas_one_killed_mid_batch(world):
    first = world.pipeline.processing[0]
    second = world.pipeline.add_processing(DOSSIER_PROCESSING_MAX_BATCH="5").start()
    expected = lives(seed=12)
    poster = post_while(world, expected, seed=12, pause=0.2)
    time.sleep(2)
    first.stop(signal.SIGKILL)  # the group gives its partitions to the survivor after the session timeout
    poster.finish()
    assert_settled(world, expected, processing=second)


def test_kafka_restarted_while_intake_takes_events(stack, world):
    expected = lives(seed=13)
    poster = post_while(world, expected, seed=13, pause=0.3)
    time.sleep(1.5)
    stack.run("kafka", "stop")
    wait_until(lambda: poster.refused + poster.unreachable > 0, timeout=60, message="intake refusing while Kafka is away")
    stack.run("kafka", "start")
    poster.finish(timeout=180)
    assert poster.refused > 0  # 503 during the outage; the caller's retries were harmless
    assert_settled(world, expected)


def test_ferretdb_restarted_while_processing_writes(stack, world):
    expected = lives(seed=14)
    poster = post_while(world, expected, seed=14)
    time.sleep(2)
    stack.run("ferretdb", "stop")
    time.sleep(4)
    stack.run("ferretdb", "start")
    poster.finish()
    assert_settled(world, expected)


def test_metrics_down_for_a_while_catches_up(world):
    expected = lives(seed=15)
    world.metrics.stop()
    post_while(world, expected, seed=15, pause=0.1).finish()
    wait_for_states(world.pipeline.processing[0], expected, timeout=120)
    world.metrics.start()
    assert_settled(world, expected)


def test_kannel_down_then_back(stack, world):
    expected = lives(seed=16)
    stack.run("kannel", "stop")
    post_while(world, expected, seed=16, pause=0.1).finish()
    time.sleep(3)  # messages are tried and refused meanwhile
    stack.run("kannel", "start")
    assert_settled(world, expected)
