"""What the benchmarks share: services of their own on the running stack, load, percentiles."""

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta

from pathlib import Path

import aiohttp
import httpx

from tests.fixtures.sample import VN, dossier_code, dossier_history
from shared.auth import key_hash
from shared.kafka_acls import ADMIN, as_user, password_file
from shared.settings import ServiceSettings

KEY = uuid.uuid4().hex
AUTH = {"authorization": f"Bearer {KEY}"}  # the services the benches start take it (intake, the report API)
DURATION = float(os.environ.get("BENCH_SECONDS", "5"))
# The running stack's secrets: the benches make their topics and grants as Kafka's admin, and the
# services they start log in as their own users (docs/security.md, finding 12).
SECRETS = Path(os.environ.get("DOSSIER_STACK_DIR", Path(__file__).resolve().parents[1] / ".local")) / "secrets"
KAFKA_ADMIN = {"kafka_username": ADMIN, "kafka_password_file": password_file(SECRETS, ADMIN)}


def bench_settings(name: str) -> ServiceSettings:
    """The running stack (`make up`), with topics and a database of the benchmark's own."""
    run = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    return ServiceSettings(
        environment="local",
        topic_events=f"{run}-events",
        topic_status=f"{run}-status",
        topic_dlq=f"{run}-dlq",
        mongo_database=run.replace("-", "_"),
        **KAFKA_ADMIN,
    )


def start_service(name: str, settings: ServiceSettings, port: int, ready_within: float = 30,
                  **env: str) -> subprocess.Popen:
    """`python -m services.<name>` on `settings`, returned once /readyz answers 200."""
    variables = settings.environment_variables()
    variables |= {
        f"DOSSIER_{name.upper()}_PORT": str(port),
        "DOSSIER_INTAKE_API_KEYS": json.dumps([{"name": "bench", "key_sha256": key_hash(KEY), "sources": ["*"]}]),
        "DOSSIER_METRICS_OPERATOR_KEYS": json.dumps([{"name": "bench", "key_sha256": key_hash(KEY), "sources": ["*"]}]),
        "DOSSIER_LOG_LEVEL": "WARNING",
    } | as_user(name, SECRETS)
    process = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=os.environ | variables | env)
    for _ in range(int(ready_within / 0.2)):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
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
