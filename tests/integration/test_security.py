"""Bad input and hostile parameters against the real services: no query is changed by what a caller
sends, no server error from generated requests, services listen on loopback unless told otherwise."""

from pathlib import Path

import httpx
import pytest

from tests.fixtures.sample import dossier_code
from tests.integration.conftest import OPERATOR, ANY_SOURCE_KEY, fuzz, service, wait_until
from tests.integration.test_metrics import COMMUNE, FAST, counted
from tests.integration.test_notifications import START, life, messages, start_notifications
from tests.integration.test_signature import documents, start_signature

AUTH = {"authorization": f"Bearer {ANY_SOURCE_KEY}"}
# What a caller could try to slip into a MongoDB query through a path or query parameter.
HOSTILE = ['{"$gt": ""}', '{"$ne": null}', "$where", ".*", "^000", "000.00.38.H56-2603.*", "[$ne]=1",
           "'; db.dropDatabase(); '", "%00", "../../etc/passwd"]


@pytest.fixture
def everything(stack, pipeline, tmp_path):
    stack.ensure("kannel")
    pipeline.add_processing().start()
    metrics = service("metrics", pipeline.settings, **FAST).start()
    notifications = start_notifications(pipeline)
    signature = start_signature(pipeline, tmp_path)
    code = dossier_code(START, sequence=501)
    pipeline.post(life(code))
    wait_until(lambda: counted(metrics) == 1 and messages(notifications, code), timeout=60, message="one dossier in")
    yield pipeline, metrics, notifications, signature, code
    for process in (metrics, notifications, signature):
        process.stop()


def test_hostile_parameters_find_nothing(everything):
    pipeline, metrics, notifications, signature, code = everything
    assert httpx.get(f"{pipeline.processing[0].url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 200  # the real one is there
    for value in HOSTILE:
        quoted = httpx.URL(f"/x/{value}").raw_path.decode()[3:]  # the value as one path segment
        # Not a dossier code: 400 at once (404 where the value is not even one path segment).
        assert httpx.get(f"{pipeline.processing[0].url}/v1/dossiers/{quoted}", headers=OPERATOR).status_code in (400, 404), value
        answer = httpx.get(f"{notifications.url}/v1/messages", params={"dossier": value}, headers=AUTH)
        assert answer.status_code == 400, value
        listed = httpx.get(f"{signature.url}/v1/dossiers/{quoted}/documents", headers=AUTH)
        assert listed.status_code in (400, 404), value
        for url in (f"{metrics.url}/v1/reports/communes/{quoted}", f"{metrics.url}/v1/reports/provinces/{quoted}/scorecard"):
            answer = httpx.get(url, params={"from": "2026-03-01", "to": "2026-03-31"}, headers=OPERATOR)
            assert answer.status_code in (400, 404), (value, answer.text)
        answer = httpx.get(f"{metrics.url}/v1/reports/communes/{COMMUNE}", params={"from": value, "to": value},
                           headers=OPERATOR)
        assert answer.status_code == 400, value
    assert len(messages(notifications, code)) >= 1 and documents(signature, code) == []


def test_the_report_and_lookup_apis_answer_generated_requests_without_server_errors(everything):
    pipeline, metrics, notifications, signature, _ = everything
    assert fuzz(metrics.url, OPERATOR) >= 3
    assert fuzz(pipeline.processing[0].url, {}) >= 1
    assert fuzz(notifications.url, AUTH) >= 3
    assert fuzz(signature.url, AUTH) >= 3


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on `port` (from /proc: no tool needed)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_services_listen_on_loopback_unless_told_otherwise(pipeline):
    loopback = "0100007F"  # 127.0.0.1, little-endian hex
    assert listening_addresses(pipeline.intake.port) == {loopback}
    processing = pipeline.add_processing().start()
    assert listening_addresses(processing.port) == {loopback}
    everywhere = pipeline.add_processing(DOSSIER_BIND_HOST="0.0.0.0").start()
    assert listening_addresses(everywhere.port) == {"00000000"}
