"""Both doors of intake seal a receipt's applicant before publishing (docs/security.md, finding 6):
the CloudEvents path and the portal format's records, whatever else a batch holds."""

import asyncio

import orjson

from services.intake.sealing import sealed_records
from shared.events import Applicant
from shared.personal import DossierKeys, opened_applicant
from tests.fixtures.memory import MemoryDatabase
from tests.fixtures.sample import event

PHONE, NAME = "0912345678", "Nguyễn Văn An"


def test_the_portal_doors_records_carry_the_applicant_sealed_and_the_rest_as_written():
    keys = DossierKeys(MemoryDatabase(), "index secret")
    receipt = event("dossier.received", "000.00.38.H56-250701-0001", applicant={"name": NAME, "phone": PHONE,
                                                                              "sms_opt_in": True})
    step = event("dossier.digitized", "000.00.38.H56-250701-0001")
    records = [(e["subject"], orjson.dumps(e | {"intaketime": "2025-07-01T09:00:00+07:00"})) for e in (receipt, step)]
    sealed = asyncio.run(sealed_records(keys, records))
    assert sealed[1] == records[1] and sealed[0][0] == records[0][0]
    assert PHONE.encode() not in sealed[0][1] and NAME.encode() not in sealed[0][1]
    written = orjson.loads(sealed[0][1])
    assert written["intaketime"] == "2025-07-01T09:00:00+07:00" and written["data"]["applicant"]["sms_opt_in"] is True
    key = asyncio.run(keys.key_of(receipt["subject"]))
    opened = opened_applicant(key, receipt["subject"], Applicant.model_validate(written["data"]["applicant"]))
    assert (opened.name, opened.phone) == (NAME, PHONE)


def test_records_without_a_receipt_are_left_as_they_are():
    records = [("k", orjson.dumps(event("dossier.resolved", "000.00.38.H56-250701-0002")))]
    assert asyncio.run(sealed_records(DossierKeys(MemoryDatabase(), "s"), records)) is records
