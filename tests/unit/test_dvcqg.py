"""docs/dvcqg.md: the national portal's sync format as the steps each record proves (shared/dvcqg.py), table by
table, and as properties: any order or repetition of a life's records folds to the dossier its CloudEvents give."""

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.calendar import WorkingCalendar
from shared.catalogue import Catalogue, load_catalogue
from shared.dossier import fold
from shared.dvcqg import Batch, RecordError, Reference, event_id, progress_steps, record_events, snapshot_steps
from shared.events import parse_event
from shared.units import load_units
from tests.fixtures.dvcqg import CODE, LIFE, PROGRESS, UNIT, cloudevents_life, snapshot

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()
REF = Reference(load_units(), load_catalogue(), CAL)
SOURCE = "urn:motcua:38"
ARRIVED = datetime(2025, 7, 10, 9, 0, tzinfo=VN)
BATCH = Batch(SOURCE, UNIT, ARRIVED)
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=VN)


def types(record, batch=BATCH, ref=REF) -> list[str]:
    return [e["type"].removeprefix("dossier.") for e in snapshot_steps(record, batch, ref)]


def events_of(records, batch=BATCH) -> list:
    return [event for service, record in records for _, event in record_events(service, record, batch, REF)]


def problems(record, service="DongBoHoSoMC") -> set[str]:
    with pytest.raises(RecordError) as caught:
        record_events(service, record, BATCH, REF)
    assert all(p.vi and p.en for p in caught.value.problems)
    return {p.field for p in caught.value.problems}


BASE = ["received", "digitized", "payment_completed"]


@pytest.mark.parametrize(("status", "steps"), [
    (1, []),  # mới đăng ký: not yet a dossier
    (2, BASE),
    (3, []),  # không được tiếp nhận: never a dossier
    (4, BASE),
    (5, [*BASE, "supplement_requested"]),
    (6, [*BASE, "supplement_requested", "obligation_requested"]),
    (7, [*BASE, "supplement_requested", "withdrawn"]),
    (8, [*BASE, "supplement_requested", "stopped"]),
    (9, [*BASE, "supplement_requested", "supplement_received", "obligation_fulfilled", "resolved"]),
    (10, [*BASE, "supplement_requested", "supplement_received", "obligation_fulfilled", "resolved", "returned",
          "result_issued"]),
])
def test_each_status_proves_its_steps(status, steps):
    assert types(snapshot(status)) == steps


@pytest.mark.parametrize(("status", "inferred"), [(6, "obligation_requested"), (7, "withdrawn"), (8, "stopped")])
def test_a_step_without_its_instant_is_dated_by_the_arrival_and_inferred(status, inferred):
    [step] = [e for e in snapshot_steps(snapshot(status), BATCH, REF) if e["type"] == f"dossier.{inferred}"]
    assert (step["time"], step["intakeinferred"], step["data"]["dated_by"]) == (ARRIVED.isoformat(), True, "arrival")
    assert step["id"] == event_id(CODE, inferred, None)


@pytest.mark.parametrize(("status", "type_"), [(6, "obligation_requested"), (7, "withdrawn"), (8, "stopped")])
def test_a_progress_record_dates_those_steps(status, type_):
    steps = progress_steps(PROGRESS | {"TrangThai": str(status), "ThoiDiemXuLy": "20250708090000"}, BATCH)
    assert [(e["type"], e["time"], "intakeinferred" in e) for e in steps][1] == (
        f"dossier.{type_}", at("20250708090000").isoformat(), False)


@pytest.mark.parametrize(("kenh", "channel", "level"), [("1", "direct", None), ("2", "online", "full"),
                                                        ("3", "postal", None)])
def test_each_channel(kenh, channel, level):
    data = snapshot_steps(snapshot(2, KenhThucHien=kenh), BATCH, REF)[0]["data"]
    assert (data["channel"], data.get("online_level")) == (channel, level)


def test_the_receipt_maps_every_field_it_can():
    data = snapshot_steps(snapshot(2), BATCH, REF)[0]["data"]
    assert data == {
        "commune_code": "14923", "procedure_code": "2.000635", "procedure_name": "Cấp bản sao trích lục hộ tịch",
        "sector": "HT", "channel": "online", "online_level": "full",
        "processing_time": {"value": 1.0, "unit": "working_days"}, "processing_time_basis": "catalogue",
        "due_at": at("20250708083000").isoformat(),
        "applicant": {"name": "Phạm Thị Thu Hương", "phone": "0912345678", "sms_opt_in": False},
        "components": [{"code": "TP01", "digitized": True, "reused": False, "from_personal_store": False},
                       {"code": "TP02", "digitized": True, "reused": True, "from_personal_store": True}],
        "vneid_authenticated": True, "population_data": True, "fees": [{"code": "LP01", "amount": 8000.0}],
        "submitted_at": at("20250707081500").isoformat(),
    }


def test_sms_consent_is_a_per_province_setting():
    ref = Reference(REF.units, REF.catalogue, CAL, frozenset({"38"}))
    assert snapshot_steps(snapshot(2), BATCH, ref)[0]["data"]["applicant"]["sms_opt_in"] is True


def test_without_the_catalogue_the_processing_time_is_the_working_time_to_the_first_appointment():
    ref = Reference(REF.units, Catalogue(), CAL)
    data = snapshot_steps(snapshot(4, returned=True), BATCH, ref)[0]["data"]
    # 7/7 08:30 to 8/7 08:30 (NgayHenTraTruoc of the round, earlier than NgayHenTra): 8 working hours.
    assert (data["processing_time"], data["processing_time_basis"], data["online_level"]) == (
        {"value": 8.0, "unit": "working_hours"}, "appointment", "partial")
    assert "NgayHenTra" in problems_with(ref, snapshot(2, NgayHenTra=""))


def problems_with(ref, record) -> set[str]:
    with pytest.raises(RecordError) as caught:
        snapshot_steps(record, BATCH, ref)
    return {p.field for p in caught.value.problems}


def test_payment_gateway_results_and_supplement_rounds():
    steps = {e["type"]: e for e in snapshot_steps(snapshot(10, DuocThanhToanTrucTuyen="2"), BATCH, REF)}
    assert steps["dossier.payment_completed"]["data"] == {"method": "online", "amount": 8000.0, "gateway": "province"}
    assert steps["dossier.result_issued"]["data"] == {"document_id": "KQ-58290", "code": "123/TLKS-BS",
                                                      "url": "https://dichvucong.thanhhoa.gov.vn/kq/58290.pdf"}
    assert steps["dossier.result_issued"]["time"] == at("20250709100000").isoformat()
    assert steps["dossier.supplement_requested"]["data"] == {"reason": "Thiếu tờ khai có chữ ký"}
    assert steps["dossier.supplement_received"]["data"] == {"new_appointment_at": at("20250709140000").isoformat()}
    assert steps["dossier.returned"]["data"] == {"method": "direct"}
    assert "dossier.payment_completed" not in types(snapshot(2, DuocThanhToanTrucTuyen="3"))


def test_another_communes_centre_is_the_receiving_unit():
    batch = Batch(SOURCE, "152.08.00.H25", ARRIVED)  # Thanh Ba's centre took a Bá Thước dossier
    data = snapshot_steps(snapshot(2), batch, REF)[0]["data"]
    assert (data["commune_code"], data["received_by_unit"]) == ("14923", "152.08.00.H25")
    no_unit = {k: v for k, v in snapshot(2).items() if k != "DonViXuLy"}
    assert snapshot_steps(no_unit, batch, REF)[0]["data"]["commune_code"] == "08152"


def test_a_progress_record_is_a_transfer_with_the_steps_own_due():
    [step] = progress_steps(PROGRESS, BATCH)
    assert (step["type"], step["time"], step["data"]) == ("dossier.transferred", at("20250707090000").isoformat(), {
        "from_unit": UNIT, "to_unit": "Tư pháp - Hộ tịch", "handler": "Lê Thị Hạnh, Công chức Tư pháp - Hộ tịch",
        "step_due_at": at("20250707170000").isoformat(), "content": "Chuyển xử lý hồ sơ"})


@pytest.mark.parametrize(("change", "field"), [
    ({"MaHoSo": None}, "MaHoSo"),
    ({"MaHoSo": "HS-1"}, "MaHoSo"),
    ({"TrangThaiHoSo": "11"}, "TrangThaiHoSo"),
    ({"TrangThaiHoSo": "x"}, "TrangThaiHoSo"),
    ({"NgayTiepNhan": "20250231083000"}, "NgayTiepNhan"),  # 31/02
    ({"NgayTiepNhan": "20250707246100"}, "NgayTiepNhan"),  # 24:61
    ({"NgayTiepNhan": ""}, "NgayTiepNhan"),
    ({"KenhThucHien": "4"}, "KenhThucHien"),
    ({"DonViXuLy": "UBND xã Không Có"}, "DonViXuLy"),
    ({"MaLinhVuc": "hộ tịch"}, "MaLinhVuc"),
    ({"ChuHoSo": "A" * 5_000_000}, "ChuHoSo"),  # 5 MB in a field
    ({"TaiLieuNop": "không phải danh sách"}, "TaiLieuNop"),
    ({"DanhSachLePhi": [{"Gia": "tám nghìn"}]}, "DanhSachLePhi[0].Gia"),
    ({"DanhSachHoSoBoSung": [{"NgayBoSung": "20250708100000", "NgayTiepNhanBoSung": "20250707100000"}]},
     "DanhSachHoSoBoSung[0].NgayTiepNhanBoSung"),  # returned before it was requested
    ({"DanhSachGiayToKetQua": [{"GiayToId": "KQ1", "DuongDanTepTinKetQua": "ftp://x"}]},
     "DanhSachGiayToKetQua.DuongDanTepTinKetQua"),
])
def test_a_wrong_field_is_named_in_vietnamese_and_english(change, field):
    assert field in problems(snapshot(10) | change)


def test_wrong_progress_records_and_non_objects():
    assert problems(PROGRESS | {"ThoiDiemXuLy": "2025-13-01"}, "CapNhatTienDoHoSoMC") == {"ThoiDiemXuLy"}
    assert problems(PROGRESS | {"TrangThai": "0"}, "CapNhatTienDoHoSoMC") == {"TrangThai"}
    assert problems(["not", "a", "record"]) == {"(record)"}


def test_a_life_sent_as_snapshots_is_the_life_sent_as_cloudevents():
    as_snapshots = fold(events_of(LIFE), CAL)
    as_cloudevents = fold([parse_event(e) for e in cloudevents_life(SOURCE)], CAL)
    assert as_snapshots.rejected == ()
    assert as_snapshots.dossier.received == as_cloudevents.dossier.received
    assert as_snapshots.timeline == as_cloudevents.timeline
    d = as_snapshots.dossier
    assert (d.state, d.due_at, d.timeliness) == ("returned", at("20250709140000"), "on_time")


@FUZZ
@given(st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_order_and_repetition_of_the_records_folds_to_the_same_dossier(rng: random.Random, repeats):
    """Snapshots only add steps: in any order, repeated, an older one last: the same state, due, timeline."""
    records = LIFE + [rng.choice(LIFE) for _ in range(repeats)]
    rng.shuffle(records)
    expected = fold(events_of(LIFE), CAL)
    folded = fold(events_of(records + [LIFE[0]]), CAL)  # an older snapshot last
    assert (folded.dossier, folded.timeline) == (expected.dossier, expected.timeline)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(snapshot(10))), st.one_of(
    st.none(), st.text(max_size=30), st.integers(), st.floats(), st.booleans(),
    st.lists(st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=3), max_size=3))))
def test_any_snapshot_is_steps_or_a_named_error(changes):
    """Any value in any field, any Unicode: the record maps to valid events or says which field is wrong."""
    try:
        events = record_events("DongBoHoSoMC", snapshot(10) | changes, BATCH, REF)
    except RecordError as error:
        assert error.problems and all(p.field and p.vi and p.en for p in error.problems)
    else:
        assert all(event.subject for _, event in events)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(PROGRESS)), st.one_of(st.none(), st.text(max_size=30), st.integers())))
def test_any_progress_record_is_steps_or_a_named_error(changes):
    try:
        record_events("CapNhatTienDoHoSoMC", PROGRESS | changes, BATCH, REF)
    except RecordError as error:
        assert error.problems and all(p.field and p.vi and p.en for p in error.problems)


def test_the_catalogue_is_read_again_when_its_file_changes(tmp_path):
    from shared.reloading import Reloading
    path = tmp_path / "procedures.yaml"
    path.write_text('procedures: {"1.001193": {name: Khai sinh, processing_time: {value: 1, unit: working_days}}}\n')
    catalogue = Reloading(path, load_catalogue)
    assert catalogue.current().get("1.001193").processing_time.hours == 8
    path.write_text('procedures: {"1.001193": {name: Khai sinh, processing_time: {value: 3, unit: working_days}}}\n')
    assert catalogue.current().get("1.001193").processing_time.hours == 24
    path.write_text("procedures: [not, a, catalogue]\n")
    assert catalogue.current().get("1.001193").processing_time.hours == 24 and catalogue.error
