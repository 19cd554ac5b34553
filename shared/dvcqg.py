"""The national portal's sync format (Cổng DVCQG, docs/dvcqg.md) as the steps each record proves: pure functions.

`snapshot_steps` reads one `DongBoHoSoMC` record (a dossier snapshot), `progress_steps` one `CapNhatTienDoHoSoMC`
record (a processing step); each gives the CloudEvents (as JSON-ready dicts, docs/contract.md §1) of the steps
the record proves, or raises `RecordError` naming each wrong field in Vietnamese and English. A step's id derives
from the MaHoSo, the step and its instant, so the same record twice, or an older snapshot after a newer one, adds
nothing downstream (processing deduplicates by source + id). A step the record gives without its instant is
dated by the record's arrival and marked `intakeinferred` (shared/dossier.py leaves it out if it cannot apply).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.calendar import WorkingCalendar
from shared.catalogue import Catalogue
from shared.communes import commune
from shared.events import DossierEvent, EventErrors, is_dossier_code, parse_events
from shared.units import Units

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DATE_FORMAT = "%Y%m%d%H%M%S"  # yyyyMMddHHmmss, Vietnam's time
CHANNELS = {"1": "direct", "2": "online", "3": "postal"}  # KenhThucHien
GATEWAYS = {"1": "portal", "2": "province"}  # DuocThanhToanTrucTuyen; other values: not paid online
RETURN_METHODS = {"0": "direct", "1": "postal"}  # HinhThuc (hình thức trả kết quả)
STATUSES = range(1, 11)  # TrangThaiHoSo (docs/domain.md §2)
NOT_A_DOSSIER = (1, 3)  # mới đăng ký, không được tiếp nhận: never a dossier for us
UNDATED = "undated"


@dataclass(frozen=True)
class Problem:
    """One wrong field of a record, said in Vietnamese and in English."""

    field: str
    vi: str
    en: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.vi, "message_en": self.en}


class RecordError(ValueError):
    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.field}: {p.en}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Reference:
    """What the format does not carry, from the deployment: units, catalogue, calendar, SMS consent."""

    units: Units
    catalogue: Catalogue
    calendar: WorkingCalendar
    sms_provinces: frozenset[str] = frozenset()  # provinces whose applicants are sent SMS (default: none)


@dataclass(frozen=True)
class Batch:
    """Who sent the records and when they arrived: the credential's system is the events' `source`."""

    source: str
    madonvi: str | None
    arrived: datetime


@dataclass
class _Reader:
    """Reads a record's fields (or an item's of one of its lists, `prefix`), collecting every problem."""

    record: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    prefix: str = ""

    def item(self, name: str, index: int, item: dict[str, Any]) -> "_Reader":
        return _Reader(item, self.problems, f"{self.prefix}{name}[{index}].")

    def fail(self, name: str, vi: str, en: str) -> None:
        self.problems.append(Problem(self.prefix + name, vi, en))

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.record.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if value is not None and not isinstance(value, str):
            self.fail(name, "phải là chuỗi ký tự", "must be a string")
            return None
        value = (value or "").strip() or None
        if value is None and required:
            self.fail(name, "bắt buộc, không được để trống", "is required and may not be empty")
        return value

    def instant(self, name: str, required: bool = False) -> datetime | None:
        """A date of the format, yyyyMMddHHmmss in Vietnam's time (an ISO 8601 date-time is read too)."""
        value = self.text(name, required)
        if value is None:
            return None
        try:
            if len(value) == 14 and value.isdigit():  # by hand: strptime was a third of the mapping's time
                numbers = (value[0:4], value[4:6], value[6:8], value[8:10], value[10:12], value[12:14])
                return datetime(*map(int, numbers), tzinfo=VN)  # type: ignore[misc]
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=VN)
        except ValueError:
            self.fail(name, f"ngày giờ không hợp lệ '{value[:40]}' (định dạng yyyyMMddHHmmss)",
                      f"not a real date and time '{value[:40]}' (format yyyyMMddHHmmss)")
            return None

    def flag(self, name: str) -> bool:
        """A 0/1 flag of the format; anything but empty and 0 reads as set (DuocTaiSuDung may be 1 or 2)."""
        return str(self.record.get(name) or "").strip().lower() not in ("", "0", "false")

    def items(self, name: str) -> list[tuple["_Reader", dict[str, Any]]]:
        value = self.record.get(name)
        if value in (None, ""):
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail(name, "phải là danh sách đối tượng", "must be a list of objects")
            return []
        return [(self.item(name, index, item), item) for index, item in enumerate(value)]

    def amount(self, name: str) -> float | None:
        value = self.text(name)
        try:
            amount = float(value.replace(",", "")) if value is not None else None
        except ValueError:
            amount = -1
        if amount is not None and not 0 <= amount < 1e15:
            self.fail(name, f"số tiền không hợp lệ '{value[:20]}'", f"not an amount of VND '{value[:20]}'")
            return None
        return amount

    def check(self) -> None:
        if self.problems:
            raise RecordError(self.problems)


def _code(reader: _Reader) -> str | None:
    code = reader.text("MaHoSo", required=True)
    if code is not None and not is_dossier_code(code):
        reader.fail("MaHoSo", "không phải mã hồ sơ theo TT 01/2018 (000.00.00.H00-YYMMDD-0000)",
                    "not a dossier code of TT 01/2018 (000.00.00.H00-YYMMDD-0000)")
    return code


def _status(reader: _Reader, name: str) -> int | None:
    value = reader.text(name, required=True)
    if value is None:
        return None
    if not value.isdigit() or int(value) not in STATUSES:
        reader.fail(name, f"mã trạng thái không hợp lệ '{value[:20]}' (1–10)", f"unknown status code '{value[:20]}' (1-10)")
        return None
    return int(value)


def event_id(code: str, step: str, at: datetime | None, n: int | None = None) -> str:
    """The id of the step `step` of dossier `code` at instant `at` (None: undated), the `n`-th of its kind."""
    instant = UNDATED if at is None else at.astimezone(VN).strftime(DATE_FORMAT)
    return f"dvcqg/{code}/{step}/{instant}" + ("" if n is None else f"/{n}")


@dataclass
class _Steps:
    """The steps of one record, as CloudEvents of the batch's source."""

    code: str
    batch: Batch
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, type_: str, at: datetime | None, data: dict[str, Any], n: int | None = None,
            implied: bool = False) -> None:
        """A step at `at`; at None, dated by the arrival and inferred; `implied` (a step a later state implies
        at its instant) inferred too."""
        event = {"specversion": "1.0", "id": event_id(self.code, type_.removeprefix("dossier."), at, n),
                 "source": self.batch.source, "type": type_, "subject": self.code,
                 "time": (at or self.batch.arrived).isoformat(), "datacontenttype": "application/json",
                 "data": data | ({"dated_by": "arrival"} if at is None else {})}
        if at is None or implied:
            event["intakeinferred"] = True
        self.events.append(event)


@dataclass(frozen=True)
class _Round:
    """One supplement round (DanhSachHoSoBoSung): requested, returned (if it was), why."""

    requested: datetime
    returned: datetime | None
    reason: str
    appointment_before: datetime | None  # NgayHenTraTruoc: the appointment the round displaced
    appointment_after: datetime | None  # NgayHenTraMoi: the appointment told when it was returned


def _rounds(reader: _Reader) -> list[_Round]:
    rounds = []
    for item, _raw in reader.items("DanhSachHoSoBoSung"):
        requested, returned = item.instant("NgayBoSung", required=True), item.instant("NgayTiepNhanBoSung")
        before, after = item.instant("NgayHenTraTruoc"), item.instant("NgayHenTraMoi")
        reason = item.text("NoiDungBoSung") or "Yêu cầu bổ sung hồ sơ"
        if requested and returned and returned < requested:
            item.fail("NgayTiepNhanBoSung", "ngày tiếp nhận bổ sung trước ngày yêu cầu bổ sung (NgayBoSung)",
                      "the supplement was returned before it was requested (NgayBoSung)")
        elif requested:
            rounds.append(_Round(requested, returned, reason[:2000], before, after))
    return sorted(rounds, key=lambda r: r.requested)


def _unit(reader: _Reader, batch: Batch, ref: Reference) -> tuple[str | None, str | None]:
    """The commune the dossier belongs to (DonViXuLy's, else the sender's, madonvi), and the receiving centre
    when it is another commune's (received_by_unit, NĐ 118)."""
    sender = ref.units.find(batch.madonvi) if batch.madonvi else None
    named = reader.text("DonViXuLy")
    unit = ref.units.find(named) if named else sender
    if unit is None:
        where, what = ("DonViXuLy", named) if named else ("madonvi", batch.madonvi or "")
        reader.fail(where, f"đơn vị '{what[:80]}' không có trong danh mục đơn vị (deploy/dvcqg/units.yaml)",
                    f"unit '{what[:80]}' is not in the units file (deploy/dvcqg/units.yaml)")
        return None, None
    elsewhere = sender is not None and sender.commune != unit.commune
    return unit.commune, (sender.code if elsewhere and sender else None)


def _processing_time(reader: _Reader, ref: Reference, procedure: str | None, received_at: datetime | None,
                     appointment: datetime | None) -> tuple[dict[str, Any] | None, str | None]:
    """The procedure's processing time (the format has none): the catalogue's, else the working hours from
    NgayTiepNhan to the first appointment; and which of the two it is."""
    entry = ref.catalogue.get(procedure) if procedure else None
    if entry is not None:
        return entry.processing_time.model_dump(), "catalogue"
    if received_at is None:
        return None, None
    if appointment is None:
        reader.fail("NgayHenTra", "bắt buộc khi thủ tục không có trong danh mục thủ tục (không tính được thời hạn)",
                    "is required when the procedure is not in the catalogue (no processing time otherwise)")
        return None, None
    hours = ref.calendar.working_between(received_at, appointment).total_seconds() / 3600
    if hours <= 0:
        reader.fail("NgayHenTra", "ngày hẹn trả phải sau ngày tiếp nhận, trong giờ làm việc",
                    "the appointment must fall after the receipt, in working time")
        return None, None
    return {"value": round(hours, 4), "unit": "working_hours"}, "appointment"


def _components(reader: _Reader) -> list[dict[str, Any]]:
    """TaiLieuNop: each submitted document, digitized (DuocSoHoa), reused (DuocTaiSuDung), taken from the
    personal data store (DuocLayTuKhoDMQG)."""
    components = []
    for n, (item, _raw) in enumerate(reader.items("TaiLieuNop"), start=1):
        if item.flag("IsDeleted"):
            continue
        code = item.text("MaThanhPhanHoSo") or item.text("TepDinhKemId") or f"TP{n}"
        components.append({"code": code[:200], "digitized": item.flag("DuocSoHoa"), "reused": item.flag("DuocTaiSuDung"),
                           "from_personal_store": item.flag("DuocLayTuKhoDMQG")})
    return components


def _fees(reader: _Reader) -> list[dict[str, Any]]:
    fees = []
    for n, (item, _raw) in enumerate(reader.items("DanhSachLePhi"), start=1):
        amount = item.amount("Gia")
        fees.append({"code": (item.text("MaPhiLePhi") or f"LP{n}")[:200], "amount": amount or 0})
    return fees


def _receipt(reader: _Reader, batch: Batch, ref: Reference, rounds: list[_Round]) -> dict[str, Any]:
    """The `dossier.received` data a snapshot proves (docs/dvcqg.md's table, field by field)."""
    received_at = reader.instant("NgayTiepNhan", required=True)
    procedure = reader.text("MaTTHC", required=True)
    kenh = reader.text("KenhThucHien", required=True)
    channel = CHANNELS.get(kenh or "")
    if kenh and channel is None:
        reader.fail("KenhThucHien", f"kênh thực hiện không hợp lệ '{kenh[:20]}' (1, 2 hoặc 3)",
                    f"unknown channel '{kenh[:20]}' (1, 2 or 3)")
    commune_code, received_by = _unit(reader, batch, ref)
    # The receipt's appointment: the earliest NgayHenTra this snapshot shows (a supplement round moves it).
    shown = [reader.instant("NgayHenTra"), *(r.appointment_before for r in rounds)]
    appointment = min((a for a in shown if a is not None), default=None)
    processing_time, basis = _processing_time(reader, ref, procedure, received_at, appointment)
    entry = ref.catalogue.get(procedure) if procedure else None
    unit = commune(commune_code) if commune_code else None
    data: dict[str, Any] = {
        "commune_code": commune_code, "procedure_code": procedure, "procedure_name": reader.text("TenTTHC"),
        "sector": reader.text("MaLinhVuc", required=True), "channel": channel,
        "online_level": ((entry.online_level if entry else None) or "partial") if channel == "online" else None,
        "processing_time": processing_time, "processing_time_basis": basis,
        "due_at": appointment.isoformat() if appointment else None, "received_by_unit": received_by,
        "applicant": {"name": reader.text("ChuHoSo"), "phone": reader.text("SoDienThoai"),
                      "sms_opt_in": unit is not None and unit.province_code in ref.sms_provinces},
        "components": _components(reader), "vneid_authenticated": reader.flag("TaiKhoanDuocXacThucVoiVNeID"),
        "population_data": bool(reader.items("DSKetNoiCSDL")), "fees": _fees(reader),
        "submitted_at": (submitted.isoformat() if (submitted := reader.instant("NgayNopHoSo")) else None),
    }
    return {name: value for name, value in data.items() if value is not None} | {"received_at": received_at}


def snapshot_steps(record: Any, batch: Batch, ref: Reference) -> list[dict[str, Any]]:
    """The steps one `DongBoHoSoMC` record proves, as CloudEvents; RecordError if it is not a valid record."""
    if not isinstance(record, dict):
        raise RecordError([Problem("(record)", "bản ghi phải là một đối tượng JSON", "a record must be a JSON object")])
    reader = _Reader(record)
    code, status = _code(reader), _status(reader, "TrangThaiHoSo")
    reader.check()
    assert code is not None and status is not None
    if status in NOT_A_DOSSIER:
        return []
    rounds = _rounds(reader)
    receipt = _receipt(reader, batch, ref, rounds)
    resolved_at, returned_at = reader.instant("NgayKetThucXuLy"), reader.instant("NgayTra")
    results = reader.items("DanhSachGiayToKetQua")
    reader.check()
    steps = _Steps(code, batch)
    received_at = receipt.pop("received_at")
    steps.add("dossier.received", received_at, receipt)
    if any(c["digitized"] for c in receipt["components"]) or reader.flag("HoSoCoThanhPhanSoHoa"):
        steps.add("dossier.digitized", received_at, {"scope": "input"})
    if gateway := GATEWAYS.get(reader.text("DuocThanhToanTrucTuyen") or ""):
        # The format says whether, not when: dated at the receipt (a payment may precede it, docs/dvcqg.md).
        amount = sum(fee["amount"] for fee in receipt["fees"])
        steps.add("dossier.payment_completed", received_at, {"method": "online", "amount": amount, "gateway": gateway})
    for r in rounds:
        steps.add("dossier.supplement_requested", r.requested, {"reason": r.reason})
        if r.returned:
            steps.add("dossier.supplement_received", r.returned,
                      {"new_appointment_at": r.appointment_after.isoformat()} if r.appointment_after else {})
    _outcome(steps, reader, status, rounds, resolved_at, returned_at)
    end = resolved_at or returned_at if status in (9, 10) else None
    for n, (item, _raw) in enumerate(results):
        steps.add("dossier.result_issued", end, _result(item, n), n=n)
    return steps.events


def _outcome(steps: _Steps, reader: _Reader, status: int, rounds: list[_Round], resolved_at: datetime | None,
             returned_at: datetime | None) -> None:
    """The steps the status itself proves (docs/dvcqg.md, status by status)."""
    if status == 5 and not any(r.returned is None for r in rounds):
        steps.add("dossier.supplement_requested", None, {"reason": "Yêu cầu bổ sung hồ sơ (không rõ nội dung)"})
    elif status == 6:
        steps.add("dossier.obligation_requested", None, {})
    elif status == 7:
        steps.add("dossier.withdrawn", None, {"reason": reader.text("GhiChu") or "Công dân rút hồ sơ"})
    elif status == 8:
        # Its instant is CapNhatTienDoHoSoMC's (CONTRACT §9): NgayKetThucXuLy, if given, only stands in for it.
        steps.add("dossier.stopped", resolved_at, {"reason": (reader.text("GhiChu") or "Dừng xử lý")[:2000]},
                  implied=True)
    elif status in (9, 10):
        # An ended dossier met any financial obligation it had: implied, left out if it had none.
        steps.add("dossier.obligation_fulfilled", resolved_at, {}, implied=True)
        steps.add("dossier.resolved", resolved_at, {})
        if status == 10:
            method = RETURN_METHODS.get(reader.text("HinhThuc") or "")
            steps.add("dossier.returned", returned_at, {"method": method} if method else {})


def _result(item: _Reader, n: int) -> dict[str, Any]:
    """DanhSachGiayToKetQua: an electronic result, its code and the link to fetch it."""
    document = item.text("GiayToId") or item.text("MaGiayToKetQua") or ""
    document_id = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "-" for c in document)[:64]
    data = {"document_id": document_id or f"KQ{n + 1}",
            "code": (item.text("MaGiayToKetQua") or item.text("TenGiayTo") or document_id or f"KQ{n + 1}")[:200]}
    if url := item.text("DuongDanTepTinKetQua"):
        data["url"] = url
    return data


# CapNhatTienDoHoSoMC's TrangThai that date a step a snapshot gives without its instant (CONTRACT §9).
_DATED_BY_PROGRESS = {6: "dossier.obligation_requested", 7: "dossier.withdrawn", 8: "dossier.stopped"}


def progress_steps(record: Any, batch: Batch) -> list[dict[str, Any]]:
    """The steps one `CapNhatTienDoHoSoMC` record proves: the processing step as a `dossier.transferred` to the
    department (PhongBanXuLy) or officer (NguoiXuLy) with its own due (NgayKetThucTheoQuyDinh); and, for status
    6, 7 or 8, that step dated by ThoiDiemXuLy. RecordError if it is not a valid record."""
    if not isinstance(record, dict):
        raise RecordError([Problem("(record)", "bản ghi phải là một đối tượng JSON", "a record must be a JSON object")])
    reader = _Reader(record)
    code, at = _code(reader), reader.instant("ThoiDiemXuLy", required=True)
    started, step_due = reader.instant("NgayBatDau"), reader.instant("NgayKetThucTheoQuyDinh")
    status = _status(reader, "TrangThai") if reader.text("TrangThai") else None
    handler, title = reader.text("NguoiXuLy"), reader.text("ChucDanh")
    department, content = reader.text("PhongBanXuLy"), reader.text("NoiDungXuLy")
    reader.check()
    assert code is not None and at is not None
    steps = _Steps(code, batch)
    holder = department or handler or batch.madonvi or "Bộ phận xử lý"
    data = {"from_unit": (batch.madonvi or "Bộ phận một cửa")[:2000], "to_unit": holder[:2000],
            "handler": ", ".join(p for p in (handler, title) if p)[:2000] or None,
            "step_due_at": step_due.isoformat() if step_due else None, "content": (content or "")[:2000] or None}
    steps.add("dossier.transferred", started or at, {k: v for k, v in data.items() if v is not None})
    if status in _DATED_BY_PROGRESS:
        type_ = _DATED_BY_PROGRESS[status]
        reason = {"dossier.obligation_requested": {}, "dossier.withdrawn": {"reason": content or "Công dân rút hồ sơ"},
                  "dossier.stopped": {"reason": (content or "Dừng xử lý")[:2000]}}[type_]
        steps.add(type_, at, reason)
    return steps.events


SERVICES = ("DongBoHoSoMC", "CapNhatTienDoHoSoMC")
# Where a field of our events comes from in the format: an invalid value is reported under the format's name.
_FIELDS = {"subject": "MaHoSo", "data.procedure_code": "MaTTHC", "data.procedure_name": "TenTTHC",
           "data.sector": "MaLinhVuc", "data.applicant.name": "ChuHoSo", "data.applicant.phone": "SoDienThoai",
           "data.commune_code": "DonViXuLy", "data.due_at": "NgayHenTra", "data.to_unit": "PhongBanXuLy",
           "data.handler": "NguoiXuLy", "data.from_unit": "madonvi", "data.url": "DanhSachGiayToKetQua.DuongDanTepTinKetQua",
           "data.reason": "NoiDungBoSung", "data.content": "NoiDungXuLy"}


def record_events(service: str, record: Any, batch: Batch, ref: Reference) -> list[tuple[dict[str, Any], DossierEvent]]:
    """The events of one record of `service`, each as JSON-ready values and validated; RecordError naming the
    format's fields otherwise."""
    steps = snapshot_steps(record, batch, ref) if service == SERVICES[0] else progress_steps(record, batch)
    try:
        return list(zip(steps, parse_events(steps), strict=True))
    except EventErrors as exc:
        raise RecordError([Problem(_FIELDS.get(e.field, e.field), f"giá trị không hợp lệ: {e.message}", e.message)
                           for e in exc.errors]) from None
