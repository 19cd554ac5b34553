"""Issue 23, findings 4 and 5: the gateway's callbacks to notifications.

4. SMS replies (MO, `GET /v1/mo`) take a non-empty shared secret whatever the provider, and the
   per-number reply limit counts the sender only once the call is authenticated.
5. Delivery reports (`GET /v1/dlr`, `POST /v1/dlr/http`) carry a signature of their own message;
   a report never ends a message that no gateway was given.

The service runs in-process (httpx's ASGI transport, no lifespan: no Kafka), its MongoDB replaced by
dict-backed collections under the real `MessageStore` (tests/fixtures/sms.py).
"""

import asyncio
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from pydantic import TypeAdapter, ValidationError
from pymongo.errors import AutoReconnect

from services.notifications import app as notifications_app
from services.notifications import providers
from services.notifications.core import Core
from services.notifications.handlers import on_status
from services.notifications.messages import Body, Message, MessageStatus, furthest
from services.notifications.providers import dlr_token, dlr_token_ok
from services.notifications.replies import NEUTRAL
from services.notifications.settings import NotificationsSettings
from shared.contracts import StatusRecord
from shared.consumer_app import Record
from tests.fixtures.gateway import Asked, recording_gateway
from tests.fixtures.sample import VN, dossier_code
from tests.fixtures.sms import Gateway, MemoryMongo, memory_store

DLR_SECRET = "dlr-key-for-the-security-tests"
MO_SECRET = "mo-token-for-the-security-tests"
CITIZEN = "0912345678"


def notifications_settings(**values: Any) -> NotificationsSettings:
    """The local stack's settings, pointing at nothing that runs: nothing here reaches Kafka or MongoDB."""
    return NotificationsSettings(**{
        "environment": "local",
        "kafka_bootstrap_servers": "127.0.0.1:9",
        "mongo_url": "mongodb://127.0.0.1:9",
        "notifications_provider": "http",
        "notifications_http_url": "http://127.0.0.1:9/sms",
        "notifications_dlr_secret": DLR_SECRET,
        "notifications_mo_secret": MO_SECRET,
        "lookup_secret": "lookup-key-for-the-security-tests",
        "notifications_quiet_start": "00:00",  # no quiet hours: the tests run at any hour
        "notifications_quiet_end": "00:00",
        "notifications_expire_hours": 1e6,
    } | values)


class Notifications:
    """Notifications built by its own `create_app` (the real routes and core), on dict collections
    and a gateway that keeps what it is handed (tests/fixtures/sms.py), driven in-process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **values: Any):
        self.settings = notifications_settings(**values)
        self.mongo = MemoryMongo()
        self.gateway = Gateway()
        built: list[Core] = []
        build = notifications_app.build

        def kept(settings: NotificationsSettings) -> Any:
            runtime, core = build(settings)
            built.append(core)
            return runtime, core

        monkeypatch.setattr(notifications_app, "MessageStore",
                            lambda client, database, number_key="": memory_store(self.mongo, number_key))
        monkeypatch.setattr(notifications_app, "provider", lambda settings: self.gateway)
        monkeypatch.setattr(notifications_app, "build", kept)
        self.app = notifications_app.create_app(self.settings)
        [self.core] = built

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://notifications") as c:
            return await c.request(method, path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self.call(method, path, **kwargs))

    def mo(self, sender: str, text: str = "xin chao", **token: str) -> httpx.Response:
        return self.request("GET", "/v1/mo", params={"from": sender, "text": text, **token})

    def run(self, work: Any) -> Any:
        return asyncio.run(work)

    def receipt(self, sequence: int) -> str:
        """A dossier received now, its citizen opted in: one message decided and queued; its id."""
        code = dossier_code(datetime.now(VN), sequence=sequence)
        self.run(on_status([received(code)], self.core))
        [message_id] = [m for m in self.mongo.collection("notifications_messages").docs]
        return message_id

    def report_delivered_on_send(self, message_id: str) -> None:
        """The gateway reports the message delivered at once, before our own `sent` is written."""

        async def report_at_once(message: Message) -> None:
            answer = await self.call("POST", "/v1/dlr/http", params={"id": message_id,
                                                                     "token": dlr_token(DLR_SECRET, message_id)},
                                     json={"ref": message_id, "status": "DELIVERED"})
            assert answer.json() == {"moved": True}

        self.gateway.on_send = report_at_once

    def status_of(self, message_id: str) -> MessageStatus:
        async def read() -> MessageStatus:
            store = self.core.store
            return furthest((await store.message(message_id)).status, await store.moves_of(message_id))
        return self.run(read())

    def send_due(self) -> int:
        return self.run(self.core.sender.send_due())

    def still_to_send(self, message_id: str) -> bool:
        return message_id in self.mongo.collection("notifications_pending").docs

    def kannel_report(self, message_id: str, kind: int = 1, **params: str) -> httpx.Response:
        return self.request("GET", "/v1/dlr", params={"id": message_id, "type": kind, **params})

    def http_report(self, message_id: str, report_status: str = "DELIVERED", **params: str) -> httpx.Response:
        return self.request("POST", "/v1/dlr/http", params=params,
                            json={"ref": message_id, "status": report_status})


def received(code: str) -> Record[StatusRecord]:
    at = datetime.now(VN).replace(microsecond=0)
    due = (at + timedelta(days=3)).isoformat()
    event = {"specversion": "1.0", "id": f"status-{code}", "source": "urn:dossier-tracker:processing",
             "type": "dossier.status_changed", "subject": code, "time": at.isoformat(),
             "data": {"dossier_code": code, "commune_code": "14923", "sector": "HT", "procedure_code": "1.001193",
                      "channel": "direct", "online_level": None, "received_at": at.isoformat(), "ended_at": None,
                      "withdrawn_at": None, "old": None, "missing": None, "events": 1, "timeline": [],
                      "new": {"state": "processing", "due_at": due, "appointment_at": due, "timeliness": None,
                              "open_state": "within_deadline"},
                      "cause": {"id": f"received-{code}", "type": "dossier.received"},
                      "applicant": {"phone": CITIZEN, "sms_opt_in": True}}}
    return Record(TypeAdapter(StatusRecord).validate_python(event), orjson.dumps(event), code.encode(),
                  "dossier-status", 0, 0, 0)


# -- finding 4: SMS replies -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["kannel", "http", "log"])
def test_outside_the_local_stack_sms_replies_need_their_secret_whatever_the_provider(provider):
    with pytest.raises(ValidationError, match="DOSSIER_NOTIFICATIONS_MO_SECRET"):
        NotificationsSettings(environment="production", notifications_provider=provider,
                              notifications_dlr_secret="a-real-dlr-key-0123", lookup_secret="a-real-lookup-0123",
                              notifications_kannel_password="a-real-password-0123", notifications_mo_secret="")


@pytest.mark.parametrize("provider", ["http", "log"])
@pytest.mark.parametrize("token", [{}, {"token": ""}, {"token": "guessed"}])
def test_an_sms_reply_without_the_secret_is_refused_whatever_the_provider(monkeypatch, provider, token):
    notifications = Notifications(monkeypatch, notifications_provider=provider)
    assert notifications.mo(CITIZEN, **token).status_code == 401
    assert notifications.mo(CITIZEN, token=MO_SECRET).text == NEUTRAL  # the gateway, with the secret, is answered


@pytest.mark.parametrize("provider", ["kannel", "http", "log"])
@pytest.mark.parametrize("token", [{}, {"token": ""}, {"token": "anything"}])
def test_with_no_secret_configured_every_sms_reply_is_refused_even_locally(monkeypatch, provider, token):
    notifications = Notifications(monkeypatch, notifications_provider=provider, notifications_mo_secret="",
                                  notifications_kannel_password="kannel")
    assert notifications.mo(CITIZEN, **token).status_code == 401


def test_the_reply_limit_counts_the_authenticated_sender_whatever_the_number_looks_like(monkeypatch):
    notifications = Notifications(monkeypatch, notifications_mo_per_hour=5)
    # Calls without the secret naming the citizen's number are refused and spend none of its replies.
    for _ in range(10):
        assert notifications.mo(CITIZEN, token="forged").status_code == 401
    # One number, five ways of writing it: one count.
    for written in ("0912345678", "+84912345678", "84912345678", "+84 912 345 678", "0912.345.678"):
        answer = notifications.mo(written, token=MO_SECRET)
        assert (answer.status_code, answer.text) == (200, NEUTRAL)
    assert notifications.mo("0912345678", token=MO_SECRET).text == ""  # over the limit: no reply
    assert notifications.mo("0988000111", token=MO_SECRET).text == NEUTRAL  # another number keeps its own


# -- finding 5: delivery reports ---------------------------------------------------------------------


def test_an_empty_key_signs_no_delivery_report():
    assert not dlr_token_ok("", "a" * 32, dlr_token("", "a" * 32))
    assert dlr_token_ok(DLR_SECRET, "a" * 32, dlr_token(DLR_SECRET, "a" * 32))


def handed_urls(provider_name: str, message_ids: list[str]) -> list[str]:
    """The delivery-report URL each message went to the gateway with (Kannel's dlr-url, the HTTP body's
    `{dlr_url}`), read off the requests the real provider makes to a gateway that records them."""

    async def send_all() -> list[Asked]:
        async with recording_gateway(200, {"id": "agg-1"}) as gateway:
            settings = notifications_settings(
                notifications_provider=provider_name, notifications_kannel_url=f"{gateway.url}/cgi-bin/sendsms",
                notifications_http_url=f"{gateway.url}/sms",
                notifications_http_body={"to": "{to}", "text": "{text}", "ref": "{id}", "callback": "{dlr_url}"})
            sender = providers.provider(settings)
            for i in message_ids:
                message = Message(i, "step", "000.00.38.H56-250701-0001", "14923", "received", datetime.now(VN),
                                  datetime.now(VN), provider_name, coding="gsm7", parts=1)
                await sender.send(message, Body(i, "+84912345678", "x", datetime.now(VN)), "UBND-XA")
            await sender.close()
            return gateway.asked

    seen = asyncio.run(send_all())
    if provider_name == "kannel":
        return [r.query["dlr-url"] for r in seen]
    return [orjson.loads(r.body)["callback"] for r in seen]


@pytest.mark.parametrize("provider_name, path", [("kannel", "/v1/dlr"), ("http", "/v1/dlr/http")])
def test_each_message_goes_out_with_a_report_url_signed_for_it_alone(provider_name, path):
    ids = ["1" * 32, "2" * 32]
    urls = handed_urls(provider_name, ids)
    tokens = []
    for message_id, url in zip(ids, urls, strict=True):
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert parts.path == path and query["id"] == [message_id]
        tokens.append(query["token"][0])
        assert dlr_token_ok(DLR_SECRET, message_id, query["token"][0])
    assert tokens[0] != tokens[1]
    assert not dlr_token_ok(DLR_SECRET, ids[1], tokens[0])  # one message's URL reports no other


def test_a_forged_delivery_report_changes_nothing_and_the_message_is_still_sent(monkeypatch):
    notifications = Notifications(monkeypatch)
    message_id = notifications.receipt(sequence=501)
    other = "f" * 32
    forged = [
        notifications.http_report(message_id),  # no signature
        notifications.http_report(message_id, id=message_id, token="0" * 24),
        notifications.http_report(message_id, token=dlr_token(DLR_SECRET, "http")),  # the token all messages shared
        notifications.http_report(message_id, id=message_id, token=dlr_token(DLR_SECRET, other)),
        notifications.http_report(message_id, id=other, token=dlr_token(DLR_SECRET, other)),  # another's URL
        notifications.kannel_report(message_id),
        notifications.kannel_report(message_id, token=dlr_token("", message_id)),
        notifications.kannel_report(message_id, token=dlr_token(DLR_SECRET, other)),
    ]
    assert [r.status_code for r in forged] == [403] * len(forged)
    assert notifications.status_of(message_id) == "created" and notifications.still_to_send(message_id)
    assert notifications.send_due() == 1
    assert [m.id for m in notifications.gateway.given] == [message_id]


@pytest.mark.parametrize("route", ["kannel", "http"])
def test_a_signed_report_for_a_message_not_sent_yet_never_takes_it_off_the_queue(monkeypatch, route):
    notifications = Notifications(monkeypatch)
    message_id = notifications.receipt(sequence=502)
    token = dlr_token(DLR_SECRET, message_id)
    early = (notifications.kannel_report(message_id, token=token) if route == "kannel"
             else notifications.http_report(message_id, id=message_id, token=token))
    assert (early.status_code, early.json()) == (200, {"moved": False})
    assert notifications.status_of(message_id) == "created" and notifications.still_to_send(message_id)
    assert 'notifications_reports_ignored_total{reason="not_sent"} 1.0' in notifications.request("GET", "/metrics").text

    assert notifications.send_due() == 1  # still sent
    assert [m.id for m in notifications.gateway.given] == [message_id]
    assert notifications.status_of(message_id) == "sent" and not notifications.still_to_send(message_id)
    # Once sent, its report is taken; statuses only move forward.
    assert notifications.http_report(message_id, id=message_id, token=token).json() == {"moved": True}
    assert notifications.http_report(message_id, "ACCEPTED", id=message_id, token=token).json() == {"moved": False}
    assert notifications.status_of(message_id) == "delivered"


def test_a_report_for_a_message_the_gateway_refused_never_takes_it_off_the_queue(monkeypatch):
    notifications = Notifications(monkeypatch, notifications_backoff_seconds=0)
    message_id = notifications.receipt(sequence=503)
    notifications.gateway.refuse = 1
    assert notifications.send_due() == 0  # refused: tried again after the backoff
    assert notifications.status_of(message_id) == "sending"
    report = notifications.http_report(message_id, id=message_id, token=dlr_token(DLR_SECRET, message_id))
    assert report.json() == {"moved": False} and notifications.still_to_send(message_id)
    assert notifications.send_due() == 1
    assert [m.id for m in notifications.gateway.given] == [message_id]


def test_a_genuine_report_that_outruns_our_own_sent_record_still_counts(monkeypatch):
    """A fast gateway reports before `sent` is written: the message was handed over, so its report
    is recorded, and the message is neither lost nor sent twice."""
    notifications = Notifications(monkeypatch)
    message_id = notifications.receipt(sequence=504)
    notifications.report_delivered_on_send(message_id)
    assert notifications.send_due() == 1
    assert notifications.status_of(message_id) == "delivered" and not notifications.still_to_send(message_id)
    assert len(notifications.gateway.given) == 1


def test_a_report_still_counts_after_the_database_refused_an_earlier_attempts_record(monkeypatch):
    """FerretDB restarted while a message was being sent: its first attempt's record failed. The next
    attempt is recorded as the first, so the gateway's report on it is taken (the fault suite saw it
    ignored: the attempts read up to the first missing one)."""
    notifications = Notifications(monkeypatch)
    message_id = notifications.receipt(sequence=505)
    moves = notifications.mongo.collection("notifications_moves")
    insert, refusals = moves.insert_many, [AutoReconnect("connection refused")]

    async def refused_once(docs: list[dict[str, Any]], ordered: bool = True) -> None:
        if refusals and any(doc["status"] == "sending" for doc in docs):  # the attempts, written together
            raise refusals.pop()
        await insert(docs, ordered)

    moves.insert_many = refused_once
    assert notifications.send_due() == 0 and notifications.gateway.given == []
    later = notifications.core.clock() + timedelta(seconds=2)
    notifications.core.sender.clock = lambda: later  # tried again a second after the database came back
    notifications.report_delivered_on_send(message_id)
    assert notifications.send_due() == 1
    assert notifications.status_of(message_id) == "delivered" and len(notifications.gateway.given) == 1
