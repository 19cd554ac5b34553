"""The national portal's sync format on the real stack (docs/dvcqg.md): a dossier's life sent as portal records
(in order, shuffled, repeated, an older snapshot last) is, in processing, the same life sent as CloudEvents."""

import asyncio
import json
import random

import httpx
import pytest

from shared.auth import password_hash
from tests.fixtures.dvcqg import UNIT, cloudevents_life, life, snapshot
from tests.integration.conftest import (ANY_SOURCE_KEY, OPERATOR, PROVINCE_KEY, Pipeline, namespace, read_topic, service,
                                       wait_until)

SOURCE = "urn:motcua:38"
USERNAME, PASSWORD = "motcua-thanhhoa", "Bá-Thước-2025!"
OTHER, OTHER_PASSWORD = "motcua-phutho", "Thanh-Ba-2025!"  # another province's system, allowed everywhere
ACCOUNTS = [{"name": "thanh-hoa-portal", "username": USERNAME, "password_hash": password_hash(PASSWORD),
             "source": SOURCE, "provinces": ["38"]},
            {"name": "phu-tho-portal", "username": OTHER, "password_hash": password_hash(OTHER_PASSWORD),
             "source": "urn:motcua:25"}]


@pytest.fixture(scope="module")
def portal(stack):
    settings = namespace(stack)
    intake = service("intake", settings, DOSSIER_INTAKE_DVCQG_ACCOUNTS=json.dumps(ACCOUNTS),
                     DOSSIER_INTAKE_DVCQG_SESSION_SECRET="test-session-secret-" + "x" * 16).start()
    running = Pipeline(settings, intake, [])
    running.add_processing().start()
    yield running
    for process in [running.intake, *running.processing]:
        process.stop()


def login(intake, username=USERNAME, password=PASSWORD) -> httpx.Response:
    return httpx.post(f"{intake.url}/v1/dvcqg/login", json={"username": username, "password": password}, timeout=30)


def sync(intake, service_name, records, session=None, headers=None) -> httpx.Response:
    body = {"session": session, "madonvi": UNIT, "service": service_name, "isUpdating": "False", "data": records}
    return httpx.post(f"{intake.url}/v1/dvcqg", json=body, headers=headers or {}, timeout=60)


def send(intake, records, session) -> None:
    for service_name, record in records:
        answer = sync(intake, service_name, [record], session)
        assert answer.status_code == 200 and answer.json()["error_code"] == "00", answer.text


def view(processing, code) -> dict | None:
    answer = httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR)
    if answer.status_code != 200:
        return None
    found = answer.json()
    # The same steps at the same instants (their ids differ: the portal's derive from the MaHoSo and the step).
    steps = [(step["type"], step["time"]) for step in found.pop("history")]
    return {k: v for k, v in found.items() if k != "dossier_code"} | {"steps": steps}


def test_a_life_as_portal_records_in_any_order_is_the_life_as_cloudevents(portal):
    codes = [f"{UNIT}-250707-{n:04d}" for n in (101, 102, 103)]
    portal.post(cloudevents_life(SOURCE, codes[0]))
    answer = login(portal.intake)
    assert answer.status_code == 200 and answer.json()["error_code"] == 0
    session = answer.json()["session"]
    send(portal.intake, life(codes[1]), session)
    rng = random.Random(24)
    shuffled = life(codes[2]) + [rng.choice(life(codes[2])) for _ in range(3)]
    rng.shuffle(shuffled)
    send(portal.intake, shuffled + [life(codes[2])[0]], session)  # repeated, an older snapshot last

    processing = portal.processing[0]
    expected = wait_until(lambda: (v := view(processing, codes[0])) and v["state"] == "returned" and v, timeout=60)
    for code in codes[1:]:
        wait_until(lambda code=code: view(processing, code) == expected, timeout=60,
                   message=f"{code} as portal records equals the CloudEvents life")
    # Both doors seal the applicant (docs/security.md, finding 6): no phone in clear on the topic.
    written = [r.value for r in asyncio.run(read_topic(portal.settings, portal.settings.topic_events))]
    assert any(b'"dossier.received"' in value for value in written)
    assert not any(b"0912345678" in value for value in written)


def test_logins_sessions_and_keys(portal):
    assert login(portal.intake, password="sai").status_code == 401
    assert login(portal.intake, username="ai-đó").json()["error_code"] == -1
    answer = sync(portal.intake, "DongBoHoSoMC", [snapshot(2, f"{UNIT}-250707-0201")], session="không.hợp-lệ")
    assert (answer.status_code, answer.json()["error_code"]) == (401, "-1")
    by_key = sync(portal.intake, "DongBoHoSoMC", [snapshot(2, f"{UNIT}-250707-0202")],
                  headers={"authorization": f"Bearer {ANY_SOURCE_KEY}"})
    assert (by_key.status_code, by_key.json()["error_code"]) == (200, "00"), by_key.text


def test_bad_records_get_their_own_error_and_the_rest_of_the_batch_goes_in(portal):
    session = login(portal.intake).json()["session"]
    good = snapshot(2, f"{UNIT}-250707-0301")
    records = [good, good, {"TrangThaiHoSo": "2"}, snapshot(2, f"{UNIT}-250707-0302", TrangThaiHoSo="12"),
               snapshot(2, f"{UNIT}-250707-0303", NgayTiepNhan="20250707246100"),
               snapshot(2, f"{UNIT}-250707-0304", DonViXuLy="UBND xã Không Tồn Tại"),
               snapshot(2, f"{UNIT}-250707-0305", ChuHoSo="QUJD" * 1_300_000),  # 5 MB of base64
               snapshot(2, f"{UNIT}-250707-0306", ChuHoSo="Nguyễn Thị 🌸 Ánh ‮ الاسم 名前")]
    answer = sync(portal.intake, "DongBoHoSoMC", records, session)
    assert answer.status_code == 200 and answer.json()["error_code"] == "01", answer.text
    results = answer.json()["results"]
    assert [r["error_code"] for r in results] == ["00", "00", "01", "01", "01", "01", "01", "00"]
    assert [r["errors"][0]["field"] for r in results if r["error_code"] != "00"] == [
        "MaHoSo", "TrangThaiHoSo", "NgayTiepNhan", "DonViXuLy", "ChuHoSo"]
    processing = portal.processing[0]
    wait_until(lambda: view(processing, f"{UNIT}-250707-0306") is not None, timeout=60)
    assert view(processing, f"{UNIT}-250707-0301")["state"] == "processing"
    assert sync(portal.intake, "TraCuuHoSo", [], session).json()["error_code"] == "02"


def look_up(intake, codes, session=None, headers=None) -> httpx.Response:
    return sync(intake, "TraCuuHoSo", codes, session, headers)


def test_a_lookup_shows_the_dossier_and_its_records_that_did_not_apply_to_its_owner_only(portal):
    code, unknown = f"{UNIT}-250707-0401", f"{UNIT}-250707-0499"
    session, other = login(portal.intake).json()["session"], login(portal.intake, OTHER, OTHER_PASSWORD).json()["session"]
    early = {"MaHoSo": code, "NguoiXuLy": "Lê Thị Hạnh", "PhongBanXuLy": "Tư pháp - Hộ tịch",
             "ThoiDiemXuLy": "20250707080000", "NgayBatDau": "20250707080000"}  # before the receipt at 08:30
    send(portal.intake, [("DongBoHoSoMC", snapshot(5, code)), ("CapNhatTienDoHoSoMC", early)], session)
    send(portal.intake, [("DongBoHoSoMC", snapshot(10, code))], other)  # another system's: "00", then refused

    def shown() -> dict | None:
        answer = look_up(portal.intake, [code], session)
        assert answer.status_code == 200, answer.text
        found = answer.json()["results"][0].get("HoSo")
        ids = {r["Id"] for r in found["BanGhiKhongApDung"]} if found else set()
        return found if {f"dvcqg/{code}/transferred/20250707080000", f"dvcqg/{code}/returned/20250709150000"} <= ids \
            else None

    found = wait_until(shown, timeout=60, message="the lookup shows the dead-lettered records")
    assert (found["MaHoSo"], found["TrangThaiHoSo"], found["NgayTiepNhan"], found["MaTTHC"]) == (
        code, "5", "20250707083000", "2.000635")
    assert found["DanhSachHoSoBoSung"] == [{"NgayBoSung": "20250707100000", "NoiDungBoSung": "Thiếu tờ khai có chữ ký"}]
    reasons = {r["Id"]: (r["Nguon"], r["LyDo"]) for r in found["BanGhiKhongApDung"]}
    assert reasons[f"dvcqg/{code}/transferred/20250707080000"] == (
        SOURCE, "dossier.transferred at 2025-07-07T08:00:00+07:00 is before the dossier was received")
    assert reasons[f"dvcqg/{code}/received/20250707083000"][1].startswith("foreign source: urn:motcua:25")
    assert "Phạm" not in json.dumps(found, ensure_ascii=False) and "0912345678" not in json.dumps(found)
    # The same answer by the same system's Bearer key; an unknown code and another system's dossier alike.
    by_key = look_up(portal.intake, [code, unknown], headers={"authorization": f"Bearer {PROVINCE_KEY}"}).json()
    assert by_key["error_code"] == "01" and by_key["results"][0]["HoSo"] == found
    foreign = look_up(portal.intake, [code, unknown], other).json()
    assert (foreign["error_code"], foreign["found"]) == ("01", 0)
    assert [{k: v for k, v in r.items() if k not in ("index", "MaHoSo")} for r in foreign["results"]] == [
        {k: v for k, v in by_key["results"][1].items() if k not in ("index", "MaHoSo")}] * 2
    assert look_up(portal.intake, [code], "không.hợp-lệ").status_code == 401
    assert look_up(portal.intake, [code] * 101, session).json()["error_code"] == "03"
