"""A poison record never blocks a partition: every consumer on the real Kafka and FerretDB.

Hypothesis mixes good records of every kind, with any Unicode in every free-text field (reasons,
names, procedure names, what is missing), with records that cannot be handled: bytes that are not
JSON, records over the contract's limits, fields of the wrong type. They go to one partition (one
key), the bad between the good. Afterwards every good record is applied (or its SMS sent), every bad
one is in the group's dead-letter topic with a reason, and the consumer's lag is back to 0.
"""

import asyncio
import itertools
import json
from datetime import datetime, timedelta

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tests.fixtures.sample import VN, dossier_code, event
from shared.contracts import DeadLetter, dead_letter_topic
from shared.kafka import client_options
from shared.events import DossierEvent
from shared.consumer_app import ConsumerApp
from tests.integration.conftest import OPERATOR, ANY_SOURCE_KEY, namespace, read_topic, service, wait_until
from tests.integration.test_metrics import FAST
from tests.integration.test_processing import metric
from tests.integration.test_signature import documents, start_signature

TEXT = st.text(min_size=1, max_size=120)  # any Unicode but lone surrogates (not UTF-8)
START = datetime(2026, 2, 2, 9, 0, tzinfo=VN)
AUTH = {"authorization": f"Bearer {ANY_SOURCE_KEY}"}
EXAMPLES = settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
_sequence = itertools.count(1)


def life(texts: dict[str, str]) -> list[dict]:
    """A dossier received, a supplement asked (what is missing: any text), signed, resolved."""
    n = next(_sequence)
    code = dossier_code(START, sequence=n)
    at = lambda hours: START + timedelta(hours=hours)  # noqa: E731
    return [  # a number of its own: the daily limit per number holds across tests
        event("dossier.received", code, at(0), procedure_name=texts["procedure"],
              applicant={"name": texts["name"], "phone": f"0913{n:06d}", "sms_opt_in": True}),
        event("dossier.transferred", code, at(1), from_unit=texts["unit"], to_unit=texts["unit"][::-1]),
        event("dossier.supplement_requested", code, at(2), reason=texts["reason"]),
        event("dossier.supplement_received", code, at(3)),
        event("dossier.signature_requested", code, at(4), signer=texts["name"]),
        event("dossier.resolved", code, at(6), outcome="approved"),
    ]


LIVES = st.lists(st.fixed_dictionaries({"procedure": TEXT, "name": TEXT, "unit": TEXT, "reason": TEXT}),
                 min_size=1, max_size=3).map(lambda texts: [life(t) for t in texts])
# What no contract accepts: not JSON, over a limit, a field of the wrong type.
BAD = st.lists(st.one_of(
    st.binary(min_size=1, max_size=60).filter(lambda b: not _is_json(b)),
    st.builds(lambda n: orjson.dumps(event("dossier.supplement_requested", reason="x" * (2001 + n))),
              st.integers(0, 5000)),
    st.sampled_from([orjson.dumps(event("dossier.received", channel=5)),
                     orjson.dumps(event("dossier.resolved") | {"time": "yesterday"}),
                     orjson.dumps({"specversion": "1.0"}), b"[]", b"null"]),
), min_size=1, max_size=4)


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


def interleave(good: list[bytes], bad: list[bytes]) -> list[bytes]:
    """The bad records between the good ones, spread out."""
    out, step = [], max(1, len(good) // (len(bad) + 1))
    for n, value in enumerate(good):
        out.append(value)
        if bad and n % step == step - 1:
            out.append(bad.pop(0))
    return out + bad


async def produce(settings_, topic: str, values: list[bytes], key: bytes = b"one-partition") -> None:
    producer = AIOKafkaProducer(**client_options(settings_))
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def dead_letters(settings_, topic: str, group: str) -> dict[bytes, DeadLetter]:
    found = asyncio.run(read_topic(settings_, dead_letter_topic(topic, group)))
    return {r.value: DeadLetter.from_headers(list(r.headers)) for r in found}


def assert_dead_lettered(settings_, topic: str, group: str, bad: list[bytes]) -> None:
    letters = wait_until(lambda: (d := dead_letters(settings_, topic, group)) and set(bad) <= set(d) and d,
                         timeout=60, message="every bad record in the dead-letter topic")
    assert all(letters[value].reason and letters[value].error for value in bad)


@pytest.fixture(scope="module")
def consumers(stack, request):
    """processing, metrics, notifications and signature on one namespace (started once)."""
    from tests.integration.conftest import Pipeline, namespace

    settings_ = namespace(stack)
    pipeline = Pipeline(settings_, service("intake", settings_).start(), [])
    processing = pipeline.add_processing().start()
    metrics = service("metrics", settings_, **FAST).start()
    notifications = service("notifications", settings_, DOSSIER_NOTIFICATIONS_PROVIDER="log",
                            DOSSIER_NOTIFICATIONS_API_KEYS=json.dumps([{"name": "t", "key_sha256": _hash(),
                                                                        "sources": ["*"]}]),
                            DOSSIER_NOTIFICATIONS_QUIET_START="00:00", DOSSIER_NOTIFICATIONS_QUIET_END="00:00",
                            DOSSIER_NOTIFICATIONS_EXPIRE_HOURS="1000000",
                            DOSSIER_NOTIFICATIONS_SEND_INTERVAL_SECONDS="0.2").start()
    tmp = request.config._tmp_path_factory.mktemp("poison")
    signature = start_signature(pipeline, tmp)
    yield pipeline, processing, metrics, notifications, signature
    for process in (pipeline.intake, processing, metrics, notifications, signature):
        process.stop()


def _hash() -> str:
    from shared.auth import key_hash

    return key_hash(ANY_SOURCE_KEY)


@EXAMPLES
@given(lives=LIVES, bad=BAD)
def test_every_consumer_applies_the_good_records_and_dead_letters_the_bad_ones(consumers, lives, bad):
    pipeline, processing, metrics, notifications, signature = consumers
    s = pipeline.settings
    counted_before = metric(metrics, "metrics_dossiers")
    good = [orjson.dumps(e) for events in lives for e in events]
    asyncio.run(produce(s, s.topic_events, interleave(good, list(bad))))
    # A bad record among processing's status records too: the status consumers see it.
    asyncio.run(produce(s, s.topic_status, [bad[0]], key=b"status-poison"))
    codes = [events[0]["subject"] for events in lives]

    # processing: each dossier resolved, with every event in its history.
    def processed() -> bool:
        for events in lives:
            answer = httpx.get(f"{processing.url}/v1/dossiers/{events[0]['subject']}", headers=OPERATOR)
            if answer.status_code != 200 or {h["id"] for h in answer.json()["history"]} != {e["id"] for e in events}:
                return False
        return True

    wait_until(processed, timeout=60, message="every good event applied by processing")
    # signature: every requested document recorded.
    wait_until(lambda: all(documents(signature, c) for c in codes), timeout=60, message="signature records")
    # notifications: the receipt's and the supplement's SMS (any Unicode in what is missing) sent.
    def sent() -> bool:
        for code in codes:
            answer = httpx.get(f"{notifications.url}/v1/messages", params={"dossier": code}, headers=AUTH)
            triggers = {m["trigger"]: m["status"] for m in answer.json()["messages"]}
            if not {"received", "supplement_requested", "resolved"} <= triggers.keys() or any(
                    v not in ("sent", "delivered") for v in triggers.values()):
                return False
        return True

    wait_until(sent, timeout=60, message="every SMS sent")
    # metrics: every good dossier counted.
    wait_until(lambda: metric(metrics, "metrics_dossiers") == counted_before + len(lives), timeout=60,
               message="every dossier counted by metrics")
    for group in ("processing", "signature"):
        assert_dead_lettered(s, s.topic_events, group, bad)
    for group in ("metrics", "notifications"):
        assert_dead_lettered(s, s.topic_status, group, [bad[0]])
    # No partition stalls: everything consumed.
    for process, name in ((processing, "processing"), (metrics, "metrics"), (notifications, "notifications"),
                          (signature, "signature")):
        wait_until(lambda: metric(process, f"{name}_consumer_lag") == 0, message=f"{name} lag back to 0")


def test_a_supplement_reason_with_a_bullet_sends_one_transliterated_sms(stack, pipeline):
    """The regression of issue 14: "•" in a reason stopped every SMS for good."""
    from tests.integration.test_notifications import received_by_smsc, start_notifications

    stack.ensure("kannel")
    pipeline.add_processing().start()
    notifications = start_notifications(pipeline)
    try:
        events = life({"procedure": "Đăng ký khai sinh", "name": "Lê Văn • Tám", "unit": "Một cửa",
                       "reason": "• Bản sao CCCD ≥ 2 bản 😀"})
        code = events[0]["subject"]
        pipeline.post(events[:3])
        after = life({"procedure": "x", "name": "y", "unit": "z", "reason": "thiếu giấy"})
        later = after[0]["subject"]
        pipeline.post(after[:1])
        wait_until(lambda: len(received_by_smsc(code)) == 2 and received_by_smsc(later), timeout=60,
                   message="the receipt's and the supplement's SMS, and the next dossier's")
        [supplement] = [text for text in received_by_smsc(code) if "bo sung" in text]
        assert "* Ban sao CCCD >= 2 ban :grinning:" in supplement
    finally:
        notifications.stop()


def test_a_dead_letter_is_listed_and_put_back_once_fixed(pipeline):
    """python -m shared.dlq: an event dead-lettered earlier (say, a bug since fixed) is put back on
    the topic it came from, and applied."""
    import subprocess
    import sys

    from tests.integration.conftest import ROOT, settings_env

    processing = pipeline.add_processing().start()
    s = pipeline.settings
    [received] = life({"procedure": "p", "name": "n", "unit": "u", "reason": "r"})[:1]
    code = received["subject"]
    topic = dead_letter_topic(s.topic_events, "processing")
    letter = DeadLetter(reason="a bug since fixed", origin_topic=s.topic_events, origin_partition=0, origin_offset=7,
                        group="processing", error="RuntimeError")

    async def dead_letter() -> None:
        producer = AIOKafkaProducer(**client_options(s))
        await producer.start()
        try:
            await producer.send_and_wait(topic, orjson.dumps(received), key=code.encode(),
                                         headers=[(k, v.encode()) for k, v in letter.headers().items()])
        finally:
            await producer.stop()

    asyncio.run(dead_letter())
    env = {**settings_env(s), "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([sys.executable, "-m", "shared.dlq", "list", topic], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "a bug since fixed" in listed.stdout and "RuntimeError" in listed.stdout
    assert "0912345678" not in listed.stdout  # the applicant's number is masked
    place = listed.stdout.split()[0]
    assert httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 404
    replayed = subprocess.run([sys.executable, "-m", "shared.dlq", "replay", topic, "--offset", place], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 0, replayed.stderr
    wait_until(lambda: httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 200, timeout=60,
               message="the event put back and applied")


def test_a_handler_that_fails_every_record_stops_its_partition_and_loses_nothing(stack):
    """A bug (or an outage nobody told apart from a bad record) fails every record: the consumer stops
    the partition after a few, says so, dead-letters nothing, and once the records pass again takes
    them all from where it stopped."""
    settings_ = namespace(stack).model_copy(update={"dlq_max_consecutive": 5, "dlq_retry_seconds": 1})
    asyncio.run(_fails_every_record_then_passes(settings_))


async def _fails_every_record_then_passes(settings_) -> None:
    broken, handled = {"now": True}, []

    async def handle(records) -> None:
        if broken["now"]:
            raise KeyError("a field the new release expects")
        handled.extend(r.value.id for r in records)

    runtime = ConsumerApp("stopping", settings_, CollectorRegistry(), database=False)
    runtime.consume(settings_.topic_events, "stopping", DossierEvent, handle, max_batch=10)
    app = runtime.app("stopping", "a consumer whose handler fails every record")
    code = dossier_code(START, sequence=7001)
    sent = [event("dossier.rated", code, START + timedelta(minutes=n), id_=f"rated-{n}") for n in range(30)]
    await produce(settings_, settings_.topic_events, [orjson.dumps(e) for e in sent], key=code.encode())

    async def until(predicate, what: str, timeout: float = 60) -> None:
        for _ in range(int(timeout * 10)):
            if predicate():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{what} not reached in {timeout}s")

    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://stopping") as client:
        await until(lambda: runtime.stopped, "the partition stopped")
        await asyncio.sleep(3)  # tried again every second meanwhile, still failing
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "unexpected failures in a row" in ready.text, ready.text
        assert "consumer_partitions_stopped" in (await client.get("/metrics")).text
        assert handled == []
        letters = await read_topic(settings_, dead_letter_topic(settings_.topic_events, "stopping"))
        assert letters == []  # nothing emptied into the dead-letter topic

        broken["now"] = False  # the fix is deployed
        await until(lambda: len(handled) == len(sent), "every record handled")
        assert handled == [e["id"] for e in sent] and runtime.stopped == {}
        assert (await client.get("/readyz")).status_code == 200


def test_the_readmes_commands_run_against_a_stack_through_run_sh(stack):
    """README's `deploy/local/run.sh USER -m …`, from a shell that has nothing set but where the stack is. Typed
    as the README gave them before (`.local/venv/bin/python -m …`), they failed on the local stack: no Kafka
    user, and the services' secrets refused outside DOSSIER_ENVIRONMENT=local."""
    import subprocess

    from tests.integration.conftest import ROOT, STACK_ENV

    settings = namespace(stack)
    shell = {**STACK_ENV, "PATH": "/usr/bin:/bin", "DOSSIER_MONGO_DATABASE": settings.mongo_database}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["deploy/local/run.sh", *args], cwd=ROOT, env=shell, capture_output=True, text=True,
                              timeout=120)

    answers = []  # a topic just created may be missing from Kafka's metadata for a moment
    wait_until(lambda: answers.append(run("admin", "-m", "shared.dlq", "list", settings.topic_dlq))
               or answers[-1].returncode == 0, timeout=60, message="the dead-letter topic listed")
    listed = answers[-1]
    assert f"0 records in {settings.topic_dlq}" in listed.stdout
    report = run("metrics", "-m", "services.metrics", "report", "--commune", "14923", "--from", "2025-07-01",
                 "--to", "2025-07-31", "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["received"] == 0
    unknown = run("nobody", "-m", "shared.dlq", "list", settings.topic_dlq)
    assert unknown.returncode == 2 and "no Kafka user nobody" in unknown.stderr
