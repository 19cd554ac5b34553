"""Every Grafana panel's PromQL, run against the real Prometheus scraping the real services."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bench.sample import event
from tests.integration.conftest import ANY_SOURCE_KEY, STACK_ENV, service, wait_until
from tests.integration.test_metrics import FAST, live_dossiers
from tests.integration.test_processing import histories
from tests.integration.test_signature import AUTH, OFFICIAL, start_signature
from bench.pki import blank_pdf, sign


@dataclass
class Namespace:
    settings: object
from tests.integration.test_prometheus import query

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
# What Grafana would put in place of its variables.
VARIABLES = {"$commune": "14923", "$__rate_interval": "1m"}


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for name, value in VARIABLES.items():
                    expr = expr.replace(name, value)
                out.append((f"{path.stem}: {panel['title']} {target['refId']}", expr))
    return out


@pytest.fixture(scope="module")
def scraped(stack, settings, intake, tmp_path_factory):
    """The test data set through intake, processing and metrics on the ports Prometheus scrapes."""
    processing = service("processing", settings, int(STACK_ENV["DOSSIER_PROCESSING_PORT"])).start()
    metrics = service("metrics", settings, int(STACK_ENV["DOSSIER_METRICS_PORT"]), **FAST).start()
    notifications = service("notifications", settings, int(STACK_ENV["DOSSIER_NOTIFICATIONS_PORT"]),
                            DOSSIER_NOTIFICATIONS_PROVIDER="log").start()
    signature = start_signature(Namespace(settings), tmp_path_factory.mktemp("signature"),
                                int(STACK_ENV["DOSSIER_SIGNATURE_PORT"]))
    stack.ensure("prometheus")
    lives = histories(25, seed=11) | live_dossiers(datetime.now(UTC))
    events = [e for history in lives.values() for e in history]
    code = next(iter(lives))
    events.append(event("dossier.withdrawn", code, datetime(2026, 1, 5, 9, tzinfo=UTC)))  # after the end: DLQ
    headers = {"authorization": f"Bearer {ANY_SOURCE_KEY}", "content-type": "application/cloudevents-batch+json"}
    assert httpx.post(f"{intake.url}/v1/events", json=events, headers=headers, timeout=30).status_code == 202
    bad = headers | {"authorization": "Bearer wrong"}
    assert httpx.post(f"{intake.url}/v1/events", json=events[:1], headers=bad).status_code == 401
    wait_until(lambda: query('sum(dossier_received_total) >= 27'), timeout=60, message="figures scraped")
    signed = sign(blank_pdf(), OFFICIAL)  # one result, signed and uploaded (again until the receipt was seen)

    def verified() -> bool:
        answer = httpx.post(f"{signature.url}/v1/dossiers/{code}/documents/KQ-1", content=signed,
                            headers=AUTH | {"content-type": "application/pdf"})
        return answer.status_code == 200 and "dossier_signatures_total{" in httpx.get(f"{metrics.url}/metrics").text

    wait_until(verified, timeout=60, interval=1, message="a verified result counted")
    yield
    signature.stop()
    notifications.stop()
    metrics.stop()
    processing.stop()


@pytest.mark.parametrize("name, expr", panel_queries(), ids=[name for name, _ in panel_queries()])
def test_the_panel_query_parses_and_returns_data(scraped, name, expr):
    result = wait_until(lambda: query(expr), timeout=60, interval=1, message=f"data for {name}: {expr}")
    assert result
