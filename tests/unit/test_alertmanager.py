"""Alertmanager's configuration (deploy/alertmanager/alertmanager.yml), checked and routed by amtool
itself, and kept consistent with Prometheus, the webhook and the local stack's ports."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from services.notifications.settings import NotificationsSettings

# Run by the deployment's tools (helm, kubeconform, promtool, amtool): `make test-tools`, not `make test-unit`.
pytestmark = pytest.mark.tools


ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


@pytest.fixture(scope="module")
def amtool() -> str:
    """Debian's prometheus-alertmanager ships amtool: installed once, as the local stack does."""
    subprocess.run(["bash", str(ROOT / "deploy" / "local" / "install-apt.sh"), "prometheus-alertmanager"], check=True)
    return "amtool"


def test_amtool_accepts_the_configuration(amtool):
    checked = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("labels, receiver", [
    (["alertname=DossiersOverdue", "commune=14923", "severity=warning"], "commune-officers"),
    (["alertname=DossiersDueSoon", "commune=14923", "severity=info"], "commune-officers"),
    (["alertname=OnTimeRateLow", "commune=14923"], "operators"),
    (["alertname=DossierServiceDown", "service=intake"], "operators"),
    (["alertname=DossiersOverdue"], "operators"),  # no commune: nobody's officers
])
def test_a_communes_dossiers_at_risk_go_to_its_officers_and_the_rest_to_the_operators(amtool, labels, receiver):
    routed = subprocess.run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels],
                            capture_output=True, text=True)
    assert routed.stdout.strip() == receiver, routed.stdout + routed.stderr


def test_the_webhook_is_the_notifications_service_with_the_secret_from_a_file():
    config = yaml.safe_load(CONFIG.read_text())
    [officers] = [r for r in config["receivers"] if r["name"] == "commune-officers"]
    [hook] = officers["webhook_configs"]
    assert hook["url"] == "http://notifications:8004/v1/alerts"
    assert hook["http_config"]["authorization"] == {
        "type": "Bearer", "credentials_file": "/secrets/dossier_notifications_alert_secret"}
    [route] = config["route"]["routes"]
    assert route["group_by"] == ["commune", "alertname"]
    # The webhook drops what Alertmanager sends again within the same window: the same length.
    hours = NotificationsSettings.model_fields["notifications_alert_repeat_hours"].default
    assert route["repeat_interval"] == f"{hours:g}h"


def test_prometheus_alertmanager_and_the_local_stack_agree_on_port_9093():
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [alertmanagers] = prometheus["alerting"]["alertmanagers"]
    assert alertmanagers["file_sd_configs"] == [{"files": ["alertmanagers.yml"]}]
    [target] = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alertmanagers.yml").read_text())
    assert target["targets"] == ["alertmanager:9093"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert compose["alertmanager"]["ports"] == ["127.0.0.1:9093:9093"]
    common = (ROOT / "deploy" / "local" / "common.sh").read_text()
    assert 'ALERTMANAGER_PORT="${DOSSIER_ALERTMANAGER_PORT:-9093}"' in common
    assert re.search(r'KAFKA_CONTROLLER_PORT="\$\{DOSSIER_KAFKA_CONTROLLER_PORT:-9095\}"', common)
