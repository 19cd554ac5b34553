"""The real components for integration tests.

The test session runs its own stack (Kafka, FerretDB, Prometheus, Alertmanager, Kannel) with the project's deploy
scripts, on ports of its own and under .local/test-stack, so it never disturbs a `make up`
stack. Topics and databases are named per run. Services run as real subprocesses.
"""

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import schemathesis
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from shared.auth import key_hash
from shared.clock import Clock
from shared.kafka import client_options
from shared.kafka_acls import ADMIN, as_user, password_file, prepare
from shared.secrets import ensure as ensure_secrets
from shared.settings import ServiceSettings
from tests.fixtures.sample import INSTANTS

ROOT = Path(__file__).resolve().parents[2]
# DOSSIER_TEST_SLOT=n (default 0) runs a stack of its own, in .local/test-stack-n with every port
# moved by 100 × n, so that two test sessions on one machine (two worktrees, two people) do not meet.
SLOT = int(os.environ.get("DOSSIER_TEST_SLOT", "0"))
STACK_DIR = ROOT / ".local" / ("test-stack" if SLOT == 0 else f"test-stack-{SLOT}")
SECRETS = STACK_DIR / "secrets"
RUN_ID = uuid.uuid4().hex[:8]

PORTS = {
    "DOSSIER_KAFKA_PORT": 19092,
    "DOSSIER_KAFKA_CONTROLLER_PORT": 19095,
    "DOSSIER_MONGO_PORT": 37017,
    "DOSSIER_FERRETDB_DEBUG_PORT": 18088,
    "DOSSIER_PROMETHEUS_PORT": 19090,
    "DOSSIER_ALERTMANAGER_PORT": 19093,
    "DOSSIER_KANNEL_ADMIN_PORT": 23000,
    "DOSSIER_KANNEL_SMSBOX_PORT": 23001,
    "DOSSIER_KANNEL_SENDSMS_PORT": 23013,
    "DOSSIER_KANNEL_SMSC_PORT": 20000,
    "DOSSIER_INTAKE_PORT": 18001,
    "DOSSIER_PROCESSING_PORT": 18002,
    "DOSSIER_METRICS_PORT": 18003,
    "DOSSIER_NOTIFICATIONS_PORT": 18004,
    "DOSSIER_SIGNATURE_PORT": 18005,
}
STACK_ENV = {"DOSSIER_STACK_DIR": str(STACK_DIR)} | {name: str(port + 100 * SLOT) for name, port in PORTS.items()}

# Keys the test intake knows: one for every source, one for a single province's system.
ANY_SOURCE_KEY = f"test-any-{RUN_ID}"
PROVINCE_KEY = f"test-38-{RUN_ID}"
OPERATOR = {"authorization": f"Bearer {ANY_SOURCE_KEY}"}  # an operator's key: processing's lookup, the reports
API_KEYS = [
    {"name": "any", "key_sha256": key_hash(ANY_SOURCE_KEY), "sources": ["*"]},
    {"name": "thanh-hoa", "key_sha256": key_hash(PROVINCE_KEY), "sources": ["urn:motcua:38"], "provinces": ["38"]},
]


# A test reading "now" (time-sensitive) takes `at_each_instant`: it runs once at each of the INSTANTS, its
# services each with a clock started there (shared/clock.py).
at_each_instant = pytest.mark.parametrize("clock", list(INSTANTS.values()), ids=list(INSTANTS), indirect=True)


@pytest.fixture(scope="module")
def clock(request) -> Clock:
    """The clock of the services a test starts: the real one, or one started at the instant the test is
    parametrised with (`at_each_instant`), advancing from there."""
    start = getattr(request, "param", None)
    return Clock() if start is None else Clock.starting_at(start)


class Stack:
    """Starts components through deploy/local/*.sh; stops at the end only what it started."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def run(self, component: str, action: str) -> None:
        subprocess.run(
            ["bash", str(ROOT / "deploy" / "local" / f"{component}.sh"), action],
            env=os.environ | STACK_ENV,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def running(self, component: str) -> bool:
        process = {"kannel": "kannel-smsbox"}.get(component, component)  # Kannel is three processes
        pid_file = STACK_DIR / "run" / f"{process}.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text()), 0)
        except (ProcessLookupError, ValueError):
            return False
        return True

    def ensure(self, component: str) -> None:
        if not self.running(component):
            if component == "prometheus":  # Prometheus writes no staleness markers when it stops: an earlier
                # run's targets (a second metrics replica) would still read "up" for 5 minutes after a restart.
                shutil.rmtree(STACK_DIR / "data" / "prometheus", ignore_errors=True)
            self.run(component, "start")
            self.started.append(component)

    def stop_started(self) -> None:
        for component in reversed(self.started):
            self.run(component, "stop")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    ensure_secrets(SECRETS)  # the test stack's, as `make up` makes the local stack's (Kannel reads them too)
    stack = Stack()
    yield stack
    stack.stop_started()


_namespaces = itertools.count()


def namespace(stack: Stack, clock: Clock = Clock()) -> ServiceSettings:
    """Fresh topics and database on the test stack, for services that must not see each other's events;
    the services of the namespace live by `clock` (its settings carry it). The settings are Kafka's admin
    (the tests read and write any topic); the services get their users and the grants on these topics,
    as `make up` gives them theirs."""
    stack.ensure("kafka")
    stack.ensure("ferretdb")
    name = f"{RUN_ID}-{next(_namespaces)}"
    settings = ServiceSettings(
        environment="local",
        kafka_bootstrap_servers=f"127.0.0.1:{STACK_ENV['DOSSIER_KAFKA_PORT']}",
        mongo_url=f"mongodb://127.0.0.1:{STACK_ENV['DOSSIER_MONGO_PORT']}",
        mongo_database=f"test_{name.replace('-', '_')}",
        topic_events=f"test-{name}-dossier-events",
        topic_status=f"test-{name}-dossier-status",
        topic_dlq=f"test-{name}-dossier-events.dlq",
        partitions=3,
        clock_offset_seconds=clock.offset.total_seconds(),
        kafka_username=ADMIN,
        kafka_password_file=password_file(SECRETS, ADMIN),
    )
    asyncio.run(prepare(settings))
    return settings


@pytest.fixture(scope="session")
def settings(stack: Stack) -> ServiceSettings:
    """The session-wide namespace the shared intake publishes to."""
    return namespace(stack)


def settings_env(settings: ServiceSettings) -> dict[str, str]:
    return settings.environment_variables()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """A service could not bind the port chosen for it."""


@dataclass
class ServiceProcess:
    """One service run as `python -m services.<name>`, as `make up` runs it."""

    name: str
    env: dict[str, str]
    port: int
    process: subprocess.Popen | None = None
    # What runs: the service, or a test double of it (tests/fixtures/faulty.py).
    module: list[str] = field(default_factory=list)
    # A port `free_port` chose: between its check and the service's bind, another process may take it (an
    # outgoing connection's ephemeral port), and the service then starts again on another.
    movable: bool = False
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = STACK_DIR / "logs" / f"{self.name}-{RUN_ID}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def clock(self) -> Clock:
        return Clock(timedelta(seconds=float(self.env.get("DOSSIER_CLOCK_OFFSET_SECONDS", 0))))

    def start(self, timeout: float = 30) -> "ServiceProcess":
        for _ in range(2 if self.movable else 0):
            try:
                return self._start(timeout)
            except PortTaken:
                self.port = free_port()
                self.env = self.env | {f"DOSSIER_{self.name.upper()}_PORT": str(self.port)}
                self.__post_init__()
        return self._start(timeout)

    def _start(self, timeout: float) -> "ServiceProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *(self.module or [f"services.{self.name}"])],
            cwd=ROOT,
            env=os.environ | self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.log_path.read_text()[-2000:]
                if self.movable and "address already in use" in said:
                    raise PortTaken(f"{self.name}: port {self.port} taken meanwhile")
                raise RuntimeError(f"{self.name} exited: {said}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=3).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready in {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def logs(self) -> str:
        return self.log_path.read_text()


def wait_until(predicate, timeout: float = 30, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message} not reached in {timeout}s")


def service(name: str, settings: ServiceSettings, port: int | None = None, **env: str) -> ServiceProcess:
    """A service of the namespace `settings`, not started yet."""
    movable, port = port is None, port or free_port()
    base = settings_env(settings) | {f"DOSSIER_{name.upper()}_PORT": str(port), "DOSSIER_LOG_FORMAT": "json",
                                     "DOSSIER_SECRETS_DIR": str(SECRETS)} | as_user(name, SECRETS)
    if name == "intake":
        base |= {"DOSSIER_INTAKE_API_KEYS": json.dumps(API_KEYS), "DOSSIER_INTAKE_KAFKA_TIMEOUT_MS": "3000"}
    if name == "processing":
        base |= {"DOSSIER_PROCESSING_OPERATOR_KEYS": json.dumps(API_KEYS)}
    if name == "metrics":
        base |= {"DOSSIER_METRICS_OPERATOR_KEYS": json.dumps(API_KEYS)}
    return ServiceProcess(name, base | env, port, movable=movable)


class FixedPortIntake:
    """The intake on the port Prometheus scrapes: one process at a time, started again for another
    namespace (a test data set with a clock of its own) and back."""

    def __init__(self) -> None:
        self.process: ServiceProcess | None = None
        self.settings: ServiceSettings | None = None

    def of(self, settings: ServiceSettings) -> ServiceProcess:
        if self.process is None or self.settings != settings:
            self.stop()
            self.process = service("intake", settings, int(STACK_ENV["DOSSIER_INTAKE_PORT"])).start()
            self.settings = settings
        return self.process

    def stop(self) -> None:
        if self.process:
            self.process.stop()
        self.process = None


@pytest.fixture(scope="session")
def fixed_port_intake() -> Iterator[FixedPortIntake]:
    holder = FixedPortIntake()
    yield holder
    holder.stop()


@pytest.fixture(scope="module")
def intake(fixed_port_intake: FixedPortIntake, settings: ServiceSettings) -> ServiceProcess:
    """The session namespace's intake, on the port Prometheus scrapes."""
    return fixed_port_intake.of(settings)


@dataclass
class Pipeline:
    """intake and processing on a namespace of their own (and its clock: `settings.clock`)."""

    settings: ServiceSettings
    intake: ServiceProcess
    processing: list[ServiceProcess]

    def post(self, events: list[dict], batch: int = 100) -> None:
        headers = {"authorization": f"Bearer {ANY_SOURCE_KEY}", "content-type": "application/cloudevents-batch+json"}
        for i in range(0, len(events), batch):
            answer = httpx.post(f"{self.intake.url}/v1/events", json=events[i : i + batch], headers=headers, timeout=30)
            assert answer.status_code == 202, answer.text

    def add_processing(self, **env: str) -> ServiceProcess:
        process = service("processing", self.settings, **env)
        self.processing.append(process)
        return process


@pytest.fixture
def pipeline(stack: Stack, clock: Clock) -> Iterator[Pipeline]:
    settings = namespace(stack, clock)
    running = Pipeline(settings, service("intake", settings).start(), [])
    yield running
    for process in [running.intake, *running.processing]:
        process.stop()


@asynccontextmanager
async def topic_reader(settings: ServiceSettings, topic: str) -> AsyncIterator[tuple[AIOKafkaConsumer, list]]:
    """A group-less consumer assigned to every partition of one of this run's topics."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    # aiokafka 0.14 raises CancelledError when a group-less consumer stops before its
    # internal task has run once: let it run.
    await asyncio.sleep(0)
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        yield consumer, partitions
    finally:
        await consumer.stop()


async def read_topic(settings: ServiceSettings, topic: str, since: dict[int, int] | None = None) -> list:
    """Every record of a topic (from `since` offsets, per partition) up to its current end."""
    async with topic_reader(settings, topic) as (consumer, partitions):
        ends = await consumer.end_offsets(partitions)
        records = []
        for tp in partitions:
            start = (since or {}).get(tp.partition, 0)
            if start >= ends[tp]:
                continue
            consumer.seek(tp, start)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=2000)
                records += batch.get(tp, [])
                if not batch or records[-1].offset >= ends[tp] - 1:
                    break
        return records


async def end_offsets(settings: ServiceSettings, topic: str) -> dict[int, int]:
    async with topic_reader(settings, topic) as (consumer, partitions):
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}


def fuzz(url: str, headers: dict[str, str], examples: int = 40, checks: tuple = ()) -> int:
    """Requests generated by schemathesis from a service's own OpenAPI document: none may get a 5xx
    (nor fail `checks`). Driven through Hypothesis: schemathesis' pytest plugin breaks on pytest 9."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error, *checks], timeout=30)

        no_server_error()
    return len(operations)
