"""A commune's feedback (PAKN, docs/domain.md §9) for operators: the report API's
`GET /v1/reports/communes/{code}/feedback` (5.2, 5.3, the open PAKN with their due, the late ones), its
table for the CSV/XLSX downloads, and its view on the operators' page (`/phan-anh`). Codes, units and
instants only: a PAKN's content and its sender never reach the metrics service."""

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from fastapi import FastAPI

from services.metrics import export, pages
from services.metrics.export import Table, Value
from services.metrics.vietnamese import NO_VALUE, moment, number, percent
from shared.communes import Commune
from shared.report import rate

STATES = {"open": "Đang xử lý", "awaiting_supplement": "Chờ bổ sung", "answered": "Đã trả lời, chờ công khai",
          "rejected": "Từ chối tiếp nhận", "published": "Đã công khai"}


def answer_of(commune_code: str, first: date, last: date, instant: datetime, counts: Any,
              listing: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The endpoint's JSON: the counts of 5.2 and 5.3, their rates, the open PAKN, the late ones."""
    return {"commune_code": commune_code, "from": first.isoformat(), "to": last.isoformat(),
            "as_of": instant.isoformat(),
            "counts": {"on_time": counts.on_time, "taken": counts.taken, "satisfied": counts.satisfied,
                       "first_received": counts.first_received, "complaints": len(counts.complained)},
            "rates": {"on_time": rate(counts.on_time, counts.taken),
                      "satisfaction": rate(counts.satisfied, counts.first_received)},
            **listing}


def feedback_table(answer: dict[str, Any]) -> Table:
    """The open PAKN, then the late ones, one row each."""
    def at(value: str | None) -> Value:
        return datetime.fromisoformat(value) if value else None

    rows: list[list[Value]] = [
        ["Đang mở" if kind == "open" else "Trễ hạn", r["feedback_code"], r["unit"], STATES.get(r["state"], r["state"]),
         at(r["received_at"]), at(r["due_at"]), ("Quá hạn" if r.get("late") else "Trong hạn") if kind == "open"
         else "Quá hạn", r["dossier_code"]]
        for kind in ("open", "late") for r in answer[kind]]
    return Table(title=f"Phản ánh, kiến nghị – {export._place(answer)}", sheet="Phản ánh, kiến nghị",
                 filename=export._filename("phan-anh", answer["commune_code"], answer),
                 about=export._period(answer) + [
                     ("PAKN xử lý đúng hạn (5.2)", export.Percent(r) if (r := answer["rates"]["on_time"]) is not None
                      else None),
                     ("Hài lòng trong xử lý PAKN (5.3)",
                      export.Percent(r) if (r := answer["rates"]["satisfaction"]) is not None else None)],
                 header=["Danh sách", "Mã PAKN", "Đơn vị đang giữ", "Tình trạng", "Tiếp nhận", "Hạn", "Hạn xử lý",
                         "Hồ sơ được nhắc tới"],
                 rows=rows)


def install(app: FastAPI, settings: Any, core: Any, scope: Any, parse_period: Callable[..., Any],
            From: Any, To: Any) -> Callable[..., Any]:
    """The endpoint, scoped as the other report endpoints (an operator of the commune, this replica's
    province); returns it for the operators' page."""
    Reader = scope.Reader

    @app.get("/v1/reports/communes/{commune_code}/feedback",
             summary="A commune's feedback (PAKN): 5.2, 5.3, the open ones with their due, the late ones",
             responses=export.RESPONSES)
    async def feedback(commune_code: str, operator: Reader, start: From = None, end: To = None,  # type: ignore[valid-type]
                       as_of: str | None = None, output: export.Format = "json") -> Any:
        first, last, instant = parse_period(start, end, as_of, settings.clock)
        scope.commune(commune_code, operator)
        figures = await core.figures_for([commune_code], first, last)  # with the archive's before the horizon
        calendar = figures.calendar
        counts = core.timed("feedback", lambda: figures.feedback(commune_code, first, last, instant))
        listing = figures.feedback_book.listing(commune_code, first, last, instant, calendar)
        return export.respond(answer_of(commune_code, first, last, instant, counts, listing), output, feedback_table)

    return feedback


def _rows(rows: list[dict[str, Any]], ident: str, open_list: bool) -> str:
    head = ("<tr><th scope=col>Mã PAKN</th><th scope=col>Đơn vị đang giữ</th><th scope=col>Tình trạng</th>"
            "<th scope=col>Tiếp nhận</th><th scope=col>Hạn</th>"
            f"<th scope=col>{'Quá hạn?' if open_list else 'Xử lý lúc'}</th></tr>")
    body = "".join(
        f'<tr{" class=late" if r.get("late") or not open_list else ""}><td>{pages.text(r["feedback_code"])}</td>'
        f'<td>{pages.text(r["unit"])}</td><td>{STATES.get(r["state"], pages.text(r["state"]))}</td>'
        f'<td>{moment(datetime.fromisoformat(r["received_at"]))}</td>'
        f'<td>{moment(datetime.fromisoformat(r["due_at"]))}</td>'
        f'<td>{("Quá hạn" if r["late"] else "Trong hạn") if open_list else _when(r.get("handled_at"))}</td></tr>'
        for r in rows)
    empty = '<tr><td colspan="6">Không có</td></tr>' if not rows else ""
    return f'<table id="{ident}"><thead>{head}</thead><tbody>{body}{empty}</tbody></table>'


def _when(value: str | None) -> str:
    return moment(datetime.fromisoformat(value)) if value else "Chưa xử lý"


def page(place: Commune, query: dict[str, str], answer: dict[str, Any]) -> str:
    """The view: the two rates, how many are open and late, then both lists."""
    counts, rates = answer["counts"], answer["rates"]
    cards = pages._cards([
        ("pakn-dung-han", "PAKN xử lý đúng hạn (5.2)", percent(rates["on_time"])),
        ("pakn-hai-long", "Hài lòng trong xử lý PAKN (5.3)", percent(rates["satisfaction"])),
        ("pakn-tiep-nhan", "PAKN tiếp nhận, xử lý trong kỳ", number(counts["taken"])),
        ("pakn-dang-mo", "PAKN đang mở", number(len(answer["open"]))),
        ("pakn-qua-han", "PAKN đang mở đã quá hạn", number(sum(r["late"] for r in answer["open"]))),
        ("pakn-tre", "PAKN trễ hạn trong kỳ", number(len(answer["late"]))),
        ("pakn-ho-so", "Hồ sơ bị phản ánh (5.4)", number(counts["complaints"])),
    ])
    body = (cards + "<h2>PAKN đang mở, theo hạn</h2>" + _rows(answer["open"], "bang-pakn-mo", True)
            + "<h2>PAKN trễ hạn trong kỳ</h2>" + _rows(answer["late"], "bang-pakn-tre", False)
            + f'<p class="note">Hạn: 15 ngày làm việc từ khi đơn vị đang giữ nhận PAKN (tiếp nhận hoặc được chuyển '
              f'đến lần cuối); đã trả lời: 2 ngày làm việc để công khai. {NO_VALUE}: chưa có PAKN.</p>')
    return pages._commune_page(place, "/phan-anh", query, answer, body,
                               pages._downloads(f"/v1/reports/communes/{place.code}/feedback", answer))
