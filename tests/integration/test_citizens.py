"""The citizens' lookup through the running services: the JSON API, the page in a real browser
(Debian's chromium, headless, driven by chromedriver), and the SMS reply through Kannel's fake SMSC."""

import statistics
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from shared.lookup import lookup_token
from tests.fixtures.sample import dossier_code, event
from tests.integration.conftest import OPERATOR, ROOT, SECRETS, STACK_DIR, STACK_ENV, fuzz, service, wait_until
from tests.integration.test_notifications import START, received_by_smsc, start_notifications

SHOTS = STACK_DIR / "screenshots"


def lookup_secret() -> str:
    return (SECRETS / "dossier_lookup_secret").read_text()


def life(code: str, phone: str) -> list[dict]:
    at = lambda hours: START + timedelta(hours=hours)  # noqa: E731
    return [
        event("dossier.received", code, at(0), processing_time={"value": 2, "unit": "working_days"},
              applicant={"name": "Trần Thị Bình", "phone": phone, "sms_opt_in": True}),
        event("dossier.transferred", code, at(1), from_unit="Bộ phận một cửa", to_unit="Tư pháp - Hộ tịch"),
        event("dossier.supplement_requested", code, at(2), reason="Thiếu bản sao căn cước"),
    ]


@pytest.fixture(scope="module")
def citizen(stack, request):
    """A dossier awaiting a supplement, and processing answering lookups (strict limits, except the
    code's failures, raised for the timing test)."""
    from tests.integration.conftest import Pipeline, namespace

    settings = namespace(stack)
    pipeline = Pipeline(settings, service("intake", settings).start(), [])
    processing = pipeline.add_processing(DOSSIER_PROCESSING_LOOKUP_FAILURES_PER_CODE_PER_HOUR="200",
                                         DOSSIER_PROCESSING_LOOKUP_FAILURES_PER_CLIENT_CODE_PER_HOUR="200",
                                         DOSSIER_PROCESSING_LOOKUP_PER_CLIENT_PER_MINUTE="400").start()
    code = dossier_code(START, sequence=701)
    pipeline.post(life(code, "0912345678"))
    wait_until(lambda: httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 200,
               message="the dossier processed")
    yield pipeline, processing, code
    for process in (pipeline.intake, *pipeline.processing):
        process.stop()


def test_the_operators_lookup_needs_an_operator_key(citizen):
    _, processing, code = citizen
    assert httpx.get(f"{processing.url}/v1/dossiers/{code}").status_code == 401
    assert httpx.get(f"{processing.url}/v1/dossiers/{code}", headers={"authorization": "Bearer x"}).status_code == 401
    shown = httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).json()
    assert shown["applicant"]["name"] == "Trần Thị Bình" and shown["applicant"]["phone"] == "09******78"


def test_a_citizen_sees_their_dossier_with_the_last_four_digits_or_the_token_and_nothing_personal(citizen):
    _, processing, code = citizen
    by_digits = httpx.get(f"{processing.url}/v1/lookup/{code}", params={"phone4": "5678"})
    assert by_digits.status_code == 200, by_digits.text
    shown = by_digits.json()
    assert shown["state_name"] == "Cần bổ sung hồ sơ" and shown["missing"] == "Thiếu bản sao căn cước"
    assert [s["name"] for s in shown["steps"]] == ["Tiếp nhận hồ sơ", "Chuyển bộ phận giải quyết",
                                                   "Yêu cầu bổ sung hồ sơ"]
    assert "Bình" not in by_digits.text and "0912" not in by_digits.text and "applicant" not in shown
    by_token = httpx.get(f"{processing.url}/v1/lookup/{code}", params={"token": lookup_token(lookup_secret(), code)})
    assert by_token.json() == shown


def test_a_wrong_factor_and_an_unknown_code_get_the_same_404_in_the_same_time(citizen):
    _, processing, code = citizen
    unknown = dossier_code(START, sequence=9701)

    def answer(dossier: str) -> tuple[httpx.Response, float]:
        began = time.perf_counter()
        response = httpx.get(f"{processing.url}/v1/lookup/{dossier}", params={"phone4": "0000"})
        return response, time.perf_counter() - began

    wrong, absent = [answer(code) for _ in range(40)], [answer(unknown) for _ in range(40)]
    assert {(r.status_code, r.text) for r, _ in wrong} == {(r.status_code, r.text) for r, _ in absent}
    assert wrong[0][0].status_code == 404
    fast, slow = sorted([statistics.median(t for _, t in wrong), statistics.median(t for _, t in absent)])
    assert slow < 2 * fast + 0.002, (fast, slow)  # the same work: a key read and a comparison


@pytest.mark.parametrize("path, params", [
    ("{code}", {}),  # no factor
    ("{code}", {"phone4": "5678", "token": "a" * 16}),  # two
    ("{code}", {"phone4": "١٢٣٤"}),  # not ASCII digits
    ("{code}", {"phone4": "5" * 5000}),  # oversized
    ("{code}", {"token": "$where"}),
    ("000.00.38.H56-2603.*", {"phone4": "5678"}),
    ('{{"$gt": ""}}', {"phone4": "5678"}),
    ("000.00.38.H56-251399-0001", {"phone4": "5678"}),  # not a date
])
def test_what_is_not_a_code_and_a_factor_gets_a_4xx_at_once(citizen, path, params):
    _, processing, code = citizen
    quoted = httpx.URL(f"/x/{path.format(code=code)}").raw_path.decode()[3:]
    assert 400 <= httpx.get(f"{processing.url}/v1/lookup/{quoted}", params=params).status_code < 500


def test_failed_attempts_on_a_code_are_limited(citizen):
    pipeline, _, _ = citizen
    strict = pipeline.add_processing(DOSSIER_PROCESSING_LOOKUP_FAILURES_PER_CODE_PER_HOUR="3").start()
    code = dossier_code(START, sequence=702)  # a code of its own: the replicas share the count of failures
    pipeline.post(life(code, "0912345678"))
    wait_until(lambda: httpx.get(f"{strict.url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 200,
               message="the dossier processed")
    answers = [httpx.get(f"{strict.url}/v1/lookup/{code}", params={"phone4": f"00{n:02d}"}).status_code
               for n in range(5)]
    assert answers == [404, 404, 404, 429, 429]
    refused = httpx.get(f"{strict.url}/v1/lookup/{code}", params={"phone4": "5678"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0  # even with the right digits


def test_the_lookup_endpoints_answer_generated_requests_without_server_errors(citizen):
    pipeline, _, _ = citizen
    fuzzed = pipeline.add_processing().start()  # its own limits: generated requests use them up
    assert fuzz(fuzzed.url, OPERATOR) >= 3


def browser(tmp_path: Path) -> webdriver.Chrome:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=412,915"):  # a phone's screen
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def shown(driver: webdriver.Chrome, by: str, what: str) -> WebElement:
    """The element once the page submitted has loaded (a click returns before the next page is there)."""
    return WebDriverWait(driver, 10).until(lambda d: d.find_element(by, what))


def test_the_page_in_a_real_browser_finds_the_dossier_and_refuses_wrong_digits(citizen, tmp_path):
    _, processing, code = citizen
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver = browser(tmp_path)
    try:
        driver.get(f"{processing.url}/tra-cuu")
        assert driver.find_element(By.CSS_SELECTOR, "label[for=ma]").text == "Mã hồ sơ"
        driver.find_element(By.ID, "ma").send_keys(code)
        driver.find_element(By.ID, "so").send_keys("5678")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        state = shown(driver, By.ID, "trang-thai").text
        assert state.startswith("Cần bổ sung hồ sơ")
        assert "Thiếu bản sao căn cước" in driver.page_source
        assert len(driver.find_elements(By.CSS_SELECTOR, "ol.timeline li")) == 3
        shot = SHOTS / "tra-cuu.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000  # drawn, not blank

        driver.find_element(By.ID, "so").clear()
        driver.find_element(By.ID, "so").send_keys("0000")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        alert = shown(driver, By.CSS_SELECTOR, "[role=alert]").text
        assert alert.startswith("Không tìm thấy hồ sơ") and "Trần" not in driver.page_source
        driver.save_screenshot(str(SHOTS / "tra-cuu-sai.png"))

        # The QR code's link: the code and the token fill the form, the dossier shows at once.
        driver.get(f"{processing.url}/tra-cuu?ma={code}&t={lookup_token(lookup_secret(), code)}")
        assert driver.find_element(By.ID, "trang-thai").text.startswith("Cần bổ sung hồ sơ")
        requests = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert requests == []  # nothing loaded but the page itself
    finally:
        driver.quit()


def kannel_mo(sender: str, text: str) -> None:
    """A phone sends an SMS to the brandname number, through the fake SMSC (deploy/local/kannel.sh mo)."""
    env = {**STACK_ENV, "PATH": "/usr/bin:/bin"}
    subprocess.run(["bash", str(ROOT / "deploy" / "local" / "kannel.sh"), "mo", sender, "8100", text], env=env,
                   check=True)


def test_an_sms_asking_for_a_dossier_is_answered_only_to_the_registered_phone(stack, pipeline):
    stack.ensure("kannel")
    gateway = [STACK_DIR / "logs" / f"kannel-{name}.log" for name in ("core", "bearerbox", "smsbox")]
    gateway_start = {path: path.stat().st_size if path.exists() else 0 for path in gateway}
    pipeline.add_processing().start()
    notifications = start_notifications(pipeline, port=int(STACK_ENV["DOSSIER_NOTIFICATIONS_PORT"]))
    try:
        code = dossier_code(START, sequence=702)
        pipeline.post(life(code, "0912000702"))
        wait_until(lambda: received_by_smsc(code), timeout=60, message="the receipt's SMS")  # its status is known

        kannel_mo("84912000702", f"HS {code}")
        [answer] = wait_until(lambda: [t for t in received_by_smsc(code) if t.startswith(f"Ho so {code}:")],
                              timeout=60, message="the reply to the registered phone")
        assert answer.rstrip(">") == f"Ho so {code}: Can bo sung ho so."  # no date while a supplement is awaited
        def neutral(number: str) -> list[str]:
            return [line for line in sms_log_lines() if f"8100 {number} text Khong tim thay ho so" in line]

        # One at a time: the fake SMSC reads what its FIFO holds at once as one message.
        kannel_mo("84988000702", f"HS {code}")  # another phone
        wait_until(lambda: neutral("84988000702"), timeout=60, message="the neutral reply to another phone")
        kannel_mo("84988000703", "\u00ff junk %%% HS ?")
        wait_until(lambda: neutral("84988000703"), timeout=60, message="the neutral reply to junk")
        assert not [t for t in received_by_smsc(code) if t.startswith(f"Ho so {code}:") and t != answer]
        logs = notifications.logs()
        assert "0988000702" not in logs and "84988000702" not in logs and "0912000702" not in logs
        gateway_logs = "".join(path.read_bytes()[gateway_start[path]:].decode(errors="replace") for path in gateway)
        assert "88000702" not in gateway_logs and "12000702" not in gateway_logs  # Kannel's own logs: no number
    finally:
        notifications.stop()


def sms_log_lines() -> list[str]:
    from tests.integration.test_notifications import LOG_START, SMS_LOG

    with SMS_LOG.open("rb") as log:
        log.seek(LOG_START)
        return log.read().decode(errors="replace").splitlines()
