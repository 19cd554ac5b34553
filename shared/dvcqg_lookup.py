"""`TraCuuHoSo`, the national portal format's lookup (docs/dvcqg.md §8): what we hold of a dossier, in the portal's
field names, with the records of it that did not apply and why. Pure: intake reads processing's summary of the
dossier by its key (services/intake/held.py) and this module says what the caller may see of it and in what shape.

Who sees what: a dossier belongs to the source of its first receipt (shared/dossier.py), so only a credential of
that source, serving the dossier's commune, sees it. A dossier without a receipt yet is seen only by a sender of
some of its records, and only those records. Everything else reads "not found", the same whether the code is
unknown or another system's, so the lookup cannot probe. The applicant (name, phone) is never in the answer.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shared.dvcqg import CHANNELS, DATE_FORMAT, VN
from shared.units import Units

# Our states as the portal's TrangThaiHoSo (docs/dvcqg.md §3, read backwards); "processing" is 2 until a transfer.
STATUS_OF_STATE = {"awaiting_supplement": "5", "paused": "6", "withdrawn": "7", "stopped": "8", "resolved": "9",
                   "returned": "10"}
KENH_OF_CHANNEL = {channel: kenh for kenh, channel in CHANNELS.items()}
RECEIVED = "dossier.received"


@dataclass(frozen=True)
class Held:
    """What processing's summary of one dossier holds that the lookup answers from."""

    code: str
    view: dict[str, Any] | None  # the dossier as processing shows it (None: no receipt yet)
    receipt: dict[str, Any] | None  # the first receipt that arrived, as sent (its owner's)
    unit: str | None  # who holds it now: the last transfer's `to_unit`
    rejections: list[dict[str, str]]  # each dead-lettered record: source, id, type, time, reason
    sources: frozenset[str]  # the sources of every record stored for it


def held_of(code: str, summary: dict[str, Any]) -> Held:
    """The lookup's part of processing's summary (its unpacked blob: services/processing/store.py:summary_doc;
    a summary written before histories existed has every event instead of the receipt and the sources)."""
    if "events" in summary:
        events = [orjson.loads(raw) for raw in summary["events"] or []]
        receipt = next((e for e in events if e.get("type") == RECEIVED), None)
        sources = {e.get("source") for e in events}
    else:
        receipt = orjson.loads(summary["receipt"]) if summary.get("receipt") else None
        sources = set(summary.get("sources") or [])
    timeline = summary.get("timeline") or []
    return Held(code, summary.get("view"), receipt, timeline[-1].get("unit") if timeline else None,
                list(summary.get("rejections") or []), frozenset(s for s in sources if isinstance(s, str)))


@dataclass(frozen=True)
class Caller:
    """Who asks: the sources its credential sends as ("*": any) and the communes it serves."""

    sources: tuple[str, ...]
    serves: Callable[[str], bool]

    def sends_as(self, source: str) -> bool:
        return "*" in self.sources or source in self.sources


def visible(held: Held | None, caller: Caller) -> Held | None:
    """What `caller` may see of `held`: all of it if it owns the dossier and serves its commune; otherwise
    None, "not found". A dossier without a receipt has no owner yet: "not found" to every caller, as an
    unknown code (showing a sender its own records there, and not where another system owns the dossier,
    would tell it which codes exist)."""
    if held is None or held.receipt is None or held.view is None:
        return None
    owned = caller.sends_as(str(held.receipt.get("source")))
    return held if owned and caller.serves(str(held.view["commune_code"])) else None


def portal_date(instant: str | None) -> str | None:
    """An RFC 3339 instant as the format writes it: yyyyMMddHHmmss, Vietnam's time."""
    return datetime.fromisoformat(instant).astimezone(VN).strftime(DATE_FORMAT) if instant else None


def _status(view: dict[str, Any]) -> str:
    if view["state"] != "processing":
        return STATUS_OF_STATE[view["state"]]
    return "4" if any(step["type"] == "dossier.transferred" for step in view["history"]) else "2"


def _rounds(view: dict[str, Any]) -> list[dict[str, str]]:
    """DanhSachHoSoBoSung: each supplement round, requested (NgayBoSung) and, once returned, NgayTiepNhanBoSung."""
    rounds: list[dict[str, str]] = []
    for step in view["history"]:
        if step["type"] == "dossier.supplement_requested":
            rounds.append({"NgayBoSung": portal_date(step["time"])})  # type: ignore[dict-item]
        elif step["type"] == "dossier.supplement_received" and rounds:
            rounds[-1]["NgayTiepNhanBoSung"] = portal_date(step["time"])  # type: ignore[assignment]
    if rounds and view.get("missing") and "NgayTiepNhanBoSung" not in rounds[-1]:
        rounds[-1]["NoiDungBoSung"] = view["missing"]
    return rounds


def _unit_code(units: Units, commune_code: str) -> str:
    """The agency's electronic code of the commune (the units file), else the commune's own code."""
    return next((unit.code for unit in units.units if unit.commune == commune_code), commune_code)


def rejected_records(held: Held) -> list[dict[str, str | None]]:
    """BanGhiKhongApDung: each record of the dossier that was dead-lettered after intake took it, and why."""
    return [{"Id": r["id"], "Nguon": r["source"], "Buoc": r["type"], "ThoiDiem": portal_date(r["time"]),
             "LyDo": r["reason"]} for r in held.rejections]


def dossier_answer(held: Held, units: Units) -> dict[str, Any]:
    """The dossier in the portal's field names (docs/dvcqg.md §8), our own additions after them; no applicant."""
    if held.view is None:  # no receipt yet: only what did not apply
        return {"MaHoSo": held.code, "TrangThaiHoSo": None, "BanGhiKhongApDung": rejected_records(held)}
    view, data = held.view, (held.receipt or {}).get("data") or {}
    returned = [step["time"] for step in view["history"] if step["type"] == "dossier.returned"]
    answer = {
        "MaHoSo": held.code, "MaTTHC": data.get("procedure_code"), "TenTTHC": data.get("procedure_name"),
        "MaLinhVuc": view["sector"], "KenhThucHien": KENH_OF_CHANNEL.get(data.get("channel", "")),
        "TrangThaiHoSo": _status(view), "NgayTiepNhan": portal_date(view["received_at"]),
        "NgayHenTra": portal_date(view.get("appointment_at") or view["due_at"]),
        "NgayKetThucXuLy": portal_date(view["ended_at"]), "NgayTra": portal_date(returned[0] if returned else None),
        "DonViXuLy": _unit_code(units, view["commune_code"]), "PhongBanXuLy": held.unit,
        "DanhSachHoSoBoSung": _rounds(view),
        "HanXuLy": portal_date(view["due_at"]), "DungHan": view["timeliness"],
        "QuaTrinhXuLy": [{"Id": s["id"], "Buoc": s["type"], "ThoiDiem": portal_date(s["time"])} for s in view["history"]],
        "BanGhiKhongApDung": rejected_records(held),
    }
    return {name: value for name, value in answer.items() if value is not None}
