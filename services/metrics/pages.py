"""The operators' page's HTML (services/metrics/operators.py serves it): Vietnamese, every value
escaped, no inline script or style (the page's Content-Security-Policy refuses them). A chart is a
JSON data block beside its canvas, drawn by static/operators.js with the vendored Chart.js; the
table under it holds the same figures, so nothing is lost without the script."""

import json
from datetime import date, datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from services.metrics import export
from services.metrics.export import OPEN_STATES, Percent, Table, Value
from services.metrics.vietnamese import DAY_PATTERN, MOMENT_PATTERN, NO_VALUE, day, moment, number, percent
from shared.communes import Commune

# One colour per outcome, the same on every chart.
COLOURS = {"early": "#2e7d32", "on_time": "#7cb342", "late": "#c62828", "within_deadline": "#1e88e5",
           "due_soon": "#f9a825", "overdue": "#e53935", "awaiting_supplement": "#8e24aa", "paused": "#6d4c41",
           "withdrawn": "#9e9e9e"}
BAR, HIGHLIGHT = "#5c7ea8", "#a3141b"
RATES = [(path, name) for path, name in export.COMMUNE_ROWS if path.startswith("rates.")]


def text(value: Value) -> str:
    """A value as the page shows it: Vietnamese separators, local instants, escaped."""
    if value is None:
        return NO_VALUE
    if isinstance(value, Percent):
        return percent(value)
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, date):
        return day(value)
    if isinstance(value, int):
        return number(value)
    if isinstance(value, float):
        return number(value, 2)
    return escape(value)


def href(path: str, query: dict[str, str], anchor: str = "") -> str:
    return escape(f"{path}?{urlencode(query)}" + (f"#{anchor}" if anchor else ""))


def layout(title: str, body: str, error: str | None = None, signed_in: bool = True) -> str:
    alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    leave = ('<form class="logout" method="post" action="/dang-xuat"><button type="submit">Đăng xuất</button></form>'
             if signed_in else "")
    return f"""<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Bảng điều hành</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/operators.css">
<script defer src="/static/vendor/chart.umd.min.js"></script>
<script defer src="/static/operators.js"></script>
</head>
<body>
<header><a class="home" href="/">Bảng điều hành</a>
<span>Hồ sơ thủ tục hành chính · Trung tâm Phục vụ hành chính công</span>{leave}</header>
<main>
<h1>{escape(title)}</h1>
{alert}{body}
</main>
</body>
</html>
"""


def _input(form: str, name: str, label: str, value: str, hint: str, pattern: str, required: bool = False,
           size: int = 12) -> str:
    field = f"{form}-{name}"
    return (f'<div class="field"><label for="{field}">{label}</label>'
            f'<input id="{field}" name="{name}" value="{escape(value)}" pattern="{escape(pattern)}" size="{size}" '
            f'autocomplete="off" aria-describedby="{field}-hint"{" required" if required else ""}>'
            f'<small id="{field}-hint">{hint}</small></div>')


def period_fields(form: str, query: dict[str, str]) -> str:
    return "".join([
        _input(form, "tu", "Từ ngày", query.get("tu", ""), "dd/mm/yyyy, ngày tiếp nhận", DAY_PATTERN),
        _input(form, "den", "Đến ngày", query.get("den", ""), "dd/mm/yyyy", DAY_PATTERN),
        _input(form, "luc", "Tính đến", query.get("luc", ""),
               "dd/mm/yyyy HH:MM giờ Việt Nam; chỉ ngày: hết ngày đó; trống: bây giờ", MOMENT_PATTERN, size=16),
    ])


def _commune_fields(form: str, path: str, query: dict[str, str]) -> str:
    horizon = _input(form, "han", "Hạn xét", query.get("han", ""), "dd/mm/yyyy [HH:MM]; trống: hết “Đến ngày”",
                     MOMENT_PATTERN, size=16) if path == "/nguy-co" else ""
    return (_input(form, "ma", "Mã xã", query.get("ma", ""), "5 chữ số, ví dụ 14923", "[0-9]{5}", required=True,
                   size=6) + period_fields(form, query) + horizon)


def home(provinces: list[tuple[str, str]], query: dict[str, str], error: str | None = None) -> str:
    """Where an operator starts: a province's ranking, or one commune's report."""
    chosen = query.get("tinh", "")
    options = "".join(f'<option value="{code}"{" selected" if code == chosen else ""}>{escape(name)}</option>'
                      for code, name in provinces)
    body = f"""<div class="forms">
<form id="tinh" method="get" action="/xep-hang" aria-labelledby="tinh-title">
<h2 id="tinh-title">Xếp hạng các xã trong tỉnh (QĐ 766)</h2>
<div class="field"><label for="tinh-tinh">Tỉnh, thành phố</label>
<select id="tinh-tinh" name="tinh" required><option value="">— chọn —</option>{options}</select></div>
{period_fields("tinh", query)}
<button type="submit">Xem xếp hạng</button>
</form>
<form id="xa" method="get" action="/bao-cao" aria-labelledby="xa-title">
<h2 id="xa-title">Báo cáo một xã, phường</h2>
{_commune_fields("xa", "/bao-cao", query)}
<button type="submit">Xem báo cáo</button>
</form>
</div>"""
    return layout("Bảng điều hành", body, error)


def login(next_path: str, error: str | None = None) -> str:
    """The sign-in form: an operator's key, once; the page then keeps a session (docs/security.md)."""
    body = f"""<form id="dang-nhap" method="post" action="/dang-nhap" aria-labelledby="dang-nhap-title">
<h2 id="dang-nhap-title">Đăng nhập bằng khóa của cán bộ vận hành</h2>
<input type="hidden" name="tiep" value="{escape(next_path)}">
<div class="field"><label for="dang-nhap-khoa">Khóa truy cập</label>
<input id="dang-nhap-khoa" name="khoa" type="password" autocomplete="current-password" required
 aria-describedby="dang-nhap-khoa-hint"><small id="dang-nhap-khoa-hint">Khóa do quản trị hệ thống cấp; phiên
 làm việc giữ 8 giờ.</small></div>
<button type="submit">Đăng nhập</button>
</form>"""
    return layout("Đăng nhập", body, error, signed_in=False)


def _view_form(path: str, query: dict[str, str]) -> str:
    """A commune view's form, on one line above the view."""
    return (f'<form id="xa" class="inline" method="get" action="{path}">{_commune_fields("xa", path, query)}'
            '<button type="submit">Xem</button></form>')


def commune_form(path: str, query: dict[str, str], error: str | None = None) -> str:
    """A commune view's form alone: before a commune is chosen, or with what was wrong."""
    return layout(VIEWS[path], _view_form(path, query), error)


VIEWS = {"/bao-cao": "Báo cáo", "/nguy-co": "Điểm có nguy cơ mất", "/don-vi": "Nơi hồ sơ đang chờ",
         "/phan-anh": "Phản ánh, kiến nghị"}
CURRENT = ' aria-current="page"'


def _downloads(path: str, answer: dict[str, Any], **extra: str) -> str:
    params = {"from": answer["from"], "to": answer["to"], "as_of": answer["as_of"], **extra}
    return ('<p class="downloads">Tải bảng: '
            f'<a id="tai-csv" href="{href(path, params | {"format": "csv"})}" download>CSV</a> · '
            f'<a id="tai-xlsx" href="{href(path, params | {"format": "xlsx"})}" download>Excel (XLSX)</a></p>')


def _period_line(query: dict[str, str], answer: dict[str, Any]) -> str:
    return (f'<p class="period">Hồ sơ tiếp nhận từ {escape(query["tu"])} đến {escape(query["den"])}, '
            f'tính đến {moment(datetime.fromisoformat(answer["as_of"]))} (giờ Việt Nam)</p>')


def _commune_page(place: Commune, path: str, query: dict[str, str], answer: dict[str, Any], body: str,
                  download: str) -> str:
    """A commune view: its form, the tabs between its views and to the province's ranking, the body."""
    keep = {k: query[k] for k in ("ma", "tu", "den", "luc")}
    tabs = "".join(f'<a href="{href(view, keep)}"{CURRENT if view == path else ""}>{name}</a>'
                   for view, name in VIEWS.items())
    ranking = href("/xep-hang", {"tinh": place.province_code, **{k: keep[k] for k in ("tu", "den", "luc")},
                                 "ma": place.code}, anchor=f"xa-{place.code}")
    return layout(f"{place.name} ({place.code}) · {place.province_name}", f"""
{_view_form(path, query)}
<nav class="tabs" aria-label="Các báo cáo của xã">{tabs}<a href="{ranking}">Xếp hạng trong tỉnh</a></nav>
{_period_line(query, answer)}{download}{body}""")


def _cards(items: list[tuple[str, str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><span>{label}</span><strong id="{ident}">{value}</strong></div>'
        for ident, label, value in items) + "</div>"


def chart(name: str, title: str, spec: dict[str, Any], tall: bool = False) -> str:
    """A canvas and its data. The JSON is escaped so that no "</script>" can close the block."""
    data = json.dumps(spec, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (f'<figure class="chart{" tall" if tall else ""}"><figcaption>{escape(title)}</figcaption>'
            f'<div class="canvas"><canvas id="bieu-do-{name}" data-spec="du-lieu-{name}" role="img" '
            f'aria-label="{escape(title)}"></canvas></div>'
            f'<script type="application/json" id="du-lieu-{name}">{data}</script></figure>')


def table_html(data: Table, ident: str, columns: int | None = None) -> str:
    """A downloadable table as the page shows it (its first `columns` columns)."""
    width = columns or len(data.header)
    head = "".join(f"<th scope=col>{escape(h)}</th>" for h in data.header[:width])
    rows = "".join("<tr>" + "".join(f"<td{_align(v)}>{text(v)}</td>" for v in row[:width]) + "</tr>"
                   for row in data.rows)
    empty = f'<tr><td colspan="{width}">Không có</td></tr>' if not data.rows else ""
    return f'<table id="{ident}"><thead><tr>{head}</tr></thead><tbody>{rows}{empty}</tbody></table>'


def _align(value: Value) -> str:
    return ' class="num"' if isinstance(value, int | float) else ""


def commune_report(place: Commune, query: dict[str, str], answer: dict[str, Any]) -> str:
    """The commune's figures (docs/contract.md §5), its rank and score in the province, two charts."""
    rates = answer["rates"]
    cards = _cards([
        ("tiep-nhan", "Hồ sơ tiếp nhận", number(answer["received"])),
        ("hang", "Xếp hạng trong tỉnh", f"{answer['rank']}/{answer['of']}"),
        ("diem", "Điểm QĐ 766", number(answer["score"], 2)),
        ("dung-han", "Đúng hạn (NĐ 61)", percent(rates["on_time"])),
        ("dung-han-cong", "Đúng hạn (Cổng DVCQG, 2.1)", percent(answer["on_time_views"]["portal"]["ratio"])),
        ("truc-tuyen", "Trực tuyến", percent(rates["online"])),
        ("thanh-toan", "Thanh toán trực tuyến", percent(rates["online_payment"])),
        ("so-hoa", "Số hóa", percent(rates["digitization"])),
        ("hai-long", "Hài lòng", percent(rates["satisfaction"])),
    ])
    outcomes = [("early", "Trước hạn", answer["completed"]["early"]),
                ("on_time", "Đúng hạn", answer["completed"]["on_time"]),
                ("late", "Quá hạn", answer["completed"]["late"]),
                *((state, f"Đang: {name.lower()}", answer["open"][state]) for state, name in OPEN_STATES.items()),
                ("withdrawn", "Rút hồ sơ", answer["withdrawn"])]
    charts = '<div class="charts">' + chart("tinh-trang", "Tình trạng các hồ sơ đã tiếp nhận", {
        "labels": [name for _, name, _ in outcomes], "horizontal": True,
        "series": [{"name": "Hồ sơ", "values": [n for _, _, n in outcomes],
                    "colors": [COLOURS[key] for key, _, _ in outcomes]}]}) + chart("ti-le", "Các tỉ lệ (%)", {
        "labels": [name for _, name in RATES], "unit": "%", "max": 100, "horizontal": True,
        "series": [{"name": "Tỉ lệ", "colors": BAR,
                    "values": [None if (v := export.value_at(answer, p)) is None else round(v * 100, 2)
                               for p, _ in RATES]}],
    }) + "</div>"
    path = f"/v1/reports/communes/{place.code}"
    return _commune_page(place, "/bao-cao", query, answer,
                         cards + charts + _sub_indicators(answer["card"]) + _two_views(answer)
                         + table_html(export.commune_table(answer), "bang-bao-cao", columns=2),
                         _downloads(path, answer))


STATUS = {"no_data": "không có dữ liệu", "not_applicable": "cấp tỉnh: không tính cho xã"}


def _sub_indicators(card: dict[str, Any]) -> str:
    """The commune's QĐ 766 sub-indicators as the portal computes them: numerator, denominator, points."""
    rows = "".join(
        f"<tr><td>{escape(s['code'])}</td><td>{escape(s['name'])}</td><td class=num>{number(s['numerator'])}</td>"
        f"<td class=num>{number(s['denominator'])}</td><td class=num>{percent(s['ratio'])}</td>"
        f"<td class=num>{number(s['points'], 2) if s['status'] == 'scored' else escape(STATUS[s['status']])}"
        f" / {number(s['max'])}</td></tr>" for s in card["sub_indicators"])
    return f"""<section><h2>Chỉ số QĐ 766 như Cổng DVCQG tính: {number(card['score'], 2)} điểm
({number(card['measured_max'])} điểm đo được)</h2>
<table id="bang-chi-so"><thead><tr><th scope=col>Mã</th><th scope=col>Chỉ tiêu</th><th scope=col>Tử số</th>
<th scope=col>Mẫu số</th><th scope=col>Tỉ lệ</th><th scope=col>Điểm / tối đa</th></tr></thead>
<tbody>{rows}</tbody></table></section>"""


def _two_views(answer: dict[str, Any]) -> str:
    """Both on-time views side by side, and the dossiers they judge differently, with why."""
    views = answer["on_time_views"]
    decree, portal = views["decree"], views["portal"]
    return f"""<section><h2>Hai cách tính đúng hạn</h2>
<p>NĐ 61: <strong id="dung-han-nd61">{percent(decree['ratio'])}</strong> ({number(decree['in_time'])} /
{number(decree['judged'])} hồ sơ được xét) · Cổng DVCQG (2.1): <strong id="dung-han-21">{percent(portal['ratio'])}</strong>
({number(portal['on_time'])} / {number(portal['received'])} hồ sơ tiếp nhận) ·
<span id="so-khac-nhau">{number(views['disagreements'])}</span> hồ sơ hai cách tính khác nhau.</p>
{table_html(export.disagreements_table(answer), "bang-khac-nhau")}</section>"""


def at_risk(place: Commune, query: dict[str, str], answer: dict[str, Any]) -> str:
    """The points the commune is about to lose by the horizon, and the dossiers that would cost them."""
    horizon = datetime.fromisoformat(answer["horizon"])
    cards = _cards([
        ("diem-hien-tai", "Điểm hiện tại", number(answer["score"], 2)),
        ("diem-neu-dung-han", "Nếu mọi hồ sơ đúng hạn", number(answer["score_if_all_in_time"], 2)),
        ("diem-neu-tre", "Nếu hồ sơ đến hạn bị trễ", number(answer["score_if_due_turn_late"], 2)),
        ("nguy-co", "Điểm có nguy cơ mất", number(answer["points_at_risk"], 2)),
        ("dang-giai-quyet", "Hồ sơ đang giải quyết", number(answer["open"])),
        ("den-han", f"Đến hạn trước {moment(horizon)}", number(answer["due_by_horizon"])),
    ])
    scores = chart("diem", "Điểm QĐ 766 theo các khả năng", {
        "labels": ["Hiện tại", "Nếu mọi hồ sơ đúng hạn", "Nếu hồ sơ đến hạn bị trễ"], "max": 100,
        "series": [{"name": "Điểm", "colors": [BAR, COLOURS["early"], COLOURS["late"]],
                    "values": [answer["score"], answer["score_if_all_in_time"], answer["score_if_due_turn_late"]]}]})
    body = (cards + f'<div class="charts">{scores}</div><h2>Hồ sơ đến hạn trước {moment(horizon)}</h2>'
            + table_html(export.at_risk_table(answer), "bang-nguy-co"))
    return _commune_page(place, "/nguy-co", query, answer, body,
                         _downloads(f"/v1/reports/communes/{place.code}/at-risk", answer, horizon=answer["horizon"]))


def units(place: Commune, query: dict[str, str], answer: dict[str, Any]) -> str:
    """Which units hold the commune's dossiers, for how long they held them, and the steps overdue in
    dossiers still in time (a unit late with its step while the dossier is not yet late)."""
    held = answer["units"]
    spec = {"labels": [u["unit"] for u in held], "horizontal": True, "stacked": True,
            "series": [{"name": name, "colors": COLOURS[state], "values": [u["open"].get(state, 0) for u in held]}
                       for state, name in OPEN_STATES.items()]}
    steps = answer["overdue_steps"]
    cards = _cards([("buoc-qua-han", "Bước xử lý quá hạn, hồ sơ còn hạn", number(len(steps)))])
    body = (cards + f'<div class="charts">{chart("don-vi", "Hồ sơ đang giữ, theo đơn vị và tình trạng", spec)}</div>'
            + table_html(export.units_table(answer), "bang-don-vi")
            + "<h2>Hồ sơ còn hạn nhưng bước xử lý đã quá hạn</h2><p>Đơn vị đang giữ hồ sơ đã qua ngày hạn của bước"
            " mình (hạn từng bước, theo ngày), trong khi hồ sơ vẫn trong hạn giải quyết.</p>"
            + table_html(export.overdue_steps_table(answer), "bang-buoc-qua-han"))
    return _commune_page(place, "/don-vi", query, answer, body,
                         _downloads(f"/v1/reports/communes/{place.code}/units", answer))


def scorecard(answer: dict[str, Any], query: dict[str, str], highlight: str = "") -> str:
    """The province's communes ranked by their QĐ 766 score, each group's points, how they are scored."""
    rows = answer["communes"]
    spec = {"labels": [r["name"] for r in rows], "max": 100,
            "series": [{"name": "Điểm", "values": [r["score"] for r in rows],
                        "colors": [HIGHLIGHT if r["commune_code"] == highlight else BAR for r in rows]}]}
    keep = {k: query[k] for k in ("tu", "den", "luc")}
    head = "".join(f"<th scope=col>{escape(g['name'])}<br><small>tối đa {g['max']}</small></th>"
                   for g in answer["groups"])
    body = "".join(_ranked(r, keep, highlight) for r in rows)
    path = f"/v1/reports/provinces/{answer['province_code']}/scorecard"
    page = f"""
<form id="tinh" class="inline" method="get" action="/xep-hang">
<input type="hidden" name="tinh" value="{escape(answer['province_code'])}">
{period_fields("tinh", query)}<button type="submit">Xem</button></form>
{_period_line(query, answer)}{_downloads(path, answer)}
<div class="charts">{chart("xep-hang", f"Điểm của {len(rows)} xã theo thứ hạng", spec, tall=True)}</div>
<table id="bang-xep-hang"><thead><tr><th scope=col>Hạng</th><th scope=col>Xã, phường</th>
<th scope=col>Hồ sơ tiếp nhận</th><th scope=col>Điểm</th>{head}<th scope=col>Đúng hạn: Cổng (2.1)</th>
<th scope=col>Đúng hạn: NĐ 61</th></tr></thead><tbody>{body}</tbody></table>
{_how_scored(answer)}"""
    return layout(f"Xếp hạng các xã · {answer['province_name']}", page)


def _ranked(row: dict[str, Any], keep: dict[str, str], highlight: str) -> str:
    code = row["commune_code"]
    groups = "".join(f'<td class="num">{number(g["points"], 2)} / {number(g["measured_max"])}</td>'
                     if g["measured_max"] else f'<td class="num">{NO_VALUE}</td>' for g in row["groups"])
    return (f'<tr id="xa-{escape(code)}"{" class=chosen" if code == highlight else ""}>'
            f'<td class="num">{row["rank"]}/{row["of"]}</td>'
            f'<td><a href="{href("/bao-cao", {"ma": code, **keep})}">{escape(row["name"])}</a></td>'
            f'<td class="num">{number(row["received"])}</td><td class="num">{number(row["score"], 2)}</td>'
            f'{groups}<td class="num">{percent(row["on_time_views"]["portal"]["ratio"])}</td>'
            f'<td class="num">{percent(row["on_time_views"]["decree"]["ratio"])}</td></tr>')


def _how_scored(answer: dict[str, Any]) -> str:
    """The groups and sub-indicators the score is made of, and what it leaves out (docs/domain.md §6)."""
    groups = {g["key"]: g["name"] for g in answer["groups"]}
    left_out = set(answer["not_applicable"])
    rows = "".join(
        f"<tr><td>{escape(groups.get(s['group'], s['group']))}</td><td>{escape(s['code'])}</td>"
        f"<td>{escape(s['name'])}</td><td class=num>{number(s['max'])}</td>"
        f"<td class=num>{percent(s['full_marks_at'], 0)}</td>"
        f"<td>{'cấp tỉnh: không tính cho xã' if s['key'] in left_out else 'tính điểm'}</td></tr>"
        for s in answer["sub_indicators"])
    missing = "".join(f"<li>{escape(n['code'])} {escape(n['name'])} ({number(n['points'])} điểm)</li>"
                      for n in answer["not_measured"])
    return f"""<section class="how"><h2>Cách tính điểm</h2>
<p>Như Cổng Dịch vụ công quốc gia tính (tài liệu "Mô tả công thức tính chỉ số 766"): điểm của xã = tổng điểm các
chỉ tiêu đo được ÷ tổng điểm tối đa của chúng × 100; mỗi chỉ tiêu được min(tối đa, tối đa × tỉ lệ ÷ tỉ lệ đạt tối
đa). Chỉ tiêu không có mẫu số (không có hồ sơ thu phí, không có phản ánh) không tính. Xã cùng điểm cùng hạng. Ô nhóm
ghi điểm đạt / điểm tối đa đo được. Đúng hạn theo Cổng (2.1) và theo NĐ 61 có thể khác nhau: trang báo cáo của xã
liệt kê các hồ sơ khác nhau và lý do.</p>
<table><thead><tr><th scope=col>Nhóm</th><th scope=col>Mã</th><th scope=col>Chỉ tiêu</th><th scope=col>Tối đa</th>
<th scope=col>Đạt tối đa khi tỉ lệ</th><th scope=col>Trong điểm</th></tr></thead><tbody>{rows}</tbody></table>
<p>Không đo được từ hồ sơ (thông tin về thủ tục, không tính):</p><ul>{missing}</ul></section>"""
