"""The console pages on the test stack's real Prometheus, in a real browser (Debian's chromium): with
the dashboards' data set scraped, every chart draws its lines and every asset comes from Prometheus."""

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.conftest import STACK_ENV, at_each_instant
from tests.integration.test_citizens import SHOTS, browser
from tests.integration.test_dashboards import scraped  # noqa: F401 (the fixture: the data set, scraped)

PROMETHEUS = f"http://127.0.0.1:{STACK_ENV['DOSSIER_PROMETHEUS_PORT']}"
PAGES = {"index": "", "overview": "?range=15m", "commune": "?commune=14923&range=15m", "pipeline": "?range=15m"}

# Each chart's SVG lines, with their drawn size; what the page loaded, and how it answered.
CHARTS = """return Array.from(document.querySelectorAll(".chart")).map(c => ({
  id: c.id, error: (c.querySelector(".prom_graph_error") || {}).textContent || null,
  lines: Array.from(c.querySelectorAll("svg path.path")).map(p => {
    const box = p.getBBox(); return box.width * box.height + box.width + box.height; })}));"""
RESOURCES = "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus])"


pytestmark = at_each_instant  # the data set holds dossiers received "now", due soon and not


@pytest.fixture(scope="module")
def data(scraped):  # noqa: F811
    time.sleep(16)  # a few more scrapes: every line has points to join
    return scraped


@pytest.mark.parametrize("name", PAGES)
def test_each_console_page_draws_its_charts_from_prometheus_alone(data, name, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver = browser(tmp_path)
    try:
        driver.set_window_size(1400, 3200)
        driver.get(f"{PROMETHEUS}/consoles/{name}.html{PAGES[name]}")
        assert "Theo dõi hồ sơ" in driver.title
        if name == "index":
            links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "main a")]
            assert [link.rsplit("/", 1)[1] for link in links] == ["overview.html", "commune.html", "pipeline.html"]
        else:
            expected = len(driver.find_elements(By.CSS_SELECTOR, ".chart"))
            assert expected >= 4
            charts = WebDriverWait(driver, 30).until(
                lambda d: (found := d.execute_script(CHARTS)) and all(c["lines"] or c["error"] for c in found)
                and found)
            assert [c["id"] for c in charts if c["error"] or not any(size > 0 for size in c["lines"])] == []
            # A panel over a recording rule has data once Prometheus evaluated the rule on the new scrapes.
            WebDriverWait(driver, 60, poll_frequency=5).until(
                lambda d: "chưa có số liệu" not in d.find_element(By.TAG_NAME, "main").text or d.refresh())
            assert "chưa có số liệu" not in driver.find_element(By.TAG_NAME, "main").text
        if name == "commune":
            assert driver.find_element(By.TAG_NAME, "h1").text == "Chi tiết theo xã: Xã Bá Thước"
        resources = driver.execute_script(RESOURCES)
        assert resources and all(url.startswith(PROMETHEUS) and status == 200 for url, status in resources), resources
        shot = SHOTS / f"console-{name}.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000  # drawn, not blank
    finally:
        driver.quit()
