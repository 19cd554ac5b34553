"""docs/dvcqg.md §8, TraCuuHoSo: a dossier's portal records, folded by processing's pure core and summarized as its
store summarizes them, read back in the portal's shape (shared/dvcqg_lookup.py); who may see it; the throttle."""

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

from services.intake.portal import LOOKUP, TOO_MANY, Sender, _throttled
from services.processing.history import StoredDossier, give_up_waiting, integrate
from services.processing.store import summary_doc
from shared.auth import ApiKey, PortalAccount, password_hash
from shared.calendar import WorkingCalendar
from shared.catalogue import load_catalogue
from shared.dvcqg import Batch, Reference, record_events
from shared.dvcqg_lookup import Caller, Held, dossier_answer, held_of, portal_date, visible
from shared.mongo import unpack
from shared.ratelimit import Windows
from shared.units import load_units
from tests.fixtures.dvcqg import CODE, LIFE, PROGRESS, UNIT, snapshot

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()
REF = Reference(load_units(), load_catalogue(), CAL)
SOURCE = "urn:motcua:38"
BATCH = Batch(SOURCE, UNIT, datetime(2025, 7, 10, 9, 0, tzinfo=VN))
NOW = datetime(2025, 7, 10, 9, 5, tzinfo=VN)
OWNER = Caller((SOURCE,), lambda commune: True)


def held(records, batch=BATCH, code=CODE) -> Held:
    """The records as intake maps them, integrated as processing does, read back from the summary it writes."""
    new = [(event, orjson.dumps(obj)) for service, record in records
           for obj, event in record_events(service, record, batch, REF)]
    stored = integrate(StoredDossier(code), new, CAL, NOW).stored
    return held_of(code, unpack(summary_doc(stored)["blob"]))


def answer(records, caller=OWNER) -> dict:
    shown = visible(held(records), caller)
    assert shown is not None
    return dossier_answer(shown, REF.units)


def test_a_returned_dossier_in_the_portals_names_without_the_applicant():
    found = answer(LIFE)
    assert {k: v for k, v in found.items() if k not in ("QuaTrinhXuLy", "BanGhiKhongApDung")} == {
        "MaHoSo": CODE, "MaTTHC": "2.000635", "TenTTHC": "Cấp bản sao trích lục hộ tịch", "MaLinhVuc": "HT",
        "KenhThucHien": "2", "TrangThaiHoSo": "10", "NgayTiepNhan": "20250707083000",
        "NgayHenTra": "20250709140000", "NgayKetThucXuLy": "20250709100000", "NgayTra": "20250709150000",
        "DonViXuLy": UNIT, "PhongBanXuLy": "Tư pháp - Hộ tịch",
        "DanhSachHoSoBoSung": [{"NgayBoSung": "20250707100000", "NgayTiepNhanBoSung": "20250708140000"}],
        "HanXuLy": "20250709140000", "DungHan": "on_time"}
    assert found["BanGhiKhongApDung"] == []
    assert found["QuaTrinhXuLy"][0] == {"Id": f"dvcqg/{CODE}/received/20250707083000", "Buoc": "dossier.received",
                                        "ThoiDiem": "20250707083000"}
    text = json.dumps(found, ensure_ascii=False)
    assert "Phạm Thị Thu Hương" not in text and "0912345678" not in text and "sealed" not in text


@pytest.mark.parametrize(("records", "status"), [
    ([("DongBoHoSoMC", snapshot(2))], "2"),
    ([("DongBoHoSoMC", snapshot(2)), ("CapNhatTienDoHoSoMC", PROGRESS)], "4"),
    ([("DongBoHoSoMC", snapshot(5))], "5"),
    ([("DongBoHoSoMC", snapshot(7))], "7"),
    ([("DongBoHoSoMC", snapshot(8))], "8"),
    ([("DongBoHoSoMC", snapshot(9))], "9"),
    (LIFE, "10"),
])
def test_our_state_as_the_portals_status(records, status):
    assert answer(records)["TrangThaiHoSo"] == status


def test_a_record_dead_lettered_after_intake_took_it_is_shown_with_its_reason():
    early = PROGRESS | {"NgayBatDau": "20250707080000", "ThoiDiemXuLy": "20250707080000"}  # before the receipt
    found = answer([("DongBoHoSoMC", snapshot(2)), ("CapNhatTienDoHoSoMC", early)])
    assert found["BanGhiKhongApDung"] == [{
        "Id": f"dvcqg/{CODE}/transferred/20250707080000", "Nguon": SOURCE, "Buoc": "dossier.transferred",
        "ThoiDiem": "20250707080000",
        "LyDo": "dossier.transferred at 2025-07-07T08:00:00+07:00 is before the dossier was received"}]
    assert found["TrangThaiHoSo"] == "2"


def test_only_the_owner_serving_the_commune_sees_the_dossier_and_unknown_looks_the_same():
    dossier = held(LIFE)
    assert visible(dossier, OWNER) is dossier
    assert visible(dossier, Caller(("*",), lambda commune: True)) is dossier
    assert visible(dossier, Caller(("urn:motcua:25",), lambda commune: True)) is None  # another system
    assert visible(dossier, Caller((SOURCE,), lambda commune: False)) is None  # out of its scope
    assert visible(None, OWNER) is None


def test_a_foreign_senders_records_are_the_owners_to_see():
    foreign = Batch("urn:motcua:25", UNIT, BATCH.arrived)
    new = [(event, orjson.dumps(obj)) for batch, records in ((BATCH, LIFE[:1]), (foreign, [LIFE[1]]))
           for service, record in records for obj, event in record_events(service, record, batch, REF)]
    stored = integrate(StoredDossier(CODE), new, CAL, NOW).stored
    dossier = held_of(CODE, unpack(summary_doc(stored)["blob"]))
    assert visible(dossier, Caller(("urn:motcua:25",), lambda commune: True)) is None
    [rejected] = dossier_answer(visible(dossier, OWNER), REF.units)["BanGhiKhongApDung"]
    assert rejected["Nguon"] == "urn:motcua:25" and rejected["LyDo"].startswith("foreign source")


def test_records_without_a_receipt_are_not_found_even_by_their_sender():
    """Security review: a system saw its own records of a dossier without a receipt, and "not found" for
    one another system owns: sending any record for a code, then looking it up, told whether it existed."""
    new = [(event, orjson.dumps(obj)) for obj, event in record_events("CapNhatTienDoHoSoMC", PROGRESS, BATCH, REF)]
    given_up = give_up_waiting(integrate(StoredDossier(CODE), new, CAL, NOW).stored, "168 hours")
    dossier = held_of(CODE, unpack(summary_doc(given_up)["blob"]))
    assert visible(dossier, Caller(("urn:motcua:25",), lambda commune: True)) is None
    assert visible(dossier, OWNER) is None  # its sender too: the same answer as an unknown code


def test_dates_are_written_in_vietnams_time():
    assert portal_date("2025-07-07T01:30:00+00:00") == "20250707083000"
    assert portal_date(None) is None


def test_a_system_that_looks_up_too_much_waits():
    now = [0.0]
    windows = Windows(3, 60, clock=lambda: now[0])
    account = PortalAccount(name="a", username="a", password_hash=password_hash("x", iterations=1), source=SOURCE)
    sender = Sender.of_account(account)
    body = {"service": LOOKUP, "data": [CODE, CODE]}
    assert _throttled(windows, body, sender) is None
    assert _throttled(windows, body, sender) is None
    refused = _throttled(windows, body, sender)
    assert refused is not None and refused.status_code == 429 and json.loads(refused.body)["error_code"] == TOO_MANY
    assert refused.headers["retry-after"] == "60"
    assert _throttled(windows, {"service": "DongBoHoSoMC", "data": [{}]}, sender) is None  # syncs are not throttled
    other = Sender.of_key(ApiKey(name="k", key_sha256="0" * 64, sources=["urn:motcua:25"]))
    assert _throttled(windows, body, other) is None  # each system its own window
    now[0] = 61
    assert _throttled(windows, body, sender) is None
