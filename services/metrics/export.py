"""The report API's answers as tables to download: CSV or XLSX beside JSON (docs/contract.md §5,
docs/operators.md).

Pure functions from a JSON answer to a `Table` (a title block with the period and the as-of instant,
Vietnamese headers, typed cells), then from a `Table` to bytes. The CSV carries the JSON's values
as they are (fractions, RFC 3339 instants) so a program reads back what the API said; the XLSX
carries them typed (numbers, dates, percentages formatted) for people.

Text from the events (unit names) reaches spreadsheets and is never run as a formula: in the XLSX
every text is a string cell (characters XML cannot hold dropped). In the CSV, where a spreadsheet
guesses, every text cell is quoted and numbers are not; and a formula trigger (`=`, `+`, `-`, `@`, or
a form Unicode folds into one, such as the fullwidth `＝`) gets an apostrophe in front when it is the
first visible character of the text, or of a part after a `;` or a line break, since Excel set to
Vietnamese splits lines on `;` and a line break ends a line for it (OWASP's CSV injection advice).
"""

import csv
import io
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Response
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell as SheetCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from services.metrics.vietnamese import VN
from shared.communes import commune


class Percent(float):
    """A rate in [0, 1]: the fraction in CSV, a percentage in XLSX and on the page."""


Value = str | int | float | datetime | date | None


@dataclass(frozen=True)
class Table:
    title: str
    sheet: str  # the XLSX sheet's name (31 characters at most)
    filename: str  # without extension; ASCII
    about: list[tuple[str, Value]]  # the title block: the period, the as-of instant, ...
    header: list[str]
    rows: list[list[Value]]
    more: tuple["Table", ...] = ()  # further sheets of the XLSX (the CSV is the first table alone)


# The open states (docs/domain.md §4) as operators name them.
OPEN_STATES = {"within_deadline": "Trong hạn", "due_soon": "Sắp đến hạn", "overdue": "Quá hạn",
               "awaiting_supplement": "Chờ bổ sung", "paused": "Chờ nghĩa vụ tài chính"}

# The commune report's figures (docs/contract.md §5), one row each: where in the answer, and its name.
COMMUNE_ROWS: list[tuple[str, str]] = [
    ("received", "Hồ sơ tiếp nhận"),
    ("by_channel.direct", "Tiếp nhận trực tiếp"),
    ("by_channel.online", "Tiếp nhận trực tuyến"),
    ("by_channel.postal", "Tiếp nhận qua bưu chính"),
    ("online_full", "Trực tuyến toàn trình"),
    ("completed.early", "Giải quyết trước hạn"),
    ("completed.on_time", "Giải quyết đúng hạn"),
    ("completed.late", "Giải quyết quá hạn"),
    ("withdrawn", "Công dân rút hồ sơ"),
    ("open.within_deadline", "Đang giải quyết: trong hạn"),
    ("open.due_soon", "Đang giải quyết: sắp đến hạn"),
    ("open.overdue", "Đang giải quyết: quá hạn"),
    ("open.awaiting_supplement", "Tạm dừng: chờ bổ sung"),
    ("open.paused", "Tạm dừng: chờ nghĩa vụ tài chính"),
    ("payments.online", "Thanh toán trực tuyến"),
    ("payments.offline", "Thanh toán trực tiếp"),
    ("digitized", "Hồ sơ được số hóa"),
    ("ratings.very_satisfied", "Đánh giá rất hài lòng"),
    ("ratings.satisfied", "Đánh giá hài lòng"),
    ("ratings.unsatisfied", "Đánh giá không hài lòng"),
    ("apologies.compliant", "Phiếu xin lỗi đúng quy định"),
    ("apologies.non_compliant", "Phiếu xin lỗi không đúng quy định"),
    ("received_elsewhere", "Tiếp nhận tại trung tâm khác (NĐ 118)"),
    ("rates.online", "Tỉ lệ tiếp nhận trực tuyến"),
    ("rates.online_full", "Tỉ lệ trực tuyến toàn trình"),
    ("rates.on_time", "Tỉ lệ giải quyết đúng hạn (QĐ 766)"),
    ("rates.online_payment", "Tỉ lệ thanh toán trực tuyến"),
    ("rates.digitization", "Tỉ lệ số hóa hồ sơ"),
    ("rates.satisfaction", "Tỉ lệ hài lòng"),
    # v1.2: both on-time views (docs/domain.md §6): the decree's (the on-time rate above) and the portal's 2.1
    ("on_time_views.decree.ratio", "Đúng hạn theo NĐ 61 (trước, đúng hạn và đang trong hạn ÷ hồ sơ được xét)"),
    ("on_time_views.portal.ratio", "Đúng hạn theo Cổng DVCQG (chỉ số 2.1: đúng hạn ÷ hồ sơ tiếp nhận)"),
    ("on_time_views.disagreements", "Hồ sơ hai cách tính khác nhau"),
]
REASONS = {  # why the portal's 2.1 reads a dossier otherwise than the decree (shared.on_time)
    "second_supplement_request": "Yêu cầu bổ sung hơn một lần: Cổng tính quá hạn",
    "supplement_awaited": "Đang chờ bổ sung: Cổng lấy ngày yêu cầu bổ sung làm ngày kết thúc",
    "supplement_subtracted": "Cổng trừ thời gian bổ sung (theo giờ thực), NĐ 61 tính lại thời hạn từ đầu",
    "withdrawn": "Công dân rút hồ sơ: Cổng vẫn xét, NĐ 61 tính riêng",
    "obligation_paused": "Đang chờ nghĩa vụ tài chính tại thời điểm chốt",
    "open_at_cut": "Chưa kết thúc: Cổng lấy thời điểm chốt làm ngày kết thúc",
    "same_day": "Kết thúc cùng ngày hẹn nhưng sau giờ hẹn: Cổng so giờ, NĐ 61 so ngày",
}
VIEWS = {"in_time": "Đúng hạn", "late": "Quá hạn", "not_judged": "Không xét", "on_time": "Đúng hạn"}


def value_at(answer: dict[str, Any], path: str) -> Value:
    """A figure of the answer by its dotted path; rates as `Percent`."""
    value: Any = answer
    for key in path.split("."):
        value = value[key]
    is_rate = path.startswith("rates.") or path.endswith(".ratio")
    return Percent(value) if is_rate and value is not None else value


def _place(answer: dict[str, Any]) -> str:
    found = commune(answer["commune_code"])
    return f"{found.name} ({found.code}), {found.province_name}" if found else answer["commune_code"]


def _period(answer: dict[str, Any]) -> list[tuple[str, Value]]:
    return [("Từ ngày (ngày tiếp nhận)", date.fromisoformat(answer["from"])),
            ("Đến ngày (ngày tiếp nhận)", date.fromisoformat(answer["to"])),
            ("Tính đến (giờ Việt Nam)", datetime.fromisoformat(answer["as_of"]))]


def _filename(kind: str, code: str, answer: dict[str, Any]) -> str:
    return f"{kind}-{code}_{answer['from']}_{answer['to']}"


def commune_table(answer: dict[str, Any]) -> Table:
    """`GET /v1/reports/communes/{c}`: one row per figure, its path in the JSON beside its name."""
    return Table(
        title=f"Báo cáo hồ sơ thủ tục hành chính – {_place(answer)}", sheet="Báo cáo xã",
        filename=_filename("bao-cao-xa", answer["commune_code"], answer), about=_period(answer),
        header=["Chỉ tiêu", "Số liệu", "Mã chỉ tiêu (JSON)"],
        rows=[[name, value_at(answer, path), path] for path, name in COMMUNE_ROWS],
        more=(disagreements_table(answer),))


def disagreements_table(answer: dict[str, Any]) -> Table:
    """The dossiers the decree and the portal's 2.1 judge differently, and why (docs/domain.md §6)."""
    views = answer["on_time_views"]
    rows: list[list[Value]] = [
        [d["dossier_code"], VIEWS[d["decree"]], VIEWS[d["portal"]], "; ".join(REASONS[r] for r in d["reasons"]),
         datetime.fromisoformat(d["end"]), datetime.fromisoformat(d["effective_end"]),
         datetime.fromisoformat(d["appointment"]) if d["appointment"] else None] for d in views["dossiers"]]
    return Table(title=f"Hai cách tính đúng hạn – {_place(answer)}", sheet="Hai cách tính đúng hạn",
                 filename=_filename("hai-cach-tinh", answer["commune_code"], answer),
                 about=[*_period(answer), ("Hồ sơ khác nhau", views["disagreements"]),
                        ("Liệt kê", len(views["dossiers"]))],
                 header=["Mã hồ sơ", "NĐ 61", "Cổng DVCQG (2.1)", "Lý do", "Ngày kết thúc (Cổng)",
                         "Sau khi trừ thời gian bổ sung", "Ngày hẹn trả (Cổng)"],
                 rows=rows)


def scorecard_table(answer: dict[str, Any]) -> Table:
    """`GET /v1/reports/provinces/{p}/scorecard`: one row per commune in rank order, its score, its groups'
    points and measured maxima, both on-time views; then (XLSX) one sheet per group with each of its
    sub-indicators' numerator, denominator, ratio and points (blank when not scored)."""
    names = {s["key"]: s["name"] for s in answer["sub_indicators"]}
    header = ["Hạng", "Trên", "Mã xã", "Tên xã", "Hồ sơ tiếp nhận", "Điểm (thang 100)", "Tối đa đo được"]
    for group in answer["groups"]:
        header += [f"{group['name']}: điểm", f"{group['name']}: tối đa đo được (chính thức {group['max']})"]
    header += ["Đúng hạn theo Cổng DVCQG (2.1)", "Đúng hạn theo NĐ 61", "Hồ sơ hai cách tính khác nhau"]
    rows = []
    for row in answer["communes"]:
        views = row["on_time_views"]
        cells: list[Value] = [row["rank"], row["of"], row["commune_code"], row["name"], row["received"], row["score"],
                              row["measured_max"]]
        for group in row["groups"]:
            cells += [group["points"], group["measured_max"]]
        cells += [_percent(views["portal"]["ratio"]), _percent(views["decree"]["ratio"]), views["disagreements"]]
        rows.append(cells)
    about = [("Tỉnh", f"{answer['province_name']} ({answer['province_code']})"), *_period(answer),
             ("Không áp dụng (không tính điểm)", "; ".join(names.get(k, k) for k in answer["not_applicable"]) or "—"),
             ("Chưa đo được từ hồ sơ", "; ".join(f"{n['name']} ({n['points']} điểm)" for n in answer["not_measured"])),
             ("Cách tính", "QĐ 766/QĐ-TTg như Cổng DVCQG tính: điểm các chỉ tiêu đo được ÷ tối đa của chúng × 100")]
    return Table(title=f"Xếp hạng các xã theo QĐ 766 – {answer['province_name']}", sheet="Xếp hạng",
                 filename=_filename("xep-hang-tinh", answer["province_code"], answer), about=about,
                 header=header, rows=rows,
                 more=tuple(_group_table(answer, group) for group in answer["groups"]))


STATUS = {"scored": "Tính điểm", "no_data": "Không có dữ liệu", "not_applicable": "Không áp dụng cho xã"}


def _group_table(answer: dict[str, Any], group: dict[str, Any]) -> Table:
    """One group of the scorecard: per commune, each sub-indicator's numerator, denominator, ratio, points."""
    indicators = [s for s in answer["sub_indicators"] if s["group"] == group["key"]]
    header = ["Hạng", "Mã xã", "Tên xã", "Điểm nhóm", "Tối đa đo được"]
    for s in indicators:
        label = f"{s['code']} {s['name']}"
        header += [f"{label}: tử số", f"{label}: mẫu số", f"{label}: tỉ lệ", f"{label}: điểm (tối đa {s['max']})",
                   f"{label}: cách tính"]
    rows = []
    for row in answer["communes"]:
        mine = next(g for g in row["groups"] if g["key"] == group["key"])
        found = {s["key"]: s for s in row["sub_indicators"]}
        cells: list[Value] = [row["rank"], row["commune_code"], row["name"], mine["points"], mine["measured_max"]]
        for s in indicators:
            sub = found[s["key"]]
            cells += [sub["numerator"], sub["denominator"], _percent(sub["ratio"]), sub["points"], STATUS[sub["status"]]]
        rows.append(cells)
    not_measured = "; ".join(f"{n['code']} {n['name']} ({n['points']} điểm)" for n in answer["not_measured"]
                             if n["group"] == group["key"]) or "—"
    return Table(title=f"{group['name']} (tối đa {group['max']} điểm) – {answer['province_name']}",
                 sheet=group["name"][:31], filename=_filename("xep-hang-tinh", answer["province_code"], answer),
                 about=[*_period(answer), ("Chưa đo được từ hồ sơ", not_measured)], header=header, rows=rows)


def _percent(ratio: float | None) -> Percent | None:
    return None if ratio is None else Percent(ratio)


def at_risk_table(answer: dict[str, Any]) -> Table:
    """`GET /v1/reports/communes/{c}/at-risk`: the scores in the title block, then the dossiers."""
    about = [*_period(answer), ("Hạn xét (giờ Việt Nam)", datetime.fromisoformat(answer["horizon"])),
             ("Điểm hiện tại", answer["score"]),
             ("Điểm nếu mọi hồ sơ đúng hạn", answer["score_if_all_in_time"]),
             ("Điểm nếu hồ sơ đến hạn bị trễ", answer["score_if_due_turn_late"]),
             ("Điểm có nguy cơ mất", answer["points_at_risk"]),
             ("Hồ sơ đang giải quyết", answer["open"]),
             ("Hồ sơ đến hạn trước hạn xét", answer["due_by_horizon"])]
    rows: list[list[Value]] = [
        [d["dossier_code"], datetime.fromisoformat(d["due_at"]) if d["due_at"] else None,
         OPEN_STATES.get(d["open_state"], d["open_state"]), d["hours_left"], d["points"]]
        for d in answer["dossiers"]]
    return Table(title=f"Điểm có nguy cơ mất – {_place(answer)}", sheet="Điểm có nguy cơ mất",
                 filename=_filename("nguy-co", answer["commune_code"], answer), about=about,
                 header=["Mã hồ sơ", "Hạn giải quyết", "Tình trạng", "Giờ làm việc còn lại", "Điểm mất nếu trễ hạn"],
                 rows=rows)


def units_table(answer: dict[str, Any]) -> Table:
    """`GET /v1/reports/communes/{c}/units`: per unit, the working hours it held the cohort's dossiers,
    the open dossiers it holds now by open state, and those in time whose step is overdue."""
    rows: list[list[Value]] = [[u["unit"], u["working_hours_held"], *(u["open"].get(s, 0) for s in OPEN_STATES),
                                u["steps_overdue"]]
                               for u in answer["units"]]
    return Table(title=f"Nơi hồ sơ đang chờ – {_place(answer)}", sheet="Nơi hồ sơ chờ",
                 filename=_filename("don-vi", answer["commune_code"], answer), about=_period(answer),
                 header=["Đơn vị", "Giờ làm việc đã giữ hồ sơ",
                         *(f"Đang giữ: {name.lower()}" for name in OPEN_STATES.values()),
                         "Bước quá hạn, hồ sơ còn hạn"],
                 rows=rows)


def overdue_steps_table(answer: dict[str, Any]) -> Table:
    """`/units`' `overdue_steps`: the dossiers in time whose step is overdue, with both dues."""
    rows: list[list[Value]] = [[s["dossier_code"], s["unit"], datetime.fromisoformat(s["step_due_at"]),
                                datetime.fromisoformat(s["due_at"])] for s in answer["overdue_steps"]]
    return Table(title=f"Bước xử lý quá hạn – {_place(answer)}", sheet="Bước quá hạn",
                 filename=_filename("buoc-qua-han", answer["commune_code"], answer), about=_period(answer),
                 header=["Mã hồ sơ", "Đơn vị đang giữ", "Hạn của bước", "Hạn giải quyết hồ sơ"], rows=rows)


FORMULA_TRIGGERS = ("=", "+", "-", "@")


def _blank(c: str) -> bool:
    # What a spreadsheet may skip or not show before a formula (NBSP, zero-width space, controls);
    # and a quote, since a reader splitting on ';' does not see our quotes where we put them.
    return c.isspace() or c == '"' or unicodedata.category(c) in ("Cc", "Cf")


def _trigger(c: str) -> bool:
    # NFKC folds the fullwidth and small forms (＝ ＋ － ＠ ﹦ ...), which spreadsheets also accept.
    return unicodedata.normalize("NFKC", c)[:1] in FORMULA_TRIGGERS


def _csv_text(value: str) -> str:
    """The text with an apostrophe before each formula a reader could find in it: at its start or
    after a `;` or a line break, behind any blanks."""
    out = []
    cell_start = True
    for c in value:
        if cell_start and not _blank(c):
            if _trigger(c):
                out.append("'")
            cell_start = False
        out.append(c)
        if c in ";\r\n":
            cell_start = True
    return "".join(out)


def _csv_value(value: Value) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, str):
        return _csv_text(value)
    if isinstance(value, date):  # datetime too: RFC 3339 with its offset, as in the JSON
        return value.isoformat()
    return float(value) if isinstance(value, Percent) else value


def to_csv(table: Table) -> bytes:
    """RFC 4180, UTF-8 with a BOM (Excel then reads Vietnamese right): the title, one `name,value`
    line per item of the title block, an empty line, then the table's header and rows. Text cells are
    quoted (null too, as an empty text), numbers are not, so a program reads numbers back as numbers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([_csv_text(table.title)])
    writer.writerows([_csv_text(name), _csv_value(value)] for name, value in table.about)
    writer.writerow([])
    writer.writerow([_csv_text(h) for h in table.header])
    writer.writerows([_csv_value(v) for v in row] for row in table.rows)
    return out.getvalue().encode("utf-8-sig")


# Excel's format codes; Excel shows them with the reader's separators (5.932 and 67,84 % in Vietnamese).
FORMATS: dict[type, str] = {Percent: "0.00%", int: "#,##0", float: "#,##0.00",
                            datetime: "dd/mm/yyyy hh:mm", date: "dd/mm/yyyy"}


def _put(cell: SheetCell, value: Value) -> None:
    if isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell.data_type = "s"  # openpyxl would take a leading "=" for a formula
        return
    if isinstance(value, datetime):
        # Excel has no time zones: the local time, as the title block says; and to the second, since
        # a day's last instant (23:59:59.999999) would round up to the next day's midnight.
        cell.value = value.astimezone(VN).replace(tzinfo=None, microsecond=0)
    else:
        cell.value = float(value) if isinstance(value, Percent) else value
    if value is not None:
        cell.number_format = FORMATS[type(value)]


def _width(values: Iterable[Value]) -> float:
    longest = max((len(str(v)) for v in values if v is not None), default=8)
    return min(max(longest, 8), 48) + 2


def to_xlsx(table: Table) -> bytes:
    """A sheet per table (the first, then `more`)."""
    book = Workbook()
    _write(book.active, table)
    for more in table.more:
        _write(book.create_sheet(), more)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _write(sheet: Any, table: Table) -> None:
    """The title, the title block (name, value), an empty row, then the table with a bold header,
    filters and the header frozen."""
    sheet.title = table.sheet
    _put(sheet.cell(1, 1), table.title)
    sheet.cell(1, 1).font = Font(bold=True, size=14)
    for r, (name, value) in enumerate(table.about, start=2):
        _put(sheet.cell(r, 1), name)
        sheet.cell(r, 1).font = Font(bold=True)
        _put(sheet.cell(r, 2), value)
        sheet.cell(r, 2).alignment = Alignment(horizontal="left")
    top = len(table.about) + 3
    for c, name in enumerate(table.header, start=1):
        _put(sheet.cell(top, c), name)
        sheet.cell(top, c).font = Font(bold=True)
        sheet.cell(top, c).fill = PatternFill("solid", fgColor="DDE5F0")
        sheet.cell(top, c).alignment = Alignment(wrap_text=True, vertical="top")
    for r, row in enumerate(table.rows, start=top + 1):
        for c, value in enumerate(row, start=1):
            _put(sheet.cell(r, c), value)
    last = get_column_letter(len(table.header))
    sheet.freeze_panes = f"A{top + 1}"
    sheet.auto_filter.ref = f"A{top}:{last}{top + max(len(table.rows), 1)}"
    for c in range(1, len(table.header) + 1):
        column = [table.header[c - 1], *(row[c - 1] for row in table.rows)]
        sheet.column_dimensions[get_column_letter(c)].width = _width(column)
    sheet.column_dimensions["A"].width = max(sheet.column_dimensions["A"].width, _width(n for n, _ in table.about))


# The HTTP edge: `format=` on the four report endpoints.
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ENCODINGS: dict[str, tuple[str, Callable[[Table], bytes]]] = {"csv": ("text/csv; charset=utf-8", to_csv),
                                                               "xlsx": (XLSX, to_xlsx)}
Format = Annotated[Literal["json", "csv", "xlsx"],
                   Query(alias="format", description="json (default), or the table to download: csv or xlsx")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The report; with format=csv or xlsx, its table as a file (docs/operators.md)",
          "content": {"text/csv": {}, XLSX: {}}},
    400: {}, 404: {}, 421: {"description": "A province another metrics replica owns (docs/scaling.md)"}}


def respond(answer: dict[str, Any], output: str, table_of: Callable[[dict[str, Any]], Table]) -> Any:
    """The answer as JSON, or its table as a file to download."""
    if output == "json":
        return answer
    media_type, encode = ENCODINGS[output]
    table = table_of(answer)
    return Response(encode(table), media_type=media_type,
                    headers={"content-disposition": f'attachment; filename="{table.filename}.{output}"'})
