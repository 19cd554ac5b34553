"""The operators' page (services/metrics/operators.py, pages.py) over canned report answers: the
forms' input gives a page or a Vietnamese error with a 4xx, never a 500; what the events wrote is
escaped; the links keep the period and the instant. The page against the real service is
tests/integration/test_operators.py."""

import asyncio
import json
import re
from datetime import UTC, date, datetime
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st

from services.metrics import operators
from services.metrics.access import Access, Operator
from services.metrics.core import FiguresLoading
from services.metrics.operators import NotFound, read_commune, read_period, read_province
from shared.auth import ApiKey, ApiKeys, key_hash
from services.metrics.vietnamese import VN, InvalidInput
from tests.unit.test_export import AT_RISK, COMMUNE, SCORECARD, UNITS

NOW = datetime(2025, 11, 11, 10, 17, 42, tzinfo=UTC)  # 17:17:42 in Hà Nội


def test_the_period_defaults_to_the_quarter_so_far_as_of_now_to_the_minute():
    period = read_period("", "", "", NOW)
    assert (period.first, period.last) == (date(2025, 10, 1), date(2025, 11, 11))
    assert period.as_of == datetime(2025, 11, 11, 17, 17, tzinfo=VN)
    assert period.query() == {"tu": "01/10/2025", "den": "11/11/2025", "luc": "11/11/2025 17:17"}
    assert period.api() == {"start": "2025-10-01", "end": "2025-11-11", "as_of": "2025-11-11T17:17:00+07:00"}


def test_the_forms_are_prefilled_from_the_services_clock_not_the_machines():
    page = client(CannedApi()).get("/").text
    assert 'value="01/10/2025"' in page and 'value="11/11/2025"' in page and 'value="11/11/2025 17:17"' in page


def test_a_period_that_ends_before_it_starts_is_refused():
    with pytest.raises(InvalidInput, match="sau đến ngày"):
        read_period("12/11/2025", "11/11/2025", "", NOW)


@pytest.mark.parametrize("typed, refused", [("99999", NotFound), ("1492", InvalidInput), ("14923 OR 1", InvalidInput),
                                            ("", InvalidInput)])
def test_a_commune_is_five_digits_of_the_official_list(typed, refused):
    with pytest.raises(refused):
        read_commune(typed)


def test_a_known_commune_and_province_are_found():
    assert read_commune(" 14923 ").name == "Xã Bá Thước"
    assert len(read_province("38")) == 166
    with pytest.raises(NotFound):
        read_province("3")


class CannedApi:
    """The report API's answers of tests/unit/test_export.py, for the page alone."""

    def __init__(self, units: dict = UNITS):
        self.calls: list[tuple[str, str, dict]] = []
        self.answers = {"commune": COMMUNE, "scorecard": SCORECARD, "at_risk": AT_RISK, "units": units}

    def endpoint(self, name: str):
        async def call(code: str, operator: Operator, **params) -> dict:
            assert operator.name == "van-hanh"  # the signed-in operator reaches the API's checks
            self.calls.append((name, code, params))
            if name == "scorecard" and code != "38":
                raise HTTPException(404, "no such province")
            return self.answers[name]
        return call

    def api(self) -> operators.ReportApi:
        return operators.ReportApi(*(self.endpoint(n) for n in ("commune", "scorecard", "at_risk", "units")))


class Browser:
    """GETs to the page's app in-process (httpx's ASGI transport)."""

    def __init__(self, app: FastAPI):
        self.app = app

    def get(self, path: str, params: dict[str, str] | None = None, signed_in: bool = True) -> httpx.Response:
        async def fetch() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://page") as c:
                return await c.get(path, params=params, headers=OPERATOR if signed_in else {})
        return asyncio.run(fetch())


OPERATOR = {"authorization": "Bearer operator-key"}
KEYS = ApiKeys([ApiKey(name="van-hanh", key_sha256=key_hash("operator-key"), sources=["*"])])


def client(canned: CannedApi) -> Browser:
    app = FastAPI()
    operators.install(app, canned.api(), lambda: NOW, Access(KEYS, "session-key", []))
    return Browser(app)


def test_a_view_asks_who_is_there_first():
    page = client(CannedApi()).get("/bao-cao", params={"ma": "14923"} | PERIOD, signed_in=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/dang-nhap?tiep=%2Fbao-cao%3Fma%3D14923")


PERIOD = {"tu": "07/07/2025", "den": "08/07/2025", "luc": "10/07/2025 12:00"}


def test_the_report_view_shows_the_figures_the_rank_and_links_to_the_downloads():
    canned = CannedApi()
    page = client(canned).get("/bao-cao", params={"ma": "14923"} | PERIOD)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert [c[:2] for c in canned.calls] == [("commune", "14923"), ("scorecard", "38")]
    assert canned.calls[0][2] == {"start": "2025-07-07", "end": "2025-07-08", "as_of": "2025-07-10T12:00:00+07:00"}
    assert re.search(r'id="hang">1/2<', page.text) and re.search(r'id="dung-han">66,67 %<', page.text)
    assert re.search(r'id="dung-han-cong">25,00 %<', page.text) and re.search(r'id="so-khac-nhau">1<', page.text)
    assert "000.00.38.H56-250707-0002" in page.text and "Cổng so giờ, NĐ 61 so ngày" in page.text
    assert re.search(r"<td>2\.1</td><td>Tỷ lệ hồ sơ xử lý trước hạn, đúng hạn</td><td class=num>1</td>"
                     r"<td class=num>2</td><td class=num>50,00 %</td>", page.text)
    downloads = [unescape(h) for h in re.findall(r'id="tai-(?:csv|xlsx)" href="([^"]+)"', page.text)]
    assert [urlsplit(h).path for h in downloads] == ["/v1/reports/communes/14923"] * 2
    assert parse_qs(urlsplit(downloads[1]).query) == {"from": ["2025-07-07"], "to": ["2025-07-08"],
                                                      "as_of": ["2025-07-10T12:00:00+07:00"], "format": ["xlsx"]}


def test_the_tabs_keep_the_commune_the_period_and_the_instant():
    page = client(CannedApi()).get("/nguy-co", params={"ma": "14923", "han": "03/03/2026"} | PERIOD).text
    tabs = [unescape(h) for h in re.findall(r'<nav class="tabs"[^>]*>(.*?)</nav>', page)[0].split('href="')[1:]]
    assert [urlsplit(t).path for t in tabs] == ["/bao-cao", "/nguy-co", "/don-vi", "/phan-anh", "/xep-hang"]
    for tab in tabs:
        assert {k: v for k, v in parse_qs(urlsplit(tab.split('"')[0]).query).items() if k in PERIOD} \
            == {k: [v] for k, v in PERIOD.items()}


def test_the_horizon_typed_reaches_the_api_as_the_end_of_that_day_and_stays_in_the_form():
    canned = CannedApi()
    page = client(canned).get("/nguy-co", params={"ma": "14923", "han": "03/03/2026"} | PERIOD).text
    assert canned.calls[0][2]["horizon"] == "2026-03-03T23:59:59.999999+07:00"
    assert re.search(r'<input id="xa-han" name="han" value="03/03/2026"', page)


def test_text_from_the_events_is_escaped_in_tables_and_chart_data():
    hostile = UNITS | {"units": [{"unit": "<script>alert(1)</script>", "working_hours_held": 1.0,
                                  "open": {"overdue": 1}, "overdue": 1, "steps_overdue": 0}],
                       "overdue_steps": [UNITS["overdue_steps"][0] | {"unit": "<b>Tư pháp</b>"}]}
    page = client(CannedApi(hostile)).get("/don-vi", params={"ma": "14923"} | PERIOD).text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    data = re.search(r'<script type="application/json" id="du-lieu-don-vi">(.*?)</script>', page).group(1)
    assert json.loads(data)["labels"] == ["<script>alert(1)</script>"]
    assert "<b>Tư pháp" not in page and "&lt;b&gt;Tư pháp&lt;/b&gt;" in page


def test_the_units_view_shows_the_steps_overdue_in_dossiers_still_in_time():
    page = client(CannedApi()).get("/don-vi", params={"ma": "14923"} | PERIOD).text
    assert re.search(r'<strong id="buoc-qua-han">1</strong>', page)
    row = re.search(r'<table id="bang-buoc-qua-han">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    assert re.findall(r"<td[^>]*>(.*?)</td>", row) == ["923.14.00.H38-260302-0001", "Tư pháp", "01/03/2026 17:00",
                                                       "03/03/2026 10:00"]


def test_the_scorecard_view_ranks_and_highlights_the_commune_asked_for():
    page = client(CannedApi()).get("/xep-hang", params={"tinh": "38", "ma": "14923"} | PERIOD).text
    assert re.search(r'<tr id="xa-14923" class=chosen><td class="num">1/2</td>', page)
    assert "Hồ sơ trực tuyến toàn trình" in page and "cấp tỉnh: không tính cho xã" in page
    assert "Đúng hạn: Cổng (2.1)" in page and "TTHC công bố đúng hạn (6 điểm)" in page


@pytest.mark.parametrize("path, params, status, says", [
    ("/bao-cao", {"ma": "99999"}, 404, "Không có xã, phường, đặc khu nào mã 99999"),
    ("/bao-cao", {"ma": "14923", "tu": "31/02/2025"}, 400, "Từ ngày: ngày “31/02/2025” không có trên lịch."),
    ("/don-vi", {"ma": "14923", "luc": "hôm qua"}, 400, "Tính đến: “hôm qua” không phải thời điểm"),
    ("/nguy-co", {"ma": "14923", "han": "32/01/2026"}, 400, "Hạn xét: ngày “32/01/2026” không có trên lịch."),
    ("/xep-hang", {"tinh": "99"}, 404, "Không có tỉnh, thành phố nào mã “99”"),
    ("/xep-hang", {"tinh": "38", "tu": "02/01/2026", "den": "01/01/2026"}, 400, "sau đến ngày"),
])
def test_bad_input_gives_the_form_again_with_a_vietnamese_error(path, params, status, says):
    page = client(CannedApi()).get(path, params=params)
    assert page.status_code == status and says in unescape(page.text)
    assert 'role="alert"' in page.text and "<form" in page.text


class LoadingApi(CannedApi):
    """The API of a metrics service that has just started: its figures are being read from the store."""

    def endpoint(self, name: str):
        async def call(code: str, operator: Operator, **params) -> dict:
            raise FiguresLoading("the figures are loading")
        return call


@pytest.mark.parametrize("path, params", [("/bao-cao", {"ma": "14923"}), ("/xep-hang", {"tinh": "38"})])
def test_while_the_figures_load_a_view_says_so_in_vietnamese_and_when_to_try_again(path, params):
    page = client(LoadingApi()).get(path, params=params | PERIOD)
    assert page.status_code == 503 and page.headers["retry-after"] == "5"
    assert "đang nạp lại số liệu" in unescape(page.text) and 'role="alert"' in page.text and "<form" in page.text


@pytest.mark.parametrize("path, field", [("/don-vi", 'name="ma"'), ("/xep-hang", 'name="tinh"')])
def test_a_view_without_its_commune_or_province_is_its_form_with_what_was_typed(path, field):
    page = client(CannedApi()).get(path, params={"tu": "02/07/2025"})
    assert page.status_code == 200 and 'role="alert"' not in page.text and field in page.text
    assert 'value="02/07/2025"' in page.text


def test_the_home_page_offers_every_province_and_the_commune_form():
    page = client(CannedApi()).get("/").text
    assert page.count("<option value=") == 35 and '<option value="38">Thanh Hóa</option>' in page
    assert 'action="/xep-hang"' in page and 'action="/bao-cao"' in page


def test_the_page_loads_its_styles_and_scripts_from_the_service():
    http = client(CannedApi())
    page = http.get("/").text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert "/static/operators.js" in assets and "/static/vendor/chart.umd.min.js" in assets
    assert all(http.get(a).status_code == 200 for a in assets if "/vendor/" not in a)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)


QUERY = st.text(max_size=40) | st.sampled_from(["14923", "01/07/2025", "31/12/2099 23:59", "38", "0/0/0"])


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(["/bao-cao", "/nguy-co", "/don-vi", "/xep-hang", "/"]),
       ma=QUERY, tinh=QUERY, tu=QUERY, den=QUERY, luc=QUERY, han=QUERY)
def test_whatever_is_typed_the_page_answers_without_a_server_error(path, ma, tinh, tu, den, luc, han):
    answer = client(CannedApi()).get(path, params={"ma": ma, "tinh": tinh, "tu": tu, "den": den, "luc": luc,
                                                   "han": han})
    assert answer.status_code in (200, 400, 404), answer.text
    assert answer.headers["content-type"].startswith("text/html")
