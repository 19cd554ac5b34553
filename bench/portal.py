"""The demo's Phú Thọ communes as their one-stop-shop system syncs them to the national portal (docs/dvcqg.md).

A dossier's generated history (bench/generate.py, CloudEvents in time order) becomes what the system would send
instead: a `DongBoHoSoMC` snapshot per step, each carrying the whole dossier so far (the steps the format dates
at the receipt, an input digitized or paid online then, are in the first one), and a `CapNhatTienDoHoSoMC`
record per transfer and per step a snapshot cannot date (a financial obligation, a withdrawal). What the format
cannot carry is given back apart: the ratings, which an article figure needs (sent as CloudEvents beside the
sync, and said so), and the rest, which no figure needs (counted and named: the demo prints them).

`python -m bench.portal PASSWORD_FILE ACCOUNTS_FILE` makes the local stack's portal account once (the password
kept in PASSWORD_FILE, readable by its owner only; the hash in the accounts file intake reads).
"""

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.generate import CAL
from services.intake.keys import local_secret
from shared.auth import password_hash
from shared.dossier import fold
from shared.dvcqg import DATE_FORMAT, VN
from shared.events import parse_event

PORTAL_COMMUNES = ("08152", "09076")  # Thanh Ba, Vĩnh Tường (Phú Thọ)
ACCOUNT = {"name": "motcua-phutho", "username": "motcua-phutho", "source": "urn:motcua:25", "provinces": ["25"]}
CHANNELS = {"direct": "1", "online": "2", "postal": "3"}
RETURN_METHODS = {"direct": "0", "postal": "1"}
BESIDE = ("dossier.rated",)  # not in the format, and an article figure needs it (satisfaction)


def when(at: str | datetime) -> str:
    """An instant as the format writes it: yyyyMMddHHmmss, Vietnam's time."""
    instant = datetime.fromisoformat(at) if isinstance(at, str) else at
    return instant.astimezone(VN).strftime(DATE_FORMAT)


@dataclass
class PortalDossier:
    """One dossier as the portal's sync carries it, and what it leaves out."""

    snapshots: list[dict[str, Any]] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    beside: list[dict[str, Any]] = field(default_factory=list)  # CloudEvents sent apart (BESIDE)
    left_out: list[str] = field(default_factory=list)  # types of steps neither carried nor sent


def portal_dossier(history: list[dict[str, Any]], unit: str) -> PortalDossier:
    """The records of one dossier's history (events in time order)."""
    dues = Dues(history)
    out = PortalDossier()
    record = _receipt(history[0], unit, when(dues.after(0)))
    steps = list(enumerate(history[1:], start=1))
    # What the format dates at the receipt (an input digitized, a fee paid online) goes in the first snapshot,
    # as the system knows it by then: anything up to the first step that is not a transfer.
    while steps and steps[0][1]["type"] in AT_RECEIPT + ("dossier.transferred",):
        k, event = steps.pop(0)
        if event["type"] == "dossier.transferred":
            steps.insert(0, (k, event))
            break
        if not _apply(record, event, dues, k):
            out.left_out.append(_named(event))
    out.snapshots.append(_copy(record))
    holding: dict[str, Any] | None = None  # the latest CapNhatTienDoHoSoMC: who holds the dossier, since when
    for k, event in steps:
        type_ = event["type"]
        if type_ in BESIDE:
            out.beside.append(event)
            continue
        before = _copy(record)
        if not _apply(record, event, dues, k):
            out.left_out.append(_named(event))
        if record != before:
            out.snapshots.append(_copy(record))
        if type_ == "dossier.transferred":
            holding = _progress(event, "4")
            out.progress.append(holding)
        elif type_ in DATED_BY_PROGRESS and holding is not None:
            # The snapshot cannot date these (status 6, 7): the processing step does, at its instant (its own
            # NgayBatDau is the holding step's, so the transfer it also proves is that one again).
            out.progress.append(holding | {"ThoiDiemXuLy": when(event["time"]), "TrangThai": DATED_BY_PROGRESS[type_],
                                           "NoiDungXuLy": event["data"].get("reason") or "Nghĩa vụ tài chính"})
    return out


AT_RECEIPT = ("dossier.digitized", "dossier.payment_completed")
DATED_BY_PROGRESS = {"dossier.obligation_requested": "6", "dossier.withdrawn": "7"}


class Dues:
    """The due in force after each event of a history (the fold's): what the snapshots show as NgayHenTra."""

    def __init__(self, history: list[dict[str, Any]]):
        self._events = [parse_event(e) for e in history]

    def after(self, k: int) -> datetime:
        due = fold(self._events[: k + 1], CAL).dossier.due_at
        assert due is not None, "a due in force"
        return due


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    return dict(record, DanhSachHoSoBoSung=[dict(r) for r in record["DanhSachHoSoBoSung"]])


def _named(event: dict[str, Any]) -> str:
    if event["type"] == "dossier.payment_completed":
        return "dossier.payment_completed (offline)"
    return event["type"]


def _receipt(event: dict[str, Any], unit: str, appointment: str) -> dict[str, Any]:
    """The snapshot of a dossier just received (status 2), with everything the receipt says."""
    data = event["data"]
    record = {
        "MaHoSo": event["subject"], "MaTTHC": data["procedure_code"], "TenTTHC": data["procedure_name"],
        "MaLinhVuc": data["sector"], "KenhThucHien": CHANNELS[data["channel"]],
        "ChuHoSo": data["applicant"]["name"], "SoDienThoai": data["applicant"]["phone"],
        "NgayNopHoSo": when(event["time"]), "NgayTiepNhan": when(event["time"]), "NgayHenTra": appointment,
        "TrangThaiHoSo": "2", "DonViXuLy": unit, "HoSoCoThanhPhanSoHoa": "0", "DuocThanhToanTrucTuyen": "0",
        "TaiLieuNop": [{"MaThanhPhanHoSo": "TP01", "TenTepDinhKem": "To khai.pdf", "DuocSoHoa": "0",
                        "DuocTaiSuDung": "0", "DuocLayTuKhoDMQG": "0"}],
        "DanhSachHoSoBoSung": [],
    }
    if fee := (data.get("fee") or {}).get("amount"):
        record["DanhSachLePhi"] = [{"MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí", "Gia": str(fee)}]
    return record


def _apply(record: dict[str, Any], event: dict[str, Any], dues: Dues, k: int) -> bool:
    """The snapshot after the `k`-th step; False when the format has no field for that step."""
    type_, data, at = event["type"], event["data"], when(event["time"])
    rounds = record["DanhSachHoSoBoSung"]
    if type_ == "dossier.digitized":
        record["HoSoCoThanhPhanSoHoa"] = "1"
        record["TaiLieuNop"] = [dict(record["TaiLieuNop"][0], DuocSoHoa="1")]
    elif type_ == "dossier.payment_completed":
        if data.get("method") != "online":
            return False  # the format says whether a dossier was paid online, nothing of a payment at the desk
        record["DuocThanhToanTrucTuyen"] = "1"
    elif type_ == "dossier.transferred":
        record["TrangThaiHoSo"] = "4"
    elif type_ == "dossier.supplement_requested":
        rounds.append({"NoiDungBoSung": data["reason"], "NgayBoSung": at, "NgayHenTraTruoc": record["NgayHenTra"]})
        record["TrangThaiHoSo"] = "5"
    elif type_ == "dossier.supplement_received":
        appointment = when(dues.after(k))
        rounds[-1] = dict(rounds[-1], NgayTiepNhanBoSung=at, NgayHenTraMoi=appointment)
        record.update(TrangThaiHoSo="4", NgayHenTra=appointment)
    elif type_ == "dossier.obligation_requested":
        record["TrangThaiHoSo"] = "6"
    elif type_ == "dossier.obligation_fulfilled":
        record["TrangThaiHoSo"] = "4"
        return False  # back to "đang xử lý": the format has no instant for it (implied at the end)
    elif type_ == "dossier.withdrawn":
        record.update(TrangThaiHoSo="7", GhiChu=data.get("reason") or "Công dân rút hồ sơ")
    elif type_ == "dossier.stopped":
        record.update(TrangThaiHoSo="8", NgayKetThucXuLy=at)
    elif type_ == "dossier.resolved":
        record.update(TrangThaiHoSo="9", NgayKetThucXuLy=at)
    elif type_ == "dossier.returned":
        record.update(TrangThaiHoSo="10", NgayTra=at)
        if method := RETURN_METHODS.get(data.get("method", "")):
            record["HinhThuc"] = method
    else:
        return False  # apologies, signatures: not in the format
    return True


def _progress(event: dict[str, Any], status: str) -> dict[str, Any]:
    """A transfer as CapNhatTienDoHoSoMC: the department now holding the dossier, with the step's own due."""
    data = event["data"]
    record = {"MaHoSo": event["subject"], "NguoiXuLy": data.get("handler") or "Cán bộ thụ lý",
              "ChucDanh": "Chuyên viên", "ThoiDiemXuLy": when(event["time"]), "PhongBanXuLy": data["to_unit"],
              "NoiDungXuLy": f"Chuyển {data['to_unit']} thụ lý", "TrangThai": status,
              "NgayBatDau": when(event["time"])}
    if data.get("step_due_at"):
        record["NgayKetThucTheoQuyDinh"] = when(data["step_due_at"])
    return record


def ensure_account(password_file: Path, accounts_file: Path) -> str:
    """The local stack's portal account for the demo's Phú Thọ system: a random password made once."""
    password = local_secret(password_file, 24)
    accounts_file.write_text(json.dumps([ACCOUNT | {"password_hash": password_hash(password)}]))
    return password


if __name__ == "__main__":
    ensure_account(Path(sys.argv[1]), Path(sys.argv[2]))
