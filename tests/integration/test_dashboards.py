"""Every Grafana panel's PromQL, run against the real Prometheus scraping the real services."""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.fixtures.sample import event
from shared.settings import ServiceSettings
from tests.integration.conftest import (ANY_SOURCE_KEY, OPERATOR, STACK_DIR, STACK_ENV, ServiceProcess,
                                         at_each_instant, free_port, namespace, service, wait_until)
from tests.fixtures.sample import live_dossiers
from tests.integration.test_metrics import FAST
from tests.integration.test_processing import histories
from tests.integration.test_signature import AUTH, OFFICIAL, start_signature
from tests.fixtures.pki import blank_pdf, sign


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


@dataclass
class Scraped:
    settings: ServiceSettings  # the data set's namespace, and its clock
    metrics: ServiceProcess


# The data set holds dossiers received "now", due soon and not: the pages are checked at every instant.
pytestmark = at_each_instant


@pytest.fixture(scope="module")
def scraped(stack, clock, fixed_port_intake, tmp_path_factory):
    """The test data set through intake, processing and metrics on the ports Prometheus scrapes, in a
    namespace living by `clock`."""
    started = time.time()
    settings = namespace(stack, clock)
    intake = fixed_port_intake.of(settings)
    processing = service("processing", settings, int(STACK_ENV["DOSSIER_PROCESSING_PORT"])).start()
    metrics = service("metrics", settings, int(STACK_ENV["DOSSIER_METRICS_PORT"]), **FAST).start()
    notifications = service("notifications", settings, int(STACK_ENV["DOSSIER_NOTIFICATIONS_PORT"]),
                            DOSSIER_NOTIFICATIONS_PROVIDER="log").start()
    signature = start_signature(Namespace(settings), tmp_path_factory.mktemp("signature"),
                                int(STACK_ENV["DOSSIER_SIGNATURE_PORT"]))
    stack.ensure("prometheus")
    # Prometheus reads processing's histograms once before the data set arrives, else a fast machine
    # applies it all before the first scrape and no rate ever sees the counts rise (a chart of NaN).
    # Both scraped since they started: the series of the instant before are stale, not counted here.
    for series in ("processing_apply_latency_seconds_count", "metrics_dossiers"):
        wait_until(lambda: query(f"timestamp({series}) > {started}"), timeout=30, message=f"{series} scraped anew")
    lives = histories(25, seed=11) | live_dossiers(settings.clock())
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
        return answer.status_code == 200 and "dossier_signatures{" in httpx.get(f"{metrics.url}/metrics").text

    wait_until(verified, timeout=60, interval=1, message="a verified result counted")
    yield Scraped(settings, metrics)
    signature.stop()
    notifications.stop()
    metrics.stop()
    processing.stop()


@pytest.mark.parametrize("name, expr", panel_queries(), ids=[name for name, _ in panel_queries()])
def test_the_panel_query_parses_and_returns_data(scraped, name, expr):
    result = wait_until(lambda: query(expr), timeout=60, interval=1, message=f"data for {name}: {expr}")
    assert result


def instant_values(expr: str) -> dict[tuple, float]:
    return {tuple(sorted(r["metric"].items())): round(float(r["value"][1]), 9) for r in query(expr)}


def test_with_two_metrics_replicas_the_panels_rules_and_reports_give_the_numbers_of_one(scraped):
    """Each replica reads every status record (a group of its own) and exports the same figures:
    every panel and rule takes one copy of each series, so the numbers do not double."""
    first, settings = scraped.metrics, scraped.settings
    steady = [(name, expr) for name, expr in panel_queries() if "increase(" not in expr and "rate(" not in expr
              and "dossier_" in expr]
    steady.append(("rule", "commune:dossier_on_time:ratio"))
    # The figures of one replica as Prometheus holds them, once they stand still: the fixture waited for its
    # /metrics, not for Prometheus (taken at once, they lacked the signed result, 1 instant in 4 run alone).
    alone = settled(steady, first)
    second = service("metrics", settings, free_port(), DOSSIER_METRICS_GROUP_ID="metrics-replica-2", **FAST).start()
    targets = STACK_DIR / "prometheus" / "targets.yml"
    original = targets.read_text()
    try:
        wait_until(lambda: first_figures(second) == first_figures(first), timeout=60,
                   message="the second replica holds the same figures")
        report = "/v1/reports/communes/14923?from=2025-01-01&to=2026-12-31&as_of=2026-12-01T00:00:00%2B07:00"
        assert (httpx.get(second.url + report, headers=OPERATOR).json()
                == httpx.get(first.url + report, headers=OPERATOR).json())
        targets.write_text(original + f'- targets: ["127.0.0.1:{second.port}"]\n  labels: {{service: metrics}}\n')
        wait_until(lambda: len(query('up{service="metrics"} == 1')) == 2, timeout=60, interval=1,
                   message="Prometheus scraping both replicas")
        held_since(time.time(), second)
        for name, expr in steady:
            wait_until(lambda: instant_values(expr) == alone[name], timeout=30, interval=1,
                       message=f"{name} equal with two replicas: {expr}")
    finally:
        targets.write_text(original)
        second.stop()


def held_since(instant: float, metrics: ServiceProcess) -> None:
    """Prometheus scraped this metrics replica after `instant`, each of its jobs with success (the urgent
    dossiers' scrape alone said so before its figures' scrape: the test then failed), then evaluated its
    rules (every 15 s). A sample is stamped with its scrape's start and stored at its end: the rules are
    waited for from when the scrapes were seen stored."""
    def scrapes_since() -> bool:
        times = [float(r["value"][1]) for r in query(f'timestamp(up{{instance="127.0.0.1:{metrics.port}"}} == 1)')]
        return bool(times) and min(times) > instant

    wait_until(scrapes_since, timeout=60, interval=1, message="a scrape of each job since")
    seen = time.time()
    wait_until(lambda: query(f"timestamp(commune:dossier_on_time:ratio) > {seen}"), timeout=60, interval=1,
               message="the rules evaluated since those scrapes")


def settled(steady: list[tuple[str, str]], metrics: ServiceProcess) -> dict[str, dict[tuple, float]]:
    """The values of these queries once two evaluations, a scrape and a rule evaluation apart, agree."""
    def values() -> dict[str, dict[tuple, float]]:
        held_since(time.time(), metrics)
        return {name: instant_values(expr) for name, expr in steady}

    def agreed() -> dict[str, dict[tuple, float]] | None:
        before, after = values(), values()
        return after if after == before else None

    return wait_until(agreed, timeout=120, interval=0, message="the figures of one replica settled in Prometheus")


def first_figures(metrics) -> dict:
    from tests.integration.test_metrics import business

    return business(metrics)
