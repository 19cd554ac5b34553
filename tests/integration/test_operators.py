"""The operators' page through the running services, in a real browser (Debian's chromium, headless,
at a desktop's width): after a small history of Bá Thước and a neighbour, the page shows Bá Thước's
report and rank with its charts drawn, loads nothing from another origin, downloads CSV and XLSX
holding the JSON API's numbers, and answers bad dates and unknown places with a Vietnamese error."""

import csv
import io
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from services.metrics.export import value_at
from services.metrics.vietnamese import number, percent
from tests.fixtures.sample import VN, dossier_code, event
from tests.integration.conftest import (ANY_SOURCE_KEY, OPERATOR, ROOT, STACK_DIR, Pipeline, ServiceProcess, namespace, service,
                                         wait_until)
from tests.integration.test_citizens import shown
from tests.integration.test_metrics import FAST

SHOTS = STACK_DIR / "screenshots"
BA_THUOC, NEIGHBOUR = "14923", "14797"  # Xã Bá Thước, Phường Hạc Thành (Thanh Hóa, 38)
MONDAY = datetime(2025, 7, 7, 9, 0, tzinfo=VN)
FORM = {"ma": BA_THUOC, "tu": "01/07/2025", "den": "10/07/2025", "luc": "10/07/2025 17:00"}
API = {"from": "2025-07-01", "to": "2025-07-10", "as_of": "2025-07-10T17:00:00+07:00"}
STEP_DUE = datetime(2025, 7, 9, 17, 0, tzinfo=VN)
APPLICANT = {"name": "Lê Thị Hoa", "phone": "0987654321", "sms_opt_in": False}


def life(code: str, commune: str, received: datetime, days: float, steps: list[tuple[str, float, dict]]) -> list[dict]:
    """A dossier received at `received` with `days` working days, then `steps` (type, hours after, data)."""
    return [event("dossier.received", code, received, commune_code=commune, applicant=APPLICANT,
                  processing_time={"value": days, "unit": "working_days"}),
            *(event(f"dossier.{kind}", code, received + timedelta(hours=hours), **data) for kind, hours, data in steps)]


DONE = [("digitized", 0.1, {}), ("transferred", 0.5, {"to_unit": "Công chức Tư pháp - Hộ tịch"}), ("resolved", 3, {}),
        ("payment_completed", 3.2, {}), ("returned", 4, {}), ("rated", 4.1, {})]


def history() -> list[dict]:
    """Bá Thước: four dossiers in time, one late, one overdue, one due soon, one within its deadline whose
    step is overdue;
    the neighbour: three in time (it ranks first, Bá Thước second of the province's 166)."""
    code = lambda n, day=MONDAY: dossier_code(day, sequence=n)  # noqa: E731
    lives = [life(code(1700 + n), BA_THUOC, MONDAY + timedelta(days=n // 2, hours=n), 2, DONE) for n in range(4)]
    lives += [
        life(code(1710), BA_THUOC, MONDAY, 1, [("resolved", 73, {})]),  # due Tue 8/7 09:00, resolved Thu 10/7: late
        life(code(1711), BA_THUOC, MONDAY, 1, [("transferred", 1, {"to_unit": "Văn phòng - Thống kê"})]),  # overdue
        life(code(1712, MONDAY + timedelta(days=3)), BA_THUOC, MONDAY + timedelta(days=3), 1,
             [("transferred", 1, {"to_unit": "Công chức Địa chính"})]),  # due Fri 11/7 09:00: due soon
        # Within its deadline (due Wed 16/7), but the step Văn hóa holds was due Wed 9/7 17:00: overdue on 10/7.
        life(code(1713, MONDAY + timedelta(days=2)), BA_THUOC, MONDAY + timedelta(days=2), 5,
             [("transferred", 1, {"to_unit": "Công chức Văn hóa - Xã hội", "step_due_at": STEP_DUE.isoformat()})]),
    ]
    lives += [life(code(1720 + n, MONDAY), NEIGHBOUR, MONDAY + timedelta(hours=n), 2, DONE)
              for n in range(3)]
    return [e for events in lives for e in events]


@pytest.fixture(scope="module")
def metrics(stack) -> Iterator[ServiceProcess]:
    """intake, processing and metrics on a namespace of their own, after the history; the charting
    library vendored as `make` does."""
    subprocess.run(["bash", str(ROOT / "deploy" / "local" / "install-js.sh")], check=True)
    settings = namespace(stack)
    pipeline = Pipeline(settings, service("intake", settings).start(), [])
    pipeline.add_processing().start()
    running = service("metrics", settings, **FAST).start()
    events = history()
    pipeline.post(events)
    received = len([e for e in events if e["type"] == "dossier.received"])
    wait_until(lambda: sum(r["received"] for r in api(running, "provinces/38/scorecard")["communes"]) == received,
               timeout=60, message="every dossier counted")
    wait_until(lambda: api(running, f"communes/{BA_THUOC}")["open"]["due_soon"] == 1, timeout=60,
               message="every event folded")
    yield running
    for process in (running, pipeline.intake, *pipeline.processing):
        process.stop()


def api(metrics: ServiceProcess, path: str, **params: str) -> dict:
    answer = httpx.get(f"{metrics.url}/v1/reports/{path}", params=API | params, headers=OPERATOR, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def chromium(tmp_path: Path) -> webdriver.Chrome:
    """Headless Chromium at a desktop's width, with a profile of its own."""
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1440,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


@pytest.fixture
def driver(tmp_path: Path, metrics: ServiceProcess) -> Iterator[webdriver.Chrome]:
    """Chromium at a desktop's width, saving downloads in tmp_path/downloads, signed in as an operator
    (its key typed once in the sign-in form; the page keeps a session)."""
    browser = chromium(tmp_path)
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                            "downloadPath": str(tmp_path / "downloads")})
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{metrics.url}/")  # not signed in: the sign-in form, then back here
    WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(f"{metrics.url}/dang-nhap"))
    submit(browser, "dang-nhap", {"khoa": ANY_SOURCE_KEY})
    WebDriverWait(browser, 10).until(lambda d: d.current_url == f"{metrics.url}/")
    yield browser
    browser.quit()


def test_the_sign_in_form_refuses_a_wrong_key_and_the_page_keeps_a_session(metrics, tmp_path):
    """The page answers only a signed-in operator; the session cookie is HttpOnly and SameSite=Strict."""
    browser = chromium(tmp_path)
    try:
        browser.get(f"{metrics.url}/bao-cao?{httpx.QueryParams(FORM)}")
        assert browser.current_url.startswith(f"{metrics.url}/dang-nhap") and browser.get_cookies() == []
        submit(browser, "dang-nhap", {"khoa": "not-a-key"})
        WebDriverWait(browser, 10).until(lambda d: "Khóa truy cập không đúng" in d.page_source)
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "operators-sign-in.png"))
        hint, key = (browser.find_element(By.ID, name).rect["width"] for name in ("dang-nhap-khoa-hint", "dang-nhap-khoa"))
        assert hint >= key - 1, (hint, key)  # the hint under the key, as wide (it wrapped in a third of it)
        submit(browser, "dang-nhap", {"khoa": ANY_SOURCE_KEY})
        WebDriverWait(browser, 10).until(lambda d: "/bao-cao" in d.current_url)  # back where it was going
        [cookie] = browser.get_cookies()
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
        assert browser.execute_script("return document.cookie") == ""  # no script reads it
        assert httpx.get(f"{metrics.url}/bao-cao", params=FORM, follow_redirects=False).status_code == 303
        assert httpx.get(f"{metrics.url}/bao-cao", params=FORM,
                         cookies={cookie["name"]: cookie["value"]}).status_code == 200
        browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
        WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(f"{metrics.url}/dang-nhap"))
        assert browser.get_cookies() == []
    finally:
        browser.quit()


def submit(driver: webdriver.Chrome, form: str, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        field = driver.find_element(By.CSS_SELECTOR, f"form#{form} [name={name}]")
        field.clear()
        field.send_keys(value)
    driver.find_element(By.CSS_SELECTOR, f"form#{form} button[type=submit]").click()


def click(driver: webdriver.Chrome, link_text: str) -> None:
    """Clicks a link in the middle of the screen (the tables' sticky headers cover the top)."""
    link = driver.find_element(By.LINK_TEXT, link_text)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()


def status(driver: webdriver.Chrome) -> int:
    return driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")


def drawn(driver: webdriver.Chrome, canvas_id: str) -> int:
    """The canvas's painted pixels, once Chart.js has drawn it."""
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.ID, canvas_id).get_attribute("data-drawn") == "true")
    return driver.execute_script("""
        const canvas = document.getElementById(arguments[0]);
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
        return painted;""", canvas_id)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The whole page at a desktop's width."""
    height = driver.execute_script("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
    driver.set_window_size(1440, min(height + 140, 4000))
    shot = SHOTS / f"operators-{name}.png"
    driver.save_screenshot(str(shot))
    driver.set_window_size(1440, 1000)
    assert shot.stat().st_size > 10_000  # drawn, not blank
    return shot


def same_origin_only(driver: webdriver.Chrome, metrics: ServiceProcess) -> list[str]:
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(metrics.url + "/") for url in loaded), loaded
    return loaded


def test_the_page_shows_ba_thuocs_report_and_rank_with_charts_drawn_from_this_service_only(metrics, driver):
    report = api(metrics, f"communes/{BA_THUOC}")
    card = api(metrics, "provinces/38/scorecard")
    ours = next(r for r in card["communes"] if r["commune_code"] == BA_THUOC)
    assert (ours["rank"], ours["of"]) == (2, 166)

    driver.get(f"{metrics.url}/")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Bảng điều hành"
    submit(driver, "xa", FORM)
    assert shown(driver, By.ID, "tiep-nhan").text == number(report["received"]) == "8"
    assert driver.find_element(By.TAG_NAME, "h1").text == "Xã Bá Thước (14923) · Thanh Hóa"
    assert driver.find_element(By.ID, "hang").text == "2/166"
    assert driver.find_element(By.ID, "dung-han").text == percent(report["rates"]["on_time"])
    assert "tính đến 10/07/2025 17:00" in driver.find_element(By.CLASS_NAME, "period").text
    assert drawn(driver, "bieu-do-tinh-trang") > 2_000 and drawn(driver, "bieu-do-ti-le") > 2_000
    loaded = same_origin_only(driver, metrics)
    assert any(url.endswith("/static/vendor/chart.umd.min.js") for url in loaded)
    screenshot(driver, "bao-cao")
    assert "Lê Thị Hoa" not in driver.page_source and "0987654321" not in driver.page_source

    click(driver, "Xếp hạng trong tỉnh")
    row = shown(driver, By.CSS_SELECTOR, "tr#xa-14923.chosen")
    assert row.text.startswith(f"2/166 Xã Bá Thước {ours['received']} {number(ours['score'], 2)}")
    assert driver.find_element(By.CSS_SELECTOR, "#bang-xep-hang tbody tr").text.startswith("1/166 Phường Hạc Thành")
    assert drawn(driver, "bieu-do-xep-hang") > 2_000
    same_origin_only(driver, metrics)
    screenshot(driver, "xep-hang")

    click(driver, "Xã Bá Thước")
    shown(driver, By.LINK_TEXT, "Điểm có nguy cơ mất").click()
    submit(driver, "xa", {"han": "11/07/2025"})  # a horizon that takes in the dossier due Friday
    risk = api(metrics, f"communes/{BA_THUOC}/at-risk", horizon="2025-07-11T23:59:59.999999+07:00")
    assert shown(driver, By.ID, "nguy-co").text == number(risk["points_at_risk"], 2)
    codes = [row.find_element(By.TAG_NAME, "td").text
             for row in driver.find_elements(By.CSS_SELECTOR, "#bang-nguy-co tbody tr")]
    # By the portal's 2.1, the overdue one is late already: only the one due Friday can still cost points.
    assert codes == [d["dossier_code"] for d in risk["dossiers"]] == ["000.00.38.H56-250710-1712"]
    assert drawn(driver, "bieu-do-diem") > 2_000
    screenshot(driver, "nguy-co")

    click(driver, "Nơi hồ sơ đang chờ")
    held = {r.find_elements(By.TAG_NAME, "td")[0].text for r in
            WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#bang-don-vi tbody tr"))}
    assert held == {u["unit"] for u in api(metrics, f"communes/{BA_THUOC}/units")["units"]}
    assert drawn(driver, "bieu-do-don-vi") > 2_000
    screenshot(driver, "don-vi")


def test_the_units_view_lists_the_steps_overdue_in_dossiers_still_in_time(metrics, driver):
    answer = api(metrics, f"communes/{BA_THUOC}/units")
    waiting = dossier_code(MONDAY + timedelta(days=2), sequence=1713)
    assert answer["overdue_steps"] == [{"dossier_code": waiting, "unit": "Công chức Văn hóa - Xã hội",
                                        "step_due_at": STEP_DUE.isoformat(),
                                        "due_at": "2025-07-16T09:00:00+07:00"}]
    rows = {u["unit"]: u for u in answer["units"]}
    assert rows["Công chức Văn hóa - Xã hội"]["steps_overdue"] == 1
    assert rows["Công chức Văn hóa - Xã hội"]["open"] == {"within_deadline": 1}
    assert sum(u["steps_overdue"] for u in answer["units"]) == 1  # the overdue dossier's step is not one
    earlier = api(metrics, f"communes/{BA_THUOC}/units", as_of="2025-07-09T23:59:00+07:00")
    assert earlier["overdue_steps"] == []  # still the step's own due date

    driver.get(f"{metrics.url}/don-vi?{httpx.QueryParams(FORM)}")
    assert shown(driver, By.ID, "buoc-qua-han").text == "1"
    [row] = driver.find_elements(By.CSS_SELECTOR, "#bang-buoc-qua-han tbody tr")
    assert [c.text for c in row.find_elements(By.TAG_NAME, "td")] == [
        waiting, "Công chức Văn hóa - Xã hội", "09/07/2025 17:00", "16/07/2025 09:00"]
    [unit] = [r for r in driver.find_elements(By.CSS_SELECTOR, "#bang-don-vi tbody tr")
              if r.find_element(By.TAG_NAME, "td").text == "Công chức Văn hóa - Xã hội"]
    assert unit.find_elements(By.TAG_NAME, "td")[-1].text == "1"
    assert "Lê Thị Hoa" not in driver.page_source and "0987654321" not in driver.page_source
    screenshot(driver, "buoc-qua-han")


def download(driver: webdriver.Chrome, link: str, folder: Path) -> bytes:
    """Clicks a download link and waits for the file the browser saves."""
    before = set(folder.glob("*")) if folder.exists() else set()
    driver.find_element(By.ID, link).click()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = [f for f in (set(folder.glob("*")) if folder.exists() else set()) - before
                if not f.name.endswith(".crdownload")]
        if done:
            time.sleep(0.2)  # the rename is the last step; let the file settle
            return done[0].read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{link} not downloaded")


def xlsx_parts(data: bytes) -> tuple[dict, list[list]]:
    """The title block (name → value) and the table's rows, the header's row found by its empty row above."""
    rows = [[c.value for c in row] for row in load_workbook(io.BytesIO(data)).active.iter_rows()]
    blank = next(n for n, row in enumerate(rows) if n and all(v is None for v in row))
    return {row[0]: row[1] for row in rows[1:blank]}, rows[blank + 1:]


def csv_parts(data: bytes) -> tuple[list[list[str]], list[list[str]]]:
    assert data.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    blank = lines.index([])
    return lines[:blank], lines[blank + 1:]


def test_the_downloads_hold_the_json_apis_numbers_with_the_period_and_the_instant(metrics, driver, tmp_path):
    folder = tmp_path / "downloads"
    driver.get(f"{metrics.url}/bao-cao?{httpx.QueryParams(FORM)}")
    report = api(metrics, f"communes/{BA_THUOC}")

    about, rows = csv_parts(download(driver, "tai-csv", folder))
    assert about[1:] == [["Từ ngày (ngày tiếp nhận)", "2025-07-01"], ["Đến ngày (ngày tiếp nhận)", "2025-07-10"],
                         ["Tính đến (giờ Việt Nam)", "2025-07-10T17:00:00+07:00"]]
    assert rows[0] == ["Chỉ tiêu", "Số liệu", "Mã chỉ tiêu (JSON)"]
    for _, value, path in rows[1:]:
        expected = value_at(report, path)
        assert (value == "" if expected is None else float(value) == expected), path

    sheet = load_workbook(io.BytesIO(download(driver, "tai-xlsx", folder))).active
    assert (sheet["B2"].value, sheet["B3"].value, sheet["B4"].value) == (
        datetime(2025, 7, 1), datetime(2025, 7, 10), datetime(2025, 7, 10, 17, 0))
    figures = {row[2].value: row[1] for row in sheet.iter_rows(min_row=7)}
    assert len(figures) == len(rows) - 1
    for path, cell in figures.items():  # Excel keeps 16 significant digits ("%.16g"); the CSV has the JSON's
        expected = value_at(report, path)
        assert cell.value == (expected if expected is None else pytest.approx(expected, rel=1e-15)), path
    assert figures["rates.on_time"].number_format == "0.00%" and figures["received"].value == 8

    click(driver, "Xếp hạng trong tỉnh")
    shown(driver, By.ID, "bang-xep-hang")
    card = api(metrics, "provinces/38/scorecard")
    about, table = xlsx_parts(download(driver, "tai-xlsx", folder))
    assert about["Tỉnh"] == "Thanh Hóa (38)" and about["Tính đến (giờ Việt Nam)"] == datetime(2025, 7, 10, 17, 0)
    assert table[0][:4] == ["Hạng", "Trên", "Mã xã", "Tên xã"] and len(table) == 1 + 166
    ours = next(r for r in card["communes"] if r["commune_code"] == BA_THUOC)
    [row] = [r for r in table if r[2] == BA_THUOC]
    assert row[:6] == [ours["rank"], ours["of"], BA_THUOC, "Xã Bá Thước", ours["received"],
                       pytest.approx(ours["score"], rel=1e-15)]
    assert row[6] == ours["measured_max"]
    assert row[7:19:2] == pytest.approx([g["points"] for g in ours["groups"]], rel=1e-15)
    assert row[-3] == pytest.approx(ours["on_time_views"]["portal"]["ratio"], rel=1e-15)
    _, rows = csv_parts(download(driver, "tai-csv", folder))
    assert [r[2] for r in rows[1:3]] == [NEIGHBOUR, BA_THUOC] and float(rows[2][5]) == ours["score"]

    driver.get(f"{metrics.url}/nguy-co?{httpx.QueryParams(FORM | {'han': '11/07/2025'})}")  # takes in Friday's due
    risk = api(metrics, f"communes/{BA_THUOC}/at-risk", horizon="2025-07-11T23:59:59.999999+07:00")
    about, table = xlsx_parts(download(driver, "tai-xlsx", folder))
    assert about["Điểm có nguy cơ mất"] == pytest.approx(risk["points_at_risk"], rel=1e-15)
    assert about["Hạn xét (giờ Việt Nam)"] == datetime(2025, 7, 11, 23, 59, 59)  # the day's end, not the next day
    assert [row[0] for row in table[1:]] == [d["dossier_code"] for d in risk["dossiers"]] != []

    driver.get(f"{metrics.url}/don-vi?{httpx.QueryParams(FORM)}")
    units = api(metrics, f"communes/{BA_THUOC}/units")["units"]
    text = download(driver, "tai-csv", folder).decode("utf-8-sig")
    _, rows = csv_parts(text.encode("utf-8-sig"))
    assert [(r[0], float(r[1])) for r in rows[1:]] == [(u["unit"], u["working_hours_held"]) for u in units]
    about, table = xlsx_parts(download(driver, "tai-xlsx", folder))
    assert [(r[0], r[1]) for r in table[1:]] == [(u["unit"], u["working_hours_held"]) for u in units]
    cells = " ".join(str(v) for row in [*about.items(), *table] for v in row)
    for content in (text, cells):  # the applicant was sent with every dossier: never in a report
        assert "Lê Thị Hoa" not in content and "0987654321" not in content


@pytest.mark.parametrize("typed, code, says", [
    ({"tu": "31/02/2025"}, 400, "Từ ngày: ngày “31/02/2025” không có trên lịch."),
    ({"tu": "11/07/2025"}, 400, "Từ ngày 11/07/2025 sau đến ngày 10/07/2025"),
    ({"luc": "10/07/2025 25:00"}, 400, "Tính đến: “10/07/2025 25:00” có giờ không hợp lệ"),
    ({"ma": "99999"}, 404, "Không có xã, phường, đặc khu nào mã 99999 trong danh mục"),
])
def test_bad_dates_and_an_unknown_commune_in_the_form_show_a_vietnamese_error(metrics, driver, typed, code, says):
    driver.get(f"{metrics.url}/")
    submit(driver, "xa", FORM | typed)
    assert says in shown(driver, By.CSS_SELECTOR, "[role=alert]").text
    assert status(driver) == code
    assert driver.find_element(By.CSS_SELECTOR, "form#xa [name=ma]").get_attribute("value") == (FORM | typed)["ma"]


def test_an_unknown_province_and_what_no_form_would_send_get_the_error_too(metrics, driver):
    driver.get(f"{metrics.url}/xep-hang?tinh=99&tu=01/07/2025&den=10/07/2025")
    assert "Không có tỉnh, thành phố nào mã “99”" in shown(driver, By.CSS_SELECTOR, "[role=alert]").text
    assert status(driver) == 404
    driver.get(f"{metrics.url}/nguy-co?ma=14923&tu=2025-07-01&han=%3Cb%3E")
    assert "không phải ngày dạng dd/mm/yyyy" in shown(driver, By.CSS_SELECTOR, "[role=alert]").text
    assert status(driver) == 400
    assert httpx.get(f"{metrics.url}/v1/reports/communes/{BA_THUOC}", params=API | {"format": "pdf"},
                     headers=OPERATOR).status_code == 422
