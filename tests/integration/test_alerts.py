"""Alerts that reach people, on the real stack: a commune's dossier turns overdue, Prometheus' rule
fires, Alertmanager calls the notifications service's webhook and the commune's officer gets one SMS
through Kannel's fake SMSC, not a second one however often Alertmanager repeats itself. Only the test
stack's copies of the rules and of Alertmanager's configuration are made fast (seconds, not minutes)."""

import json
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.sample import dossier_code, event
from services.notifications.sms import transliterate
from shared.communes import commune
from shared.privacy import mask_phone
from tests.integration.conftest import (SECRETS, STACK_DIR, STACK_ENV, Pipeline, ServiceProcess, at_each_instant,
                                         namespace, service, wait_until)
from tests.integration.test_metrics import FAST
from tests.integration.test_notifications import SMS_LOG, start_notifications

# A commune of Thanh Hóa without other tests' dossiers, one for each instant the tests run at: an alert
# of the instant before, still repeated by Alertmanager, names another commune and reaches no officer.
COMMUNES = iter(["16522", "15796", "15778", "15820"])  # Phường Quảng Phú, Xã Thiệu Quang, Thiệu Tiến, Thiệu Toán
OFFICER = "0912000801"
PROMETHEUS = f"http://127.0.0.1:{STACK_ENV['DOSSIER_PROMETHEUS_PORT']}"
ALERTMANAGER = f"http://127.0.0.1:{STACK_ENV['DOSSIER_ALERTMANAGER_PORT']}"
# Where the fake SMSC's log stood when the pipeline of the current instant started.
SMS_START = {"offset": 0}

# An alert fires from the dossiers of "now": checked at every instant.
pytestmark = at_each_instant


def officer_sms() -> list[str]:
    """The texts the fake SMSC got for the officer since the pipeline of this instant started."""
    with SMS_LOG.open("rb") as log:
        log.seek(SMS_START["offset"])
        lines = log.read().decode(errors="replace").splitlines()
    return [line.split(" text ", 1)[1].rstrip(">") for line in lines
            if "Got message" in line and "+84" + OFFICER[1:] in line]


def reload(url: str) -> None:
    assert httpx.post(f"{url}/-/reload", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def fast(stack):
    """Prometheus evaluating the rules every second, alerts firing after 6 s; Alertmanager grouping
    within seconds and repeating every 3 s. The stack's own configuration is written back after."""
    stack.ensure("prometheus")
    stack.ensure("alertmanager")
    for path in (STACK_DIR / "prometheus" / "rules").glob("*.yml"):
        rules = yaml.safe_load(path.read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                if "for" in rule:  # longer than a scrape (5 s): the urgent codes are in when it fires
                    rule["for"] = "6s"
        path.write_text(yaml.safe_dump(rules, allow_unicode=True))
    config_path = STACK_DIR / "alertmanager" / "alertmanager.yml"
    config = yaml.safe_load(config_path.read_text())
    for route in (config["route"], *config["route"]["routes"]):
        route |= {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "3s"}
    config_path.write_text(yaml.safe_dump(config))
    reload(PROMETHEUS)
    reload(ALERTMANAGER)
    yield
    stack.run("prometheus", "reload")
    stack.run("alertmanager", "reload")


@dataclass
class Officers:
    pipeline: Pipeline
    notifications: ServiceProcess
    commune: str


@pytest.fixture(scope="module")
def officers(stack, fast, clock):
    """The pipeline with metrics and notifications where Prometheus and Alertmanager find them, and an
    officer on duty for a commune of this instant's."""
    stack.ensure("kannel")
    SMS_START["offset"] = SMS_LOG.stat().st_size if SMS_LOG.exists() else 0
    settings_ = namespace(stack, clock)
    pipeline = Pipeline(settings_, service("intake", settings_).start(), [])
    pipeline.add_processing().start()
    metrics = service("metrics", settings_, int(STACK_ENV["DOSSIER_METRICS_PORT"]), **FAST).start()
    commune = next(COMMUNES)
    notifications = start_notifications(pipeline, port=int(STACK_ENV["DOSSIER_NOTIFICATIONS_PORT"]),
                                        DOSSIER_NOTIFICATIONS_OFFICERS=json.dumps({commune: [OFFICER]}))
    yield Officers(pipeline, notifications, commune)
    for process in (notifications, metrics, pipeline.intake, *pipeline.processing):
        process.stop()


def alert_secret() -> str:
    return (SECRETS / "dossier_notifications_alert_secret").read_text()


def outcomes(notifications) -> dict[str, float]:
    text = httpx.get(f"{notifications.url}/metrics").text
    return {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("notifications_alerts_total{")}


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=12)


def test_unauthenticated_or_malformed_notifications_get_a_4xx_and_send_nothing(officers):
    notifications, commune = officers.notifications, officers.commune
    url = f"{notifications.url}/v1/alerts"
    valid = {"version": "4", "groupKey": "k", "status": "firing", "groupLabels": {"commune": commune},
             "alerts": [{"status": "firing", "labels": {"commune": commune}, "annotations": {"overdue": "1"}}]}
    assert httpx.post(url, json=valid).status_code == 401
    assert httpx.post(url, json=valid, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(url, json=valid, headers={"authorization": alert_secret()}).status_code == 401  # no scheme
    auth = {"authorization": f"Bearer {alert_secret()}"}
    assert httpx.post(url, content=b"x" * ((1 << 20) + 1), headers=auth).status_code == 413

    @given(st.one_of(JSON.map(lambda v: json.dumps(v).encode()), st.text().map(str.encode), st.binary()))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def refused(body: bytes) -> None:
        answer = httpx.post(url, content=body, headers=auth | {"content-type": "application/json"}, timeout=10)
        assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)

    refused()
    assert outcomes(notifications)["malformed"] >= 150 and "queued" not in outcomes(notifications)
    assert officer_sms() == []


def test_an_overdue_dossier_reaches_the_communes_officer_by_one_sms(officers):
    pipeline, notifications, code = officers.pipeline, officers.notifications, officers.commune
    now = pipeline.settings.clock()
    late, soon = dossier_code(now - timedelta(days=7), sequence=801), dossier_code(now, sequence=802)
    citizen = {"name": "Lê Văn Cường", "phone": "0912000899", "sms_opt_in": False}
    pipeline.post([
        event("dossier.received", late, now - timedelta(days=7), commune_code=code, applicant=citizen,
              due_at=(now - timedelta(days=6)).isoformat()),
        event("dossier.received", soon, now - timedelta(minutes=1), commune_code=code, applicant=citizen,
              due_at=(now + timedelta(hours=3)).isoformat()),
    ])
    [text] = wait_until(officer_sms, timeout=120, interval=1, message="the officer's SMS")
    name = transliterate(commune(code).name)  # e.g. Phuong Quang Phu
    assert text == f"1 ho so qua han tai {name}, 1 sap den han trong 24 gio. Ma: {late}, {soon}."

    # Alertmanager repeats the notification every few seconds: the webhook takes each, sends nothing more.
    wait_until(lambda: outcomes(notifications).get("repeated", 0) >= 3, timeout=60, interval=1,
               message="Alertmanager's repeats received")
    assert officer_sms() == [text]
    assert outcomes(notifications)["queued"] == 1
    wait_until(lambda: 'notifications_messages_total{provider="kannel",status="delivered"} 1.0'
               in httpx.get(f"{notifications.url}/metrics").text, message="the delivery report")
    logs = notifications.logs()
    assert OFFICER not in logs and OFFICER[1:] not in logs and mask_phone("+84" + OFFICER[1:]) in logs
