"""The citizens' lookup page (/tra-cuu): Vietnamese, one column for a phone's screen, nothing loaded
from elsewhere (no fonts, no scripts: the form is a plain GET), labels on every field."""

from datetime import datetime
from html import escape
from typing import Any

from shared.calendar import WorkingCalendar

_STYLE = """
:root { color-scheme: light; --ink: #1d2733; --muted: #5b6776; --line: #d5dbe3; --brand: #a3141b; }
* { box-sizing: border-box; }
body { margin: 0; font: 17px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: var(--ink);
       background: #f5f6f8; }
header { background: var(--brand); color: #fff; padding: 14px 16px; }
header h1 { margin: 0; font-size: 1.2rem; }
header p { margin: 2px 0 0; font-size: .9rem; opacity: .9; }
main { max-width: 34rem; margin: 0 auto; padding: 16px; }
form, section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px; margin-bottom: 16px; }
label { display: block; font-weight: 600; margin: 10px 0 4px; }
input { width: 100%; font: inherit; padding: 10px 12px; border: 1px solid #9aa6b5; border-radius: 8px; }
input:focus { outline: 3px solid #f2b8bb; border-color: var(--brand); }
.hint { color: var(--muted); font-size: .85rem; margin: 4px 0 0; }
button { margin-top: 14px; width: 100%; font: inherit; font-weight: 600; padding: 12px; border: 0; border-radius: 8px;
         background: var(--brand); color: #fff; }
.state { font-size: 1.3rem; font-weight: 700; margin: 4px 0; }
.error { border-color: #e0a100; background: #fff8e1; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 4px 12px; margin: 8px 0 0; }
dt { color: var(--muted); }
dd { margin: 0; }
ol.timeline { list-style: none; margin: 8px 0 0; padding: 0 0 0 18px; border-left: 3px solid var(--line); }
ol.timeline li { position: relative; margin: 0 0 12px; }
ol.timeline li::before { content: ""; position: absolute; left: -26px; top: 6px; width: 13px; height: 13px;
                         border-radius: 50%; background: var(--brand); }
ol.timeline time { display: block; color: var(--muted); font-size: .85rem; }
"""


def _when(value: str | None, calendar: WorkingCalendar, with_time: bool = True) -> str:
    if not value:
        return "—"
    local = calendar.local(datetime.fromisoformat(value))
    return f"{local:%d/%m/%Y %H:%M}" if with_time else f"{local:%d/%m/%Y}"


def render(calendar: WorkingCalendar, code: str = "", phone4: str = "", token: str | None = None,
           found: dict[str, Any] | None = None, error: str | None = None) -> str:
    """The page: the form (filled in from a QR link: code and token), then the dossier or the error."""
    token_field = f'<input type="hidden" name="t" value="{escape(token)}">' if token else ""
    digits = "" if token else f"""
    <label for="so">4 số cuối điện thoại đăng ký</label>
    <input id="so" name="so" inputmode="numeric" pattern="[0-9]{{4}}" maxlength="4" required autocomplete="off"
           value="{escape(phone4)}" aria-describedby="so-hint">
    <p class="hint" id="so-hint">Số điện thoại ông/bà đã khai khi nộp hồ sơ.</p>"""
    result = ""
    if error:
        result = f'<section class="error" role="alert"><p>{escape(error)}</p></section>'
    elif found:
        steps = "".join(
            f'<li><strong>{escape(step["name"])}</strong><time datetime="{escape(step["time"])}">'
            f'{_when(step["time"], calendar)}</time></li>' for step in found["steps"])
        missing = (f"<dt>Cần bổ sung</dt><dd>{escape(found['missing'])}</dd>" if found["missing"] else "")
        timing = f" · {escape(found['open_state_name'])}" if found["state"] == "processing" else ""
        result = f"""
  <section aria-labelledby="ket-qua">
    <h2 id="ket-qua">Hồ sơ {escape(found["dossier_code"])}</h2>
    <p class="state" id="trang-thai">{escape(found["state_name"])}{timing}</p>
    <dl>
      <dt>Ngày tiếp nhận</dt><dd>{_when(found["received_at"], calendar)}</dd>
      <dt>Ngày hẹn trả</dt><dd>{_when(found["appointment_at"], calendar, with_time=False)}</dd>
      {missing}
    </dl>
    <h3>Quá trình giải quyết</h3>
    <ol class="timeline">{steps}</ol>
  </section>"""
    return f"""<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tra cứu hồ sơ thủ tục hành chính</title>
<style>{_STYLE}</style>
</head>
<body>
<header><h1>Tra cứu hồ sơ thủ tục hành chính</h1><p>Trung tâm Phục vụ hành chính công</p></header>
<main>
  <form method="get" action="/tra-cuu" aria-label="Tra cứu hồ sơ">
    <label for="ma">Mã hồ sơ</label>
    <input id="ma" name="ma" required maxlength="40" autocomplete="off" spellcheck="false"
           value="{escape(code)}" aria-describedby="ma-hint" placeholder="000.00.38.H56-250701-0001">
    <p class="hint" id="ma-hint">Mã in trên giấy tiếp nhận hồ sơ và hẹn trả kết quả.</p>
    {token_field}{digits}
    <button type="submit">Tra cứu</button>
  </form>{result}
</main>
</body>
</html>
"""
