"""What the benchmarks share: the stack they run on, their size, services of their own, load, percentiles.

Every bench reads the stack as the services do (services.sh): DOSSIER_* variables for where Kafka,
FerretDB and Kannel listen, and the stack's generated secrets from DOSSIER_SECRETS_DIR, by default the
`make up` stack's (.local/secrets, or DOSSIER_STACK_DIR/secrets). BENCH_SIZE=tiny runs every bench in
seconds (what `make test` does, tests/integration/test_benchmarks.py); BENCH_PORT_OFFSET moves the
ports of the services a bench starts, so that benches on two stacks of one machine do not meet.
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from collections.abc import Callable
from typing import TypeVar


import aiohttp
import httpx
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from bench.clock import clock_at
from tests.fixtures.sample import VN, dossier_code, dossier_history
from shared.auth import key_hash
from shared.kafka import client_options
from shared.kafka_acls import ADMIN, as_user, password_file
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
STACK_DIR = Path(os.environ.get("DOSSIER_STACK_DIR") or ROOT / ".local")
# As services.sh starts the services: the local stack's own secrets (made by `make up`), none left empty.
os.environ.setdefault("DOSSIER_SECRETS_DIR", str(STACK_DIR / "secrets"))
os.environ.setdefault("DOSSIER_ENVIRONMENT", "local")


def stack_pid(name: str) -> int:
    """The pid of a process of the running stack (`kafka`, `ferretdb`, `kannel-bearerbox`, …), from its pid file."""
    return int((STACK_DIR / "run" / f"{name}.pid").read_text())


SIZE = os.environ.get("BENCH_SIZE", "full")
if SIZE not in ("full", "tiny"):
    raise SystemExit(f"BENCH_SIZE={SIZE}: full (the default) or tiny")
Number = TypeVar("Number", int, float, str)
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))


def knob(name: str, full: Number, tiny: Number) -> Number:
    """A bench's count: the variable `name` when set, else `full` or, with BENCH_SIZE=tiny, `tiny`."""
    value = os.environ.get(name)
    return type(full)(value) if value is not None else tiny if SIZE == "tiny" else full


def port(default: int) -> int:
    """The port of a service a bench starts, moved by BENCH_PORT_OFFSET."""
    return default + PORT_OFFSET


KEY = uuid.uuid4().hex
AUTH = {"authorization": f"Bearer {KEY}"}  # the services the benches start take it (intake, the report API)
DURATION = knob("BENCH_SECONDS", 5.0, 0.5)
# The running stack's secrets: the benches make their topics and grants as Kafka's admin, and the
# services they start log in as their own users (docs/security.md, finding 12).
SECRETS = Path(os.environ["DOSSIER_SECRETS_DIR"])
KAFKA_ADMIN = {"kafka_username": ADMIN, "kafka_password_file": password_file(SECRETS, ADMIN)}


def stack_settings(**update: object) -> ServiceSettings:
    """The stack the bench runs on, as its services see it (DOSSIER_* variables and secret files), with
    Kafka's admin login."""
    return ServiceSettings(environment="local", **KAFKA_ADMIN).model_copy(update=update)


def bench_settings(name: str) -> ServiceSettings:
    """The running stack (`make up`), with topics and a database of the benchmark's own, dropped when the
    bench ends (`run`)."""
    run = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    settings = ServiceSettings(
        environment="local",
        topic_events=f"{run}-events",
        topic_status=f"{run}-status",
        topic_dlq=f"{run}-dlq",
        mongo_database=run.replace("-", "_"),
        **KAFKA_ADMIN,
    )
    RUNS.append(settings)
    return settings


RUNS: list[ServiceSettings] = []  # what bench_settings made in this process


def run(main: Callable[[], object]) -> None:
    """A bench's entry point: `main`, then the databases and topics its runs made dropped, also when it failed
    (a bench-e2e run alone left ~1.2 GB in FerretDB, and the stack's disk filled run after run)."""
    try:
        main()
    finally:
        if RUNS:
            asyncio.run(drop_runs(RUNS))


async def drop_runs(runs: list[ServiceSettings]) -> None:
    """Each run's database, and the topics named after it (the services add dead-letter topics of their own)."""
    mongo: AsyncMongoClient = AsyncMongoClient(runs[0].mongo_url)
    try:
        for settings in runs:
            await mongo.drop_database(settings.mongo_database)
    finally:
        await mongo.close()
    admin = AIOKafkaAdminClient(**client_options(runs[0]))
    await admin.start()
    try:
        prefixes = tuple(s.topic_events.removesuffix("-events") for s in runs)
        if doomed := [t for t in await admin.list_topics() if t.startswith(prefixes)]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def start_service(name: str, settings: ServiceSettings, port: int, *, now: datetime | None,
                  ready_within: float = 30, ready: str = "/readyz", **env: str) -> subprocess.Popen:
    """`python -m services.<name>` on `settings`, returned once `ready` (/readyz) answers 200. `now`: the instant its
    clock reads at the start (`clock_at`), or None for the wall clock, which each caller decides (a bench's data
    dated at fixed instants takes a fixed now: bench/clock.py)."""
    env = (clock_at(now) if now is not None else {}) | env
    variables = settings.environment_variables()
    variables |= {
        f"DOSSIER_{name.upper()}_PORT": str(port),
        "DOSSIER_INTAKE_API_KEYS": json.dumps([{"name": "bench", "key_sha256": key_hash(KEY), "sources": ["*"]}]),
        "DOSSIER_METRICS_OPERATOR_KEYS": json.dumps([{"name": "bench", "key_sha256": key_hash(KEY), "sources": ["*"]}]),
        "DOSSIER_LOG_LEVEL": "WARNING",
    } | as_user(name, SECRETS)
    process = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=os.environ | variables | env)
    for _ in range(int(ready_within / 0.2)):
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{name} did not become ready")


def session(port: int, connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        f"http://127.0.0.1:{port}",
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def post(client: aiohttp.ClientSession, body: bytes, content_type: str) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": content_type}
    async with client.post("/v1/events", data=body, headers=headers) as answer:
        if answer.status != 202:
            raise SystemExit(f"intake answered {answer.status}: {await answer.text()}")


def sample_events(n: int, first_sequence: int = 0) -> list[dict]:
    """n events of whole dossier lives (7 events each), interleaved as a busy centre sends them."""
    events: list[dict] = []
    start = datetime(2025, 7, 1, 8, tzinfo=VN)
    dossier = first_sequence
    while len(events) < n:
        day = start + timedelta(days=dossier // 9000)
        events += dossier_history(dossier_code(day, sequence=dossier % 9000 + 1), day + timedelta(minutes=dossier % 480))
        dossier += 1
    return events[:n]


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000)[int(p * 10) - 1] if len(values) > 1 else values[0]
