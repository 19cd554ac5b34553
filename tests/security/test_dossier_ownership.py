"""Finding 1 (high): any intake key could take over any dossier. A key for another system posted a
back-dated receipt for another centre's dossier: it replaced the applicant (a new phone), the real
receipt was dead-lettered, and the next SMS went to the new phone; the same key could withdraw or stop
the dossier. Now a dossier belongs to the source of its first receipt, and intake keys are scoped to
provinces (docs/security.md)."""

import asyncio
import json
import random
from datetime import datetime, timedelta

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.auth import ApiKey, key_hash
from shared.calendar import WorkingCalendar
from shared.dossier import FOREIGN_SOURCE, fold
from shared.events import parse_event
from tests.fixtures.sample import VN, dossier_code, event
from tests.integration.conftest import OPERATOR, read_topic, service, wait_until

CAL = WorkingCalendar.load()
CODE = dossier_code(datetime(2025, 7, 7, tzinfo=VN), sequence=4242)
AT = datetime(2025, 7, 7, 9, tzinfo=VN)
CITIZEN = {"name": "Nguyễn Thị Hoa", "phone": "0912000111", "sms_opt_in": True}
ATTACKER = {"name": "Kẻ Mạo Danh", "phone": "0987000999", "sms_opt_in": True}


def from_source(source: str, type_: str, time: datetime, contributor: bool = False, **data) -> dict:
    sent = event(type_, CODE, time, **data) | {"source": source}
    return sent | ({"intakecontributor": True} if contributor else {})


def folded(*events: dict):
    return fold([parse_event(e) for e in events], CAL)


RECEIPT = from_source("urn:motcua:38", "dossier.received", AT, applicant=CITIZEN)


def test_a_back_dated_receipt_from_another_source_never_replaces_the_applicant():
    forged = from_source("urn:motcua:40", "dossier.received", AT - timedelta(days=1), applicant=ATTACKER)
    result = folded(RECEIPT, forged)
    assert result.dossier.applicant.phone == CITIZEN["phone"] and result.dossier.received_at == AT
    [rejected] = result.rejected
    assert rejected.event.source == "urn:motcua:40" and rejected.reason.startswith(FOREIGN_SOURCE)


def test_another_source_cannot_withdraw_stop_or_text_the_citizen():
    later = AT + timedelta(hours=1)
    for type_ in ("dossier.withdrawn", "dossier.stopped", "dossier.supplement_requested", "dossier.resolved"):
        result = folded(RECEIPT, from_source("urn:motcua:40", type_, later))
        assert result.dossier.state == "processing", type_
        assert [r.reason.split(":")[0] for r in result.rejected] == [FOREIGN_SOURCE], type_


def test_a_contributor_adds_its_steps_but_never_a_receipt():
    paid = from_source("urn:cong-thanh-toan", "dossier.payment_completed", AT + timedelta(hours=2), contributor=True)
    forged = from_source("urn:cong-thanh-toan", "dossier.received", AT - timedelta(days=1), contributor=True,
                         applicant=ATTACKER)
    result = folded(RECEIPT, paid, forged)
    assert result.dossier.payment_method == "online" and result.dossier.applicant.phone == CITIZEN["phone"]
    assert [r.event.type for r in result.rejected] == ["dossier.received"]


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_owners_events_fold_the_same_whatever_else_arrives_and_in_whatever_order(rng: random.Random):
    """Foreign steps mixed in anywhere after the owner's first receipt change nothing."""
    own = [RECEIPT, from_source("urn:motcua:38", "dossier.transferred", AT + timedelta(hours=1)),
           from_source("urn:motcua:38", "dossier.resolved", AT + timedelta(hours=5))]
    foreign = [from_source("urn:motcua:40", t, AT + timedelta(minutes=rng.randrange(-3000, 3000)), applicant=ATTACKER)
               if t == "dossier.received" else from_source("urn:motcua:40", t, AT + timedelta(minutes=30))
               for t in ("dossier.received", "dossier.withdrawn", "dossier.stopped")]
    later = own[1:] + foreign
    rng.shuffle(later)
    assert folded(RECEIPT, *later).dossier == folded(*own).dossier


def intake_keys() -> list[dict]:
    return [k.model_dump() for k in (
        ApiKey(name="thanh-hoa", key_sha256=key_hash("key-38"), sources=["urn:motcua:38"], provinces=["38"]),
        ApiKey(name="phu-tho", key_sha256=key_hash("key-25"), sources=["urn:motcua:25"], provinces=["25"]),
        ApiKey(name="payments", key_sha256=key_hash("key-pay"), sources=["urn:cong-thanh-toan"], provinces=["38"],
               contributes=["dossier.payment_completed"]),
    )]


def post(intake, key: str, *events: dict) -> httpx.Response:
    return httpx.post(f"{intake.url}/v1/events", content=json.dumps(list(events)), timeout=30,
                      headers={"authorization": f"Bearer {key}", "content-type": "application/cloudevents-batch+json"})


def test_on_the_real_pipeline_another_systems_key_takes_nothing_over(pipeline):
    intake = service("intake", pipeline.settings, DOSSIER_INTAKE_API_KEYS=json.dumps(intake_keys())).start()
    processing = pipeline.add_processing().start()
    try:
        assert post(intake, "key-38", RECEIPT).status_code == 202
        # Phú Thọ's key may not receive for a commune of Thanh Hóa (a centre receives within its province).
        forged = from_source("urn:motcua:25", "dossier.received", AT - timedelta(days=1), applicant=ATTACKER)
        refused = post(intake, "key-25", forged)
        assert refused.status_code == 403 and "14923" in refused.text
        # Its own commune, the same dossier code, back-dated; then a withdrawal claiming to be a contributor's
        # (only intake says so): both dead-lettered, not applied.
        elsewhere = forged | {"data": forged["data"] | {"commune_code": "08152"}}
        withdrawn = from_source("urn:motcua:25", "dossier.withdrawn", AT + timedelta(hours=1), contributor=True)
        assert post(intake, "key-25", elsewhere, withdrawn).status_code == 202
        paid = from_source("urn:cong-thanh-toan", "dossier.payment_completed", AT + timedelta(hours=2))
        assert post(intake, "key-pay", paid).status_code == 202

        letters = wait_until(lambda: len(found := asyncio.run(read_topic(pipeline.settings,
                                                                         pipeline.settings.topic_dlq))) == 2 and found,
                             timeout=60, message="the two foreign events dead-lettered")
        assert all(dict(r.headers)["dlq-reason"].decode().startswith(FOREIGN_SOURCE) for r in letters)
        view = wait_until(lambda: len((v := httpx.get(f"{processing.url}/v1/dossiers/{CODE}", headers=OPERATOR)
                                       .json())["history"]) == 2 and v, timeout=30, message="the payment applied")
        assert view["state"] == "processing" and view["applicant"]["phone"] == "09******11"
        assert [h["type"] for h in view["history"]] == ["dossier.received", "dossier.payment_completed"]
        assert "processing_foreign_events_total 2.0" in httpx.get(f"{processing.url}/metrics").text
    finally:
        intake.stop()
