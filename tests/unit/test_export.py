"""The report API's answers as CSV and XLSX tables (services/metrics/export.py): the same numbers as
the JSON, Vietnamese headers, the period and the as-of instant in the file, nothing run as a formula."""

import csv
import io
from datetime import date, datetime

import pytest
from openpyxl import load_workbook

from services.metrics import export
from services.metrics.app import scorecard_answer
from services.metrics.export import Percent
from services.metrics.vietnamese import VN
from shared.communes import communes_of_province
from shared.scorecard import COMMUNE_NOT_APPLICABLE, Counts, Tally, scorecard

# docs/contract.md §5's example answers.
COMMUNE = {"commune_code": "14923", "from": "2025-07-07", "to": "2025-07-08", "as_of": "2025-07-10T12:00:00+07:00",
           "received": 4, "by_channel": {"direct": 1, "online": 3, "postal": 0}, "online_full": 3,
           "completed": {"early": 1, "on_time": 0, "late": 1}, "withdrawn": 1,
           "open": {"within_deadline": 1, "due_soon": 0, "overdue": 0, "awaiting_supplement": 0, "paused": 0},
           "payments": {"online": 1, "offline": 0}, "digitized": 1,
           "ratings": {"very_satisfied": 1, "satisfied": 0, "unsatisfied": 0},
           "apologies": {"compliant": 0, "non_compliant": 0}, "received_elsewhere": 0,
           "rates": {"online": 0.75, "online_full": 0.75, "on_time": 0.6666666666666666,
                     "online_payment": 1.0, "digitization": 0.25, "satisfaction": None},
           "on_time_views": {"decree": {"in_time": 2, "judged": 3, "ratio": 0.6666666666666666},
                             "portal": {"on_time": 1, "received": 4, "ratio": 0.25}, "disagreements": 1,
                             "dossiers": [{"dossier_code": "000.00.38.H56-250707-0002", "decree": "in_time",
                                           "portal": "late", "reasons": ["supplement_subtracted", "same_day"],
                                           "end": "2025-07-08T15:00:00+07:00",
                                           "effective_end": "2025-07-08T11:00:00+07:00",
                                           "appointment": "2025-07-08T10:00:00+07:00"}]}}
AT_RISK = {"commune_code": "14923", "from": "2026-03-02", "to": "2026-03-03", "as_of": "2026-03-02T17:00:00+07:00",
           "horizon": "2026-03-03T23:59:59.999999+07:00", "score": 100.0, "score_if_all_in_time": 100.0,
           "score_if_due_turn_late": 77.5, "points_at_risk": 22.5, "open": 1, "due_by_horizon": 1,
           "dossiers": [{"dossier_code": "000.00.38.H56-260302-0802", "due_at": "2026-03-03T09:00:00+07:00",
                         "open_state": "due_soon", "hours_left": 1.0, "points": 22.5}]}
UNITS = {"commune_code": "14923", "from": "2026-03-02", "to": "2026-03-02", "as_of": "2026-03-02T17:00:00+07:00",
         "units": [{"unit": "Tư pháp", "working_hours_held": 6.0, "open": {"due_soon": 1}, "overdue": 0,
                    "steps_overdue": 1},
                   {"unit": "=HYPERLINK(\"http://x\")\x01", "working_hours_held": 0.5, "open": {}, "overdue": 0,
                    "steps_overdue": 0}],
         "overdue_steps": [{"dossier_code": "923.14.00.H38-260302-0001", "unit": "Tư pháp",
                            "step_due_at": "2026-03-01T17:00:00+07:00", "due_at": "2026-03-03T10:00:00+07:00"}]}


def card(counts: Counts) -> dict:
    return scorecard(counts) | {"on_time_views": {"decree": {"in_time": 1, "judged": 1, "ratio": 1.0},
                                                  "portal": {"on_time": 1, "received": 2, "ratio": 0.5},
                                                  "disagreements": 1, "dossiers": []}}


# As services/metrics/app.py answers, for two communes: one measured, one with nothing received.
SCORECARD = scorecard_answer("38", communes_of_province("38"), date(2026, 3, 2), date(2026, 3, 2),
                             datetime.fromisoformat("2026-03-02T17:00:00+07:00"), COMMUNE_NOT_APPLICABLE, [
    {"rank": 1, "of": 2, "commune_code": "14923", "name": "Xã Bá Thước", "received": 2,
     **card(Counts(on_time=Tally(1, 2), end_to_end_online=Tally(1, 2), digitized_dossier=Tally(2, 2)))},
    {"rank": 2, "of": 2, "commune_code": "14924", "name": "Xã Điền Quang", "received": 0, **card(Counts())},
])


def read_csv(data: bytes) -> tuple[list[list[str]], list[list[str]]]:
    """The documented layout: the title block up to the first empty line, then the table."""
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM, for Excel
    lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    blank = lines.index([])
    return lines[:blank], lines[blank + 1:]


def test_the_commune_table_holds_every_figure_of_the_answer_by_its_path():
    table = export.commune_table(COMMUNE)
    assert table.title == "Báo cáo hồ sơ thủ tục hành chính – Xã Bá Thước (14923), Thanh Hóa"
    by_path = {path: value for _, value, path in table.rows}
    assert by_path["received"] == 4 and by_path["by_channel.online"] == 3 and by_path["open.within_deadline"] == 1
    assert by_path["rates.on_time"] == pytest.approx(2 / 3) and isinstance(by_path["rates.on_time"], Percent)
    assert by_path["rates.satisfaction"] is None
    figures = {k: v for k, v in COMMUNE.items() if k != "on_time_views"}
    numbers = sum(1 for v in figures.values() if isinstance(v, int)) + sum(
        len(v) for v in figures.values() if isinstance(v, dict))
    assert len(table.rows) == numbers + 3  # every count and rate, once; both on-time views and how many differ
    assert by_path["on_time_views.portal.ratio"] == 0.25 and isinstance(by_path["on_time_views.portal.ratio"], Percent)


def test_the_csv_has_the_title_block_then_the_table_with_the_jsons_values():
    about, rows = read_csv(export.to_csv(export.commune_table(COMMUNE)))
    assert about[0] == ["Báo cáo hồ sơ thủ tục hành chính – Xã Bá Thước (14923), Thanh Hóa"]
    assert about[1:] == [["Từ ngày (ngày tiếp nhận)", "2025-07-07"], ["Đến ngày (ngày tiếp nhận)", "2025-07-08"],
                         ["Tính đến (giờ Việt Nam)", "2025-07-10T12:00:00+07:00"]]
    assert rows[0] == ["Chỉ tiêu", "Số liệu", "Mã chỉ tiêu (JSON)"]
    values = {path: value for _, value, path in rows[1:]}
    assert values["received"] == "4" and float(values["rates.on_time"]) == COMMUNE["rates"]["on_time"]
    assert values["rates.satisfaction"] == ""


def test_the_xlsx_has_a_title_block_then_typed_cells_with_formats():
    sheet = load_workbook(io.BytesIO(export.to_xlsx(export.commune_table(COMMUNE)))).active
    assert sheet.title == "Báo cáo xã" and sheet["A1"].value.startswith("Báo cáo hồ sơ")
    assert (sheet["A2"].value, sheet["B2"].value, sheet["B2"].number_format) \
        == ("Từ ngày (ngày tiếp nhận)", datetime(2025, 7, 7), "dd/mm/yyyy")
    assert (sheet["B4"].value, sheet["B4"].number_format) == (datetime(2025, 7, 10, 12, 0), "dd/mm/yyyy hh:mm")
    header = 6  # title, three lines of the title block, an empty row
    assert [c.value for c in sheet[header]] == ["Chỉ tiêu", "Số liệu", "Mã chỉ tiêu (JSON)"]
    cells = {row[2].value: row[1] for row in sheet.iter_rows(min_row=header + 1)}
    assert (cells["received"].value, cells["received"].number_format) == (4, "#,##0")
    assert (cells["rates.on_time"].value, cells["rates.on_time"].number_format) == (2 / 3, "0.00%")
    assert cells["rates.satisfaction"].value is None
    assert sheet.freeze_panes == f"A{header + 1}"


def test_instants_in_the_xlsx_are_local_times_whatever_the_offset_the_answer_used():
    utc = COMMUNE | {"as_of": "2025-07-10T05:00:00+00:00"}
    sheet = load_workbook(io.BytesIO(export.to_xlsx(export.commune_table(utc)))).active
    assert sheet["B4"].value == datetime(2025, 7, 10, 12, 0)


def test_a_days_last_instant_stays_on_that_day_in_the_xlsx():
    """Excel rounds 23:59:59.999999 up to the next midnight: the XLSX keeps instants to the second."""
    sheet = load_workbook(io.BytesIO(export.to_xlsx(export.at_risk_table(AT_RISK)))).active
    assert sheet["B5"].value == datetime(2026, 3, 3, 23, 59, 59)


def test_the_scorecard_table_ranks_the_communes_with_their_groups_and_both_on_time_views():
    table = export.scorecard_table(SCORECARD)
    assert table.header[:7] == ["Hạng", "Trên", "Mã xã", "Tên xã", "Hồ sơ tiếp nhận", "Điểm (thang 100)",
                                "Tối đa đo được"]
    assert table.header[7:9] == ["Công khai, minh bạch: điểm", "Công khai, minh bạch: tối đa đo được (chính thức 18)"]
    assert table.header[-3:] == ["Đúng hạn theo Cổng DVCQG (2.1)", "Đúng hạn theo NĐ 61", "Hồ sơ hai cách tính khác nhau"]
    first, second = table.rows
    # 2.1: 1 of 2 (10 points of 20); 4.2: 2 of 2 (4 of 4); 5.4: 1 − 1/2 (6 × 0.5 ÷ 0.9 of 6)
    assert first[:7] == [1, 2, "14923", "Xã Bá Thước", 2, pytest.approx(100 * (10 + 4 + 6 * 0.5 / 0.9) / 30), 30]
    assert first[-3:] == [0.5, 1.0, 1] and isinstance(first[-3], Percent)
    assert second[5] is None and second[6] == 0
    about = dict(table.about)
    assert about["Tỉnh"] == "Thanh Hóa (38)" and about["Tính đến (giờ Việt Nam)"] == datetime.fromisoformat(
        SCORECARD["as_of"])
    assert about["Không áp dụng (không tính điểm)"] == "Hồ sơ trực tuyến toàn trình; Ứng dụng dữ liệu dân cư"
    assert "TTHC công bố đúng hạn (6 điểm)" in about["Chưa đo được từ hồ sơ"]


def test_the_scorecard_xlsx_has_one_sheet_per_group_with_numerators_and_denominators():
    book = load_workbook(io.BytesIO(export.to_xlsx(export.scorecard_table(SCORECARD))))
    assert book.sheetnames == ["Xếp hạng", "Công khai, minh bạch", "Tiến độ, kết quả giải quyết",
                               "Cung cấp dịch vụ trực tuyến", "Thanh toán trực tuyến", "Số hóa hồ sơ",
                               "Mức độ hài lòng"]
    sheet = book["Cung cấp dịch vụ trực tuyến"]
    header = [c.value for c in next(r for r in sheet.iter_rows() if r[0].value == "Hạng")]
    top = next(r[0].row for r in sheet.iter_rows() if r[0].value == "Hạng")
    values = dict(zip(header, [c.value for c in sheet[top + 1]], strict=True))
    label = "3.1 Hồ sơ trực tuyến toàn trình"
    assert (values[f"{label}: tử số"], values[f"{label}: mẫu số"], values[f"{label}: tỉ lệ"]) == (1, 2, 0.5)
    assert values[f"{label}: điểm (tối đa 12)"] is None and values[f"{label}: cách tính"] == "Không áp dụng cho xã"
    assert sheet.cell(top + 1, header.index(f"{label}: tỉ lệ") + 1).number_format == "0.00%"
    progress = book["Tiến độ, kết quả giải quyết"]
    top = next(r[0].row for r in progress.iter_rows() if r[0].value == "Hạng")
    assert [c.value for c in progress[top + 2]][5:8] == [0, 0, None]  # nothing received: no data


def test_the_commune_xlsx_lists_where_the_two_on_time_views_disagree_and_why():
    book = load_workbook(io.BytesIO(export.to_xlsx(export.commune_table(COMMUNE))))
    assert book.sheetnames == ["Báo cáo xã", "Hai cách tính đúng hạn"]
    rows = [[c.value for c in r] for r in book["Hai cách tính đúng hạn"].iter_rows()]
    listed = rows[rows.index(next(r for r in rows if r[0] == "Mã hồ sơ")) + 1]
    assert listed[:3] == ["000.00.38.H56-250707-0002", "Đúng hạn", "Quá hạn"]
    assert "Cổng trừ thời gian bổ sung" in listed[3] and "Cổng so giờ, NĐ 61 so ngày" in listed[3]
    assert listed[6] == datetime(2025, 7, 8, 10, 0)


def test_the_at_risk_table_has_the_scores_above_and_the_dossiers_below():
    table = export.at_risk_table(AT_RISK)
    about = dict(table.about)
    assert about["Điểm có nguy cơ mất"] == 22.5 and about["Hồ sơ đến hạn trước hạn xét"] == 1
    assert about["Hạn xét (giờ Việt Nam)"] == datetime.fromisoformat(AT_RISK["horizon"])
    assert table.rows == [["000.00.38.H56-260302-0802", datetime.fromisoformat("2026-03-03T09:00:00+07:00"),
                           "Sắp đến hạn", 1.0, 22.5]]
    about_lines, rows = read_csv(export.to_csv(table))
    assert ["Hạn xét (giờ Việt Nam)", "2026-03-03T23:59:59.999999+07:00"] in about_lines
    assert rows[1] == ["000.00.38.H56-260302-0802", "2026-03-03T09:00:00+07:00", "Sắp đến hạn", "1.0", "22.5"]


def test_a_dossier_without_a_due_leaves_the_cell_blank():
    waiting = AT_RISK | {"dossiers": [AT_RISK["dossiers"][0] | {"due_at": None, "hours_left": None}]}
    assert export.at_risk_table(waiting).rows[0][1] is None
    assert read_csv(export.to_csv(export.at_risk_table(waiting)))[1][1][1] == ""


def test_the_units_table_counts_every_open_state_zero_when_absent():
    rows = export.units_table(UNITS).rows
    assert rows[0] == ["Tư pháp", 6.0, 0, 1, 0, 0, 0, 1]
    assert rows[1][2:] == [0, 0, 0, 0, 0, 0]


def test_the_overdue_steps_table_gives_both_dues_as_local_instants():
    table = export.overdue_steps_table(UNITS)
    assert table.header == ["Mã hồ sơ", "Đơn vị đang giữ", "Hạn của bước", "Hạn giải quyết hồ sơ"]
    assert table.rows == [["923.14.00.H38-260302-0001", "Tư pháp", datetime(2026, 3, 1, 17, 0, tzinfo=VN),
                           datetime(2026, 3, 3, 10, 0, tzinfo=VN)]]


def test_text_from_the_events_is_never_a_formula():
    about, rows = read_csv(export.to_csv(export.units_table(UNITS)))
    assert rows[2][0].startswith("'=HYPERLINK")
    sheet = load_workbook(io.BytesIO(export.to_xlsx(export.units_table(UNITS)))).active
    unit = sheet.cell(len(about) + 4, 1)  # the title and its block, an empty row, the header, the first row
    assert unit.value == '=HYPERLINK("http://x")' and unit.data_type == "s"  # a string, without the \x01


@pytest.mark.parametrize("output, media_type, signature", [("csv", "text/csv; charset=utf-8", b"\xef\xbb\xbf"),
                                                            ("xlsx", export.XLSX, b"PK")])
def test_a_download_is_named_after_the_report_and_its_period(output, media_type, signature):
    response = export.respond(UNITS, output, export.units_table)
    assert response.media_type == media_type and response.body.startswith(signature)
    assert response.headers["content-disposition"] \
        == f'attachment; filename="don-vi-14923_2026-03-02_2026-03-02.{output}"'


def test_json_is_the_answer_itself():
    assert export.respond(UNITS, "json", export.units_table) is UNITS


def test_every_table_fits_an_xlsx_sheet_name():
    tables = [export.commune_table(COMMUNE), export.scorecard_table(SCORECARD), export.at_risk_table(AT_RISK),
              export.units_table(UNITS)]
    tables += [more for t in tables for more in t.more]
    assert all(len(t.sheet) <= 31 and t.filename.isascii() for t in tables)
    assert {type(v) for t in tables for _, v in t.about} <= {str, int, float, date, datetime}
