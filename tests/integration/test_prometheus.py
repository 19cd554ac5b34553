"""The stack's real Prometheus: the project's rules loaded, the services scraped."""

import httpx

from tests.fixtures.sample import event
from tests.integration.conftest import ANY_SOURCE_KEY, STACK_ENV, wait_until

PROMETHEUS = f"http://127.0.0.1:{STACK_ENV['DOSSIER_PROMETHEUS_PORT']}"


def query(expr: str) -> list[dict]:
    answer = httpx.get(f"{PROMETHEUS}/api/v1/query", params={"query": expr}).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_loads_the_rules_and_scrapes_intake(stack, intake):
    stack.ensure("prometheus")
    headers = {"authorization": f"Bearer {ANY_SOURCE_KEY}", "content-type": "application/cloudevents+json"}
    assert httpx.post(f"{intake.url}/v1/events", json=event("dossier.rated"), headers=headers).status_code == 202

    groups = httpx.get(f"{PROMETHEUS}/api/v1/rules").json()["data"]["groups"]
    assert {r["name"] for g in groups for r in g["rules"]} >= {"DossierServiceDown", "IntakeKafkaUnavailable"}
    wait_until(lambda: query('up{service="intake"} == 1'), timeout=30, message="intake scraped")
    accepted = wait_until(lambda: query('intake_events_total{outcome="accepted"}'), timeout=30,
                          message="intake's counters in Prometheus")
    assert sum(float(r["value"][1]) for r in accepted) >= 1
