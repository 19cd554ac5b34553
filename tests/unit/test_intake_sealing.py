"""Both doors of intake seal a receipt's applicant before publishing (docs/security.md, finding 6):
the CloudEvents path and the portal format's records, whatever else a batch holds."""

import asyncio

import httpx
import orjson
import pytest
from pymongo.errors import ServerSelectionTimeoutError

from services.intake import app as intake_app
from services.intake.sealing import KeysUnavailable, dossier_keys, sealed_receipts, sealed_records
from services.intake.settings import IntakeSettings
from shared.auth import ApiKey, key_hash
from shared.events import Applicant
from shared.personal import DossierKeys, opened_applicant, unseal
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


@pytest.mark.parametrize("door", ["cloudevents", "portal"])
def test_a_receipt_sent_again_after_its_key_was_erased_is_published_without_its_applicant(door):
    """Retention or the citizen's erasure took the dossier's key: its receipt sent again (a portal's snapshot)
    must not bring the name and phone back under a new key; whether the citizen wants SMS stays."""
    database = MemoryDatabase()
    keys = DossierKeys(database, "index secret")
    code = "000.00.38.H56-250701-0001"
    receipt = event("dossier.received", code, applicant={"name": NAME, "phone": PHONE, "sms_opt_in": True})
    asyncio.run(sealed_receipts(keys, [receipt]))
    asyncio.run(DossierKeys(database, "index secret").erase([code]))  # processing's retention
    if door == "portal":
        [(_, written)] = asyncio.run(sealed_records(keys, [(code, orjson.dumps(receipt))]))
        again = orjson.loads(written)
    else:
        [again] = asyncio.run(sealed_receipts(keys, [receipt]))
    assert again["data"]["applicant"] == {"sms_opt_in": True} and again["data"] | {"applicant": None} == receipt[
        "data"] | {"applicant": None}
    assert asyncio.run(keys.key_of(code)) is None


def test_records_without_a_receipt_are_left_as_they_are():
    records = [("k", orjson.dumps(event("dossier.resolved", "000.00.38.H56-250701-0002")))]
    assert asyncio.run(sealed_records(DossierKeys(MemoryDatabase(), "s"), records)) is records


class AwayCollection:
    """A collection whose database cannot be reached."""

    def __getattr__(self, _name: str):
        async def away(*_args, **_kwargs):
            raise ServerSelectionTimeoutError("mongodb unreachable")
        return away

    def find(self, *_args, **_kwargs):
        """A cursor, which fails once read (as PyMongo's)."""
        async def away():
            raise ServerSelectionTimeoutError("mongodb unreachable")
            yield
        return away()


class AwayDatabase:
    def __getitem__(self, _name: str) -> AwayCollection:
        return AwayCollection()


def test_with_the_keys_unreachable_a_receipt_gets_503_and_nothing_is_published():
    published: list = []

    class Recorder:
        def __init__(self, _settings):
            pass

        async def publish(self, records):
            published.extend(records)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(intake_app, "EventPublisher", Recorder)
        patch.setattr(intake_app, "dossier_keys", lambda _database, _secret: DossierKeys(AwayDatabase(), "s"))
        app = intake_app.create_app(IntakeSettings(environment="local", intake_api_keys=[
            ApiKey(name="any", key_sha256=key_hash("k" * 32), sources=["*"])]))

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            return await client.post("/v1/events", content=orjson.dumps(event("dossier.received")),
                                     headers={"authorization": "Bearer " + "k" * 32,
                                              "content-type": "application/cloudevents+json"})

    answer = asyncio.run(post())
    assert (answer.status_code, answer.headers.get("retry-after")) == (503, "5") and published == []
    with pytest.raises(KeysUnavailable):
        asyncio.run(sealed_receipts(DossierKeys(AwayDatabase(), "s"), [event("dossier.received")]))


def test_a_receipt_whose_key_intake_holds_is_sealed_while_the_keys_are_unreachable():
    """Intake's keys are kept for a while (services/intake/sealing.py): a receipt sent again needs no read."""
    database = MemoryDatabase()
    keys = dossier_keys(database, "s")
    receipt = event("dossier.received", "000.00.38.H56-250701-0001", applicant={"name": NAME, "phone": PHONE})
    first = asyncio.run(sealed_receipts(keys, [receipt]))
    keys._keys = AwayCollection()  # MongoDB gone: the index and the keys both away
    keys._index.collection = AwayCollection()
    again = asyncio.run(sealed_receipts(keys, [receipt]))
    key = database["dossier_keys"].docs[receipt["subject"]]["key"]
    assert [unseal(bytes(key), receipt["subject"], e["data"]["applicant"]["sealed"]) for e in (*first, *again)] \
        == [{"name": NAME, "phone": PHONE}] * 2
    with pytest.raises(KeysUnavailable):  # a dossier it does not hold: 503
        asyncio.run(sealed_receipts(keys, [event("dossier.received", "000.00.38.H56-250701-0002",
                                                 applicant={"name": NAME, "phone": PHONE})]))
