"""PAKN (docs/domain.md §9) through the running services: CloudEvents in at intake, folded by processing
(a step that cannot apply dead-lettered with its reason, a duplicate nothing), kept by metrics (across a
restart), answered by the report API (5.2, 5.3, the open ones with their due, the late ones; operators
only, scoped) and shown on the operators' page in headless Chromium, with a screenshot."""

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from shared.contracts import DeadLetter
from tests.fixtures.sample import VN, dossier_code
from tests.integration.conftest import (ANY_SOURCE_KEY, OPERATOR, PROVINCE_KEY, Pipeline, ServiceProcess, namespace,
                                         read_topic, service, wait_until)
from tests.integration.test_metrics import FAST
from tests.integration.test_operators import SHOTS, chromium, screenshot, submit

BA_THUOC, THANH_BA = "14923", "08152"  # Thanh Hóa (38), Phú Thọ (25): units in deploy/dvcqg/units.yaml
UNIT, OTHER_UNIT = "923.14.00.H38", "152.08.00.H25"
SOURCE = "urn:pakn:38"
NAMED = dossier_code(datetime(2025, 7, 1, tzinfo=VN), sequence=42, unit=UNIT)
AS_OF = "2025-07-23T10:00:00+07:00"
API = {"from": "2025-07-01", "to": "2025-07-31", "as_of": AS_OF}


def pakn(code: str, type_: str, day: int, hour: int, n: int = 0, **data) -> dict:
    return {"specversion": "1.0", "id": f"{code}-{type_}-{n}", "source": SOURCE, "type": f"feedback.{type_}",
            "subject": code, "time": datetime(2025, 7, day, hour, tzinfo=VN).isoformat(), "data": data}


def received(code: str, day: int, hour: int, **data) -> dict:
    return pakn(code, "received", day, hour, unit=UNIT, commune_code=BA_THUOC, channel="portal", **data)


# Tuesday 1/7/2025; 15 working days from 1/7 09:00 is 22/7 09:00.
EVENTS = [
    # answered and published in time, but disliked twice: on time (5.2), not satisfied (5.3); names a dossier
    received("PAKN-A", 1, 9, dossier_code=NAMED), pakn("PAKN-A", "answered", 3, 9), pakn("PAKN-A", "published", 4, 9),
    pakn("PAKN-A", "rated", 4, 10, 1, rating="dislike"), pakn("PAKN-A", "rated", 4, 11, 2, rating="dislike"),
    received("PAKN-B", 1, 10),  # still open on 23/7: late since 22/7 10:00
    pakn("PAKN-B", "published", 2, 9),  # published before it was answered: dead-lettered
    received("PAKN-C", 14, 9),  # open, due 4/8 09:00: within
    # forwarded to Thanh Ba's unit on 2/7 11:00: Thanh Ba's, due 23/7 11:00
    received("PAKN-D", 1, 11), pakn("PAKN-D", "forwarded", 2, 11, from_unit=UNIT, to_unit=OTHER_UNIT),
    received("PAKN-E", 2, 9), pakn("PAKN-E", "rejected", 7, 9, reason="Không thuộc thẩm quyền"),  # 2 days: late
]


@pytest.fixture(scope="module")
def running(stack) -> Iterator[tuple[Pipeline, ServiceProcess]]:
    settings = namespace(stack)
    pipeline = Pipeline(settings, service("intake", settings).start(), [])
    pipeline.add_processing().start()
    metrics = service("metrics", settings, **FAST).start()
    pipeline.post(EVENTS)
    pipeline.post(EVENTS[:2])  # sent again: duplicates
    wait_until(lambda: len(report(metrics, BA_THUOC)["open"]) == 2 and report(metrics, THANH_BA)["counts"]["taken"],
               timeout=60, message="every PAKN kept by metrics")
    yield pipeline, metrics
    for process in (metrics, pipeline.intake, *pipeline.processing):
        process.stop()


def report(metrics: ServiceProcess, commune: str, headers: dict = OPERATOR) -> dict:
    answer = httpx.get(f"{metrics.url}/v1/reports/communes/{commune}/feedback", params=API, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


EXPECTED = {"on_time": 2, "taken": 4, "satisfied": 1, "first_received": 4, "complaints": 1}


def test_the_report_api_answers_5_2_5_3_the_open_and_the_late(running):
    pipeline, metrics = running
    ours = report(metrics, BA_THUOC)
    assert ours["counts"] == EXPECTED and ours["rates"] == {"on_time": 0.5, "satisfaction": 0.25}
    assert [(r["feedback_code"], r["unit"], r["due_at"], r["late"]) for r in ours["open"]] == [
        ("PAKN-B", UNIT, "2025-07-22T10:00:00+07:00", True), ("PAKN-C", UNIT, "2025-08-04T09:00:00+07:00", False)]
    assert [(r["feedback_code"], r["handled_at"]) for r in ours["late"]] == [
        ("PAKN-E", "2025-07-07T09:00:00+07:00"), ("PAKN-B", None)]
    assert "Không thuộc" not in json.dumps(ours)  # the rejection's text stays with processing
    theirs = report(metrics, THANH_BA)
    assert theirs["counts"] == {"on_time": 1, "taken": 1, "satisfied": 1, "first_received": 1, "complaints": 0}
    assert [(r["feedback_code"], r["unit"], r["due_at"]) for r in theirs["open"]] == [
        ("PAKN-D", OTHER_UNIT, "2025-07-23T11:00:00+07:00")]
    # the report API's rules: an operator key, scoped to its provinces
    url = f"{metrics.url}/v1/reports/communes/{BA_THUOC}/feedback"
    assert httpx.get(url, params=API).status_code == 401
    scoped = {"authorization": f"Bearer {PROVINCE_KEY}"}
    assert report(metrics, BA_THUOC, scoped)["counts"] == EXPECTED
    assert httpx.get(f"{metrics.url}/v1/reports/communes/{THANH_BA}/feedback", params=API,
                     headers=scoped).status_code == 403
    assert httpx.get(url, params=API | {"format": "csv"}, headers=OPERATOR).text.count("PAKN-") == 4


def test_what_cannot_apply_is_dead_lettered_with_its_reason_and_a_duplicate_changes_nothing(running):
    pipeline, _ = running
    [processing] = pipeline.processing
    rejected = asyncio.run(read_topic(pipeline.settings, pipeline.settings.topic_dlq))
    assert [(json.loads(r.value)["id"], DeadLetter.from_headers(r.headers).reason) for r in rejected] == [
        ("PAKN-B-published-0", "published before it was answered")]
    metrics = httpx.get(f"{processing.url}/metrics").text
    assert 'processing_feedback_events_total{outcome="duplicate"} 2.0' in metrics
    assert 'processing_feedback_events_total{outcome="dead_lettered"} 1.0' in metrics


def test_intake_refuses_a_pakn_for_a_commune_outside_the_keys_provinces(running):
    pipeline, _ = running
    outside = pakn("PAKN-X", "received", 1, 9, unit=OTHER_UNIT, commune_code=THANH_BA, channel="portal")
    outside["source"] = "urn:motcua:38"
    answer = httpx.post(f"{pipeline.intake.url}/v1/events", json=outside,
                        headers={"authorization": f"Bearer {PROVINCE_KEY}", "content-type": "application/cloudevents+json"})
    assert answer.status_code == 403 and THANH_BA in answer.text
    bad = pakn("bad code!", "rated", 1, 9, rating="meh")
    answer = httpx.post(f"{pipeline.intake.url}/v1/events", json=bad,
                        headers={"authorization": f"Bearer {ANY_SOURCE_KEY}", "content-type": "application/cloudevents+json"})
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json()["errors"]} == {"subject", "data.rating"}


def test_metrics_keeps_the_pakn_across_a_restart(running):
    pipeline, metrics = running
    metrics.stop()
    metrics.start()
    assert report(metrics, BA_THUOC)["counts"] == EXPECTED


def test_the_operators_page_shows_the_open_pakn_with_their_due_and_the_late(running, tmp_path: Path):
    _, metrics = running
    browser = chromium(tmp_path)
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.get(f"{metrics.url}/phan-anh?" + str(httpx.QueryParams(
            {"ma": BA_THUOC, "tu": "01/07/2025", "den": "31/07/2025", "luc": "23/07/2025 10:00"})))
        submit(browser, "dang-nhap", {"khoa": ANY_SOURCE_KEY})
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "bang-pakn-mo"))
        assert browser.find_element(By.ID, "pakn-dung-han").text == "50,00 %"
        assert browser.find_element(By.ID, "pakn-hai-long").text == "25,00 %"
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#bang-pakn-mo tbody tr")]
        assert rows == [f"PAKN-B {UNIT} Đang xử lý 01/07/2025 10:00 22/07/2025 10:00 Quá hạn",
                        f"PAKN-C {UNIT} Đang xử lý 14/07/2025 09:00 04/08/2025 09:00 Trong hạn"]
        late = [r.text.split()[0] for r in browser.find_elements(By.CSS_SELECTOR, "#bang-pakn-tre tbody tr")]
        assert late == ["PAKN-E", "PAKN-B"]
        tab = browser.find_element(By.CSS_SELECTOR, 'nav.tabs a[aria-current="page"]')
        assert tab.text == "Phản ánh, kiến nghị"
        screenshot(browser, "phan-anh")
    finally:
        browser.quit()


def test_the_events_dates_are_not_the_runs(running):
    """The figures above are as of AS_OF, never the machine's day (a PAKN open now would be late)."""
    _, metrics = running
    later = httpx.get(f"{metrics.url}/v1/reports/communes/{BA_THUOC}/feedback",
                      params=API | {"to": "2025-08-31",
                                    "as_of": (datetime.fromisoformat(AS_OF) + timedelta(days=30)).isoformat()},
                      headers=OPERATOR).json()
    assert later["counts"]["on_time"] == 1  # PAKN-C is past its due by then
