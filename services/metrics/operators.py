"""The operators' page (Bảng điều hành) on the metrics service: the province's scorecard, a commune's
report, its points at risk and where its dossiers wait, in Vietnamese (docs/operators.md).

The page calls the report API's own endpoints in-process, so it shows exactly what the API answers,
and links to the same endpoints with `format=csv|xlsx` for the downloads. What people type is read
here (dd/mm/yyyy, services/metrics/vietnamese.py); a bad date or an unknown commune or province
gives the form again with a Vietnamese message and a 4xx, never a 500.
"""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.metrics import feedback_views, pages
from services.metrics.access import SESSION_COOKIE, Access, Operator, session_cookie
from services.metrics.core import FiguresLoading
from services.metrics.vietnamese import VN, InvalidInput, day, moment_input, parse_day, parse_moment, shorten
from shared.calendar import quarter_of
from shared.communes import Commune, commune, communes, communes_of_province
from shared.http import BodyTooLarge, read_body

log = structlog.get_logger()

STATIC = Path(__file__).parent / "static"
CHARTS = STATIC / "vendor" / "chart.umd.min.js"  # deploy/local/install-js.sh puts it there
# Everything from the service itself; inline <style> and scripts refused. The charts' data travel in
# <script type="application/json"> blocks, which are data, not scripts.
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
          "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
COMMUNE_CODE = re.compile(r"[0-9]{5}")
LOGIN_MAX_BYTES = 4096

Endpoint = Callable[..., Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ReportApi:
    """The report API's endpoints (services/metrics/app.py), called with the API's parameters."""

    commune: Endpoint
    scorecard: Endpoint
    at_risk: Endpoint
    units: Endpoint
    feedback: Endpoint | None = None  # a commune's PAKN (services/metrics/feedback_views.py)


@dataclass(frozen=True)
class Period:
    """A view's cohort (received from `first` to `last`) and the instant it is judged as of."""

    first: date
    last: date
    as_of: datetime

    def api(self) -> dict[str, str]:
        """As the report API reads it (`start`/`end` are its `from`/`to`)."""
        return {"start": self.first.isoformat(), "end": self.last.isoformat(), "as_of": self.as_of.isoformat()}

    def query(self) -> dict[str, str]:
        """As the page's forms write it: links between views keep the same period and instant."""
        return {"tu": day(self.first), "den": day(self.last), "luc": moment_input(self.as_of)}


def read_period(tu: str, den: str, luc: str, now: datetime) -> Period:
    """The forms' period; by default the quarter so far, as of now (to the minute, so that the links
    carry the very instant shown)."""
    today = now.astimezone(VN).date()
    first = parse_day(tu, "Từ ngày") if tu.strip() else quarter_of(today)[0]
    last = parse_day(den, "Đến ngày") if den.strip() else today
    if first > last:
        raise InvalidInput(f"Từ ngày {day(first)} sau đến ngày {day(last)}: hãy đổi lại khoảng thời gian.")
    as_of = parse_moment(luc, "Tính đến") if luc.strip() else now.astimezone(VN).replace(second=0, microsecond=0)
    return Period(first, last, as_of)


class NotFound(Exception):
    """A commune or province the official list does not have: the page answers 404."""


def read_commune(ma: str) -> Commune:
    code = ma.strip()
    if not COMMUNE_CODE.fullmatch(code):
        raise InvalidInput(f"Mã xã “{shorten(code)}” không hợp lệ: mã gồm 5 chữ số, ví dụ 14923.")
    found = commune(code)
    if found is None:
        raise NotFound(f"Không có xã, phường, đặc khu nào mã {code} trong danh mục đơn vị hành chính cấp xã.")
    return found


def read_province(tinh: str) -> list[Commune]:
    code = tinh.strip()
    found = communes_of_province(code) if re.fullmatch(r"[0-9]{2}", code) else []
    if not found:
        raise NotFound(f"Không có tỉnh, thành phố nào mã “{shorten(code)}” trong danh mục.")
    return found


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={"content-security-policy": POLICY})


def install(app: FastAPI, api: ReportApi, now: Callable[[], datetime], access: Access) -> None:
    """The page's routes and its static files (styles, scripts, the vendored Chart.js). Every view
    needs a signed-in operator (services/metrics/access.py) and shows only what the operator may read."""
    if not CHARTS.exists():
        log.warning("the operators' page draws no charts until deploy/local/install-js.sh has run", missing=str(CHARTS))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_login(app, access)
    views = Views(api, now, access)
    app.add_api_route("/", views.home, methods=["GET"], response_class=HTMLResponse,
                      summary="The operators' page (Vietnamese): choose a province or a commune",
                      responses={303: {"description": "not signed in"}})
    app.add_api_route("/xep-hang", views.ranking, methods=["GET"], response_class=HTMLResponse,
                      summary="The operators' page: a province's scorecard",
                      responses={303: {"description": "not signed in"}})
    for path, summary, render, call in (
            ("/bao-cao", "a commune's report and rank", pages.commune_report, views.report_with_rank),
            ("/nguy-co", "a commune's points at risk", pages.at_risk, views.at_risk),
            ("/don-vi", "where a commune's dossiers wait", pages.units, views.units),
            ("/phan-anh", "a commune's feedback (PAKN)", feedback_views.page, views.feedback)):
        app.add_api_route(path, views.commune_view(path, render, call), methods=["GET"], response_class=HTMLResponse,
                          summary=f"The operators' page: {summary}", responses={303: {"description": "not signed in"}})


def sign_in_first(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/dang-nhap?{urlencode({'tiep': here})}", status_code=303)


async def shown(view: Callable[[], Awaitable[str]], form: Callable[[str], str]) -> HTMLResponse:
    """A view, or its form again with what went wrong (4xx): the page never answers 500 for input."""
    try:
        return html(await view())
    except InvalidInput as wrong:
        return html(form(str(wrong)), 400)
    except NotFound as unknown:
        return html(form(str(unknown)), 404)
    except HTTPException as refused:  # what the API itself refuses
        return html(form("Không lập được báo cáo với các thông tin đã nhập."), refused.status_code)
    except FiguresLoading:  # a restart: the figures are being read again
        page = html(form("Hệ thống đang nạp lại số liệu sau khi khởi động. Vui lòng thử lại sau ít giây."), 503)
        page.headers["retry-after"] = "5"
        return page


class Views:
    """The page's views: a province's scorecard, and a commune's report, points at risk and units."""

    def __init__(self, api: ReportApi, now: Callable[[], datetime], access: Access):
        self.api, self.now, self.access = api, now, access

    def prefilled(self, typed: dict[str, str]) -> dict[str, str]:
        """A form before it is sent: what was typed, else the default period."""
        return read_period("", "", "", self.now()).query() | {name: value for name, value in typed.items()
                                                              if value.strip()}

    async def home(self, request: Request) -> Response:
        if self.access.operator(request) is None:
            return sign_in_first(request)
        return html(pages.home(provinces(), self.prefilled({})))

    async def ranking(self, request: Request, tinh: str = "", tu: str = "", den: str = "", luc: str = "",
                      ma: str = "") -> Response:
        if (operator := self.access.operator(request)) is None:
            return sign_in_first(request)
        typed = {"tinh": tinh, "tu": tu, "den": den, "luc": luc, "ma": ma}
        if not tinh.strip():
            return html(pages.home(provinces(), self.prefilled(typed)))

        async def view() -> str:
            period = read_period(tu, den, luc, self.now())
            province = read_province(tinh)
            answer = await self.api.scorecard(province[0].province_code, operator, **period.api())
            return pages.scorecard(answer, period.query(), highlight=ma.strip())

        return await shown(view, lambda error: pages.home(provinces(), typed, error=error))

    def commune_view(self, path: str, render: Callable[..., str], call: Callable[..., Awaitable[dict[str, Any]]]
                     ) -> Callable[..., Awaitable[Response]]:
        """One of the three views of a commune: report, points at risk, units. Each takes the commune
        and the period; the at-risk view also a horizon (`han`)."""

        async def page(request: Request, ma: str = "", tu: str = "", den: str = "", luc: str = "",
                       han: str = "") -> Response:
            if (operator := self.access.operator(request)) is None:
                return sign_in_first(request)
            typed = {"ma": ma, "tu": tu, "den": den, "luc": luc, "han": han}
            if not ma.strip():
                return html(pages.commune_form(path, self.prefilled(typed)))

            async def view() -> str:
                period = read_period(tu, den, luc, self.now())
                place = read_commune(ma)
                answer = await call(place, operator, period, han)
                return render(place, period.query() | {"ma": place.code, "han": han}, answer)

            return await shown(view, lambda error: pages.commune_form(path, typed, error=error))

        return page

    async def report_with_rank(self, place: Commune, operator: Operator, period: Period, _han: str) -> dict[str, Any]:
        report = await self.api.commune(place.code, operator, **period.api())
        card = await self.api.scorecard(place.province_code, operator, **period.api())
        row = next(r for r in card["communes"] if r["commune_code"] == place.code)
        return report | {"rank": row["rank"], "of": row["of"], "score": row["score"], "card": row}

    async def at_risk(self, place: Commune, operator: Operator, period: Period, han: str) -> dict[str, Any]:
        horizon = parse_moment(han, "Hạn xét").isoformat() if han.strip() else None
        return await self.api.at_risk(place.code, operator, **period.api(), horizon=horizon)

    async def units(self, place: Commune, operator: Operator, period: Period, _han: str) -> dict[str, Any]:
        return await self.api.units(place.code, operator, **period.api())

    async def feedback(self, place: Commune, operator: Operator, period: Period, _han: str) -> dict[str, Any]:
        assert self.api.feedback is not None, "the report API serves a commune's feedback"
        return await self.api.feedback(place.code, operator, **period.api())


def install_login(app: FastAPI, access: Access) -> None:
    """Signing in with an operator's key (once: a session cookie follows) and out."""

    @app.get("/dang-nhap", summary="The operators' page: sign in", response_class=HTMLResponse)
    async def login_form(tiep: str = "/") -> HTMLResponse:
        return html(pages.login(local_path(tiep)))

    @app.post("/dang-nhap", summary="The operators' page: sign in with an operator's key",
              response_class=HTMLResponse, responses={303: {"description": "signed in"}, 401: {}, 413: {}})
    async def login(request: Request) -> Response:
        try:
            form = parse_qs((await read_body(request, LOGIN_MAX_BYTES)).decode(errors="replace"))
        except BodyTooLarge:
            return html(pages.login("/", "Yêu cầu quá lớn."), 413)
        next_path = local_path(form.get("tiep", ["/"])[0])
        session = access.login(form.get("khoa", [""])[0].strip())
        if session is None:
            log.warning("operator sign-in refused", client=request.client.host if request.client else "?")
            return html(pages.login(next_path, "Khóa truy cập không đúng."), 401)
        answer = RedirectResponse(next_path, status_code=303)
        answer.set_cookie(**session_cookie(session), secure=request.url.scheme == "https")
        return answer

    @app.post("/dang-xuat", summary="The operators' page: sign out", responses={303: {}})
    async def logout() -> Response:
        answer = RedirectResponse("/dang-nhap", status_code=303)
        answer.delete_cookie(SESSION_COOKIE, path="/")
        return answer


def local_path(value: str) -> str:
    """Where to go after signing in: a path of this site only, never another site's address."""
    return value if value.startswith("/") and not value.startswith(("//", "/\\")) else "/"


@cache
def provinces() -> list[tuple[str, str]]:
    """The 34 provinces, in the official order of their codes."""
    return sorted({(c.province_code, c.province_name) for c in communes().values()})
