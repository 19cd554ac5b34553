"""services/intake/portal.py without Kafka: sessions, per-record results, the batch's bad records (docs/dvcqg.md)."""

import time

import orjson

from services.intake.portal import ALL_IN, SOME_FAILED, Sender, Sessions, map_batch
from shared.auth import ApiKey, PortalAccount, key_hash, password_hash
from tests.fixtures.dvcqg import PROGRESS, UNIT, snapshot
from tests.unit.test_dvcqg import ARRIVED, REF

ACCOUNT = PortalAccount(name="thanh-hoa", username="motcua38", password_hash=password_hash("Mật-khẩu-38", iterations=1000),
                        source="urn:motcua:38", provinces=["38"])
SENDER = Sender.of_account(ACCOUNT)


def run(records, service="DongBoHoSoMC", sender=SENDER):
    return map_batch({"service": service, "madonvi": UNIT, "data": records}, sender, REF, ARRIVED.isoformat(), 1 << 20)


def test_a_session_names_its_account_until_it_expires_or_the_password_changes():
    now = [1_000_000.0]
    sessions = Sessions(b"k" * 32, 3600, lambda: now[0])
    session = sessions.issue(ACCOUNT)
    assert sessions.account(session, [ACCOUNT]) == ACCOUNT
    assert sessions.account(session + "x", [ACCOUNT]) is None
    assert Sessions(b"other" * 8, 3600, lambda: now[0]).account(session, [ACCOUNT]) is None
    changed = ACCOUNT.model_copy(update={"password_hash": password_hash("khác", iterations=1000)})
    assert sessions.account(session, [changed]) is None
    now[0] += 3601
    assert sessions.account(session, [ACCOUNT]) is None
    assert sessions.account(12, [ACCOUNT]) is None and sessions.account("a.b", [ACCOUNT]) is None


def test_each_record_has_its_result_and_the_rest_of_the_batch_goes_in():
    bad_date = snapshot(2, NgayTiepNhan="20250231083000")
    results, records = run([snapshot(2), {"TrangThaiHoSo": "2"}, bad_date, snapshot(99), "x", snapshot(10)])
    assert [r["error_code"] for r in results] == [ALL_IN, SOME_FAILED, SOME_FAILED, SOME_FAILED, SOME_FAILED, ALL_IN]
    assert results[1]["errors"][0] == {"field": "MaHoSo", "message": "bắt buộc, không được để trống",
                                       "message_en": "is required and may not be empty"}
    assert {e["field"] for e in results[2]["errors"]} == {"NgayTiepNhan"}
    # The second snapshot's steps the first proved already are written once.
    written = [orjson.loads(value) for _, value in records]
    assert len(written) == len({e["id"] for e in written}) == 9
    assert all(e["source"] == "urn:motcua:38" and "intaketime" in e for e in written)


def test_a_commune_out_of_the_accounts_scope_is_an_error_for_its_record():
    phu_tho = Sender.of_account(ACCOUNT.model_copy(update={"provinces": ["25"]}))
    [result], records = run([snapshot(2)], sender=phu_tho)
    assert (result["error_code"], result["errors"][0]["field"], records) == (SOME_FAILED, "DonViXuLy", [])


def test_a_bearer_keys_system_is_the_source():
    key = ApiKey(name="vnpt-igate", key_sha256=key_hash("k"), sources=["urn:motcua:25"])
    assert Sender.of_key(key).source == "urn:motcua:25"
    assert Sender.of_key(key.model_copy(update={"sources": ["*"]})).source == "urn:dvcqg:vnpt-igate"


def test_progress_records_and_a_batch_of_ten_thousand():
    [result], records = run([PROGRESS], "CapNhatTienDoHoSoMC")
    assert result["error_code"] == ALL_IN and len(records) == 1
    batch = [snapshot(10, code=f"{UNIT}-250707-{n:04d}") for n in range(10_000)]
    started = time.perf_counter()
    results, records = run(batch)
    assert all(r["error_code"] == ALL_IN for r in results) and len(records) == 9 * 10_000
    assert time.perf_counter() - started < 60
