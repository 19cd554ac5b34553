"""Notifications on the real Kafka, FerretDB and Kannel (with kannel-extras' fake SMSC)."""

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter
from pymongo import AsyncMongoClient, MongoClient

from tests.fixtures.sample import VN, dossier_code, event
from services.notifications.core import Core
from services.notifications.handlers import on_status
from services.notifications.messages import Message, Move, furthest
from services.notifications.providers import Kannel
from shared.contracts import StatusRecord
from shared.kafka import client_options
from shared.consumer_app import Record
from services.notifications.settings import NotificationsSettings
from services.notifications.store import MessageStore
from services.notifications.templates import Templates
from shared.calendar import WorkingCalendar
from shared.auth import key_hash
from shared.privacy import mask_phone
from tests.integration.conftest import ANY_SOURCE_KEY, SECRETS, STACK_DIR, STACK_ENV, read_topic, service, wait_until

RECORDS = TypeAdapter(StatusRecord)
SMS_LOG = STACK_DIR / "logs" / "kannel-fakesmsc.log"
START = datetime(2026, 3, 2, 9, 0, tzinfo=VN)  # a Monday


def notifications_env(**more: str) -> dict[str, str]:
    return {
        "DOSSIER_NOTIFICATIONS_PROVIDER": "kannel",
        "DOSSIER_NOTIFICATIONS_KANNEL_URL": f"http://127.0.0.1:{STACK_ENV['DOSSIER_KANNEL_SENDSMS_PORT']}/cgi-bin/sendsms",
        "DOSSIER_NOTIFICATIONS_API_KEYS": f'[{{"name": "t", "key_sha256": "{key_hash(ANY_SOURCE_KEY)}", "sources": ["*"]}}]',
        "DOSSIER_NOTIFICATIONS_QUIET_START": "00:00",  # no quiet hours: the tests run at any hour
        "DOSSIER_NOTIFICATIONS_QUIET_END": "00:00",
        "DOSSIER_NOTIFICATIONS_EXPIRE_HOURS": "1000000",  # the lives below are set in the past
        "DOSSIER_NOTIFICATIONS_SEND_INTERVAL_SECONDS": "0.2",
        "DOSSIER_NOTIFICATIONS_BACKOFF_SECONDS": "0.5",
        "DOSSIER_NOTIFICATIONS_BACKOFF_CAP_SECONDS": "2",
    } | more


def start_notifications(pipeline, port: int | None = None, faulty: bool = False, **env: str):
    """Notifications on the pipeline's namespace; `faulty`: the test double that exits after recording a
    sending attempt, before the gateway has the message (tests/fixtures/faulty.py)."""
    process = service("notifications", pipeline.settings, port, **notifications_env(**env))
    process.env["DOSSIER_NOTIFICATIONS_DLR_BASE_URL"] = process.url
    process.module = ["tests.fixtures.faulty", "notifications"] if faulty else []
    return process.start()


def life(code: str, phone: str = "0912345678") -> list[dict]:
    at = lambda hours: START + timedelta(hours=hours)  # noqa: E731
    return [
        event("dossier.received", code, at(0), processing_time={"value": 2, "unit": "working_days"},
              applicant={"name": "Trần Thị Bình", "phone": phone, "sms_opt_in": True}),
        event("dossier.supplement_requested", code, at(1), reason="Thiếu bản sao căn cước"),
        event("dossier.supplement_received", code, at(5)),
        event("dossier.resolved", code, at(24)),
        event("dossier.returned", code, at(26)),
        event("dossier.rated", code, at(27)),
    ]


# The SMS log is the stack's, kept across runs: a run reads only what came after it started.
LOG_START = SMS_LOG.stat().st_size if SMS_LOG.exists() else 0


def received_by_smsc(code: str) -> list[str]:
    with SMS_LOG.open("rb") as log:
        log.seek(LOG_START)
        lines = log.read().decode().splitlines()
    return [line.split("text ", 1)[1] for line in lines if "Got message" in line and code in line]


def messages(notifications, code: str) -> list[dict]:
    answer = httpx.get(f"{notifications.url}/v1/messages", params={"dossier": code},
                       headers={"authorization": f"Bearer {ANY_SOURCE_KEY}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["messages"]


@pytest.fixture
def sms(stack, pipeline):
    stack.ensure("kannel")
    pipeline.add_processing().start()
    return pipeline


def test_a_dossier_life_sends_the_expected_sms_in_order_and_they_are_delivered(sms):
    notifications = start_notifications(sms)
    try:
        code = dossier_code(START, sequence=101)
        sms.post(life(code))
        wait_until(lambda: len(received_by_smsc(code)) == 4, timeout=60, message="four SMS at the SMSC")
        texts = received_by_smsc(code)
        assert texts[0].startswith(f"Ho so {code} da duoc tiep nhan tai TT PVHCC Xa Ba Thuoc. Ngay hen tra ket qua: ")
        assert "can bo sung: Thieu ban sao can cuoc" in texts[1]
        assert "da co ket qua" in texts[2] and "da duoc tra ket qua ngay 03/03/2026" in texts[3]
        assert all(t.isascii() for t in texts)
        delivered = wait_until(lambda: (m := messages(notifications, code)) and all(
            x["status"] == "delivered" for x in m) and m, timeout=30, message="delivery reports")
        assert [m["trigger"] for m in delivered] == ["received", "supplement_requested", "resolved", "returned"]
        assert {m["to"] for m in delivered} == {mask_phone("+84912345678")}
        assert [h["status"] for h in delivered[0]["history"]][0] == "created"
        assert httpx.get(f"{notifications.url}/v1/messages", params={"dossier": code}).status_code == 401

        # The same status events again (a redelivery, a second replica): nothing new is sent.
        statuses = asyncio.run(read_topic(sms.settings, sms.settings.topic_status))
        asyncio.run(republish(sms.settings, statuses))
        metrics = lambda: httpx.get(f"{notifications.url}/metrics").text  # noqa: E731
        wait_until(lambda: f"notifications_status_events_total{{outcome=\"read\"}} {2 * len(statuses)}.0" in metrics(),
                   message="the repeated status events read")
        assert len(received_by_smsc(code)) == 4 and len(messages(notifications, code)) == 4
        assert "84912345678" not in notifications.logs()  # numbers are masked in logs
    finally:
        notifications.stop()


async def republish(settings, records) -> None:
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(settings.topic_status, r.value, key=r.key, headers=list(r.headers))
    finally:
        await producer.stop()


def test_killed_mid_send_the_message_goes_once_after_the_restart(sms):
    crashing = start_notifications(sms, faulty=True)
    code = dossier_code(START, sequence=102)
    sms.post(life(code)[:1])
    wait_until(lambda: crashing.process.poll() is not None, timeout=60, message="the fault exit")
    assert stored(sms, code) == [("sending", ["sending"])] and received_by_smsc(code) == []
    restarted = start_notifications(sms, DOSSIER_NOTIFICATIONS_SENDING_TIMEOUT_SECONDS="1")
    try:
        wait_until(lambda: messages(restarted, code)[0]["status"] == "delivered", timeout=60, message="delivered")
        assert len(received_by_smsc(code)) == 1
    finally:
        restarted.stop()


def stored(pipeline, code: str) -> list[tuple[str, list[str]]]:
    """(status, the statuses its moves recorded) of each message of a dossier, read from MongoDB."""
    with MongoClient(pipeline.settings.mongo_url) as client:
        db = client[pipeline.settings.mongo_database]
        out = []
        for message in db["notifications_messages"].find({"dossier": code}):
            moves = [Move.from_doc(m) for m in db["notifications_moves"].find({"message": message["_id"]})]
            out.append((furthest(Message.from_doc(message).status, moves), [m.status for m in moves]))
        return out


def test_with_kannel_down_messages_wait_and_go_when_it_returns(stack, sms):
    notifications = start_notifications(sms)
    try:
        stack.run("kannel", "stop")
        code = dossier_code(START, sequence=103)
        sms.post(life(code)[:1])
        wait_until(lambda: (m := stored(sms, code)) and "refused" in m[0][1], timeout=60, message="a refused attempt")
        assert stored(sms, code)[0][0] == "sending"
        stack.run("kannel", "start")
        wait_until(lambda: messages(notifications, code)[0]["status"] == "delivered", timeout=60, message="delivered")
        wait_until(lambda: received_by_smsc(code), timeout=10, message="the SMS in the fake SMSC's log")
        time.sleep(2)
        assert len(received_by_smsc(code)) == 1
    finally:
        notifications.stop()
        if not stack.running("kannel"):
            stack.run("kannel", "start")


class Aggregator(BaseHTTPRequestHandler):
    """An SMS aggregator's REST API, as the generic HTTP provider talks to it."""

    received: list[tuple[dict, dict]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Aggregator.received.append((dict(self.headers), body))
        answer = json.dumps({"id": f"agg-{len(Aggregator.received)}", "status": "ACCEPTED"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


def test_the_generic_http_provider_posts_the_mapped_json_and_takes_its_reports(pipeline):
    pipeline.add_processing().start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Aggregator)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    notifications = start_notifications(
        pipeline, DOSSIER_NOTIFICATIONS_PROVIDER="http",
        DOSSIER_NOTIFICATIONS_HTTP_URL=f"http://127.0.0.1:{server.server_port}/v2/sms",
        DOSSIER_NOTIFICATIONS_HTTP_AUTH_HEADER="Authorization: Bearer aggregator-token",
        DOSSIER_NOTIFICATIONS_HTTP_BODY='{"phone": "{to}", "brand": "{sender}", "message": "{text}", "ref": "{id}", '
                                        '"callback": "{dlr_url}"}',
    )
    try:
        code = dossier_code(START, sequence=104)
        pipeline.post(life(code)[:1])
        wait_until(lambda: any(code in body["message"] for _, body in Aggregator.received), timeout=60,
                   message="the aggregator called")
        headers, body = next((h, b) for h, b in Aggregator.received if code in b["message"])
        assert headers["Authorization"] == "Bearer aggregator-token"
        assert (body["phone"], body["brand"]) == ("+84912345678", "UBND-XA")
        [message] = wait_until(lambda: [m for m in messages(notifications, code) if m["status"] == "sent"],
                               message="sent")
        report = {"ref": body["ref"], "status": "DELIVERED"}
        for _ in range(2):  # a repeated report changes nothing
            answer = httpx.post(body["callback"], json=report)  # the message's own signed report URL
            assert answer.status_code == 200
        assert messages(notifications, code)[0]["status"] == "delivered"
        assert httpx.post(httpx.URL(body["callback"]).copy_set_param("token", "forged"), json=report).status_code == 403
        assert httpx.post(body["callback"], json={"ref": "0" * 32, "status": "DELIVERED"}).status_code == 403
    finally:
        notifications.stop()
        server.shutdown()


def test_bodies_and_numbers_are_purged_after_the_retention_and_statuses_stay(sms):
    pipeline = sms
    # A retention of 8.6 s: a message the sender has not yet taken up is not pending yet, and with 0.86 s a loaded
    # machine purged one before it was sent (fresh-clone CI, 2026-12-07). A real retention is 30 days.
    notifications = start_notifications(pipeline, DOSSIER_NOTIFICATIONS_RETENTION_DAYS="0.0001",
                                        DOSSIER_NOTIFICATIONS_PURGE_INTERVAL_SECONDS="0.5")
    try:
        code = dossier_code(START, sequence=105)
        pipeline.post(life(code)[:1])
        [message] = wait_until(lambda: [m for m in messages(notifications, code) if m["to"] is None], timeout=60,
                               message="purged")
        assert message["text"] is None and message["status"] in ("sent", "delivered")
    finally:
        notifications.stop()


def run_notifier(settings, events: list[dict], instants: list[datetime], **config) -> list[int]:
    """The notifications core on the real FerretDB and Kannel, its clock injected: handles `events` at
    the first instant, then tries to send at each instant; returns how many went each time."""
    options = {"notifications_provider": "kannel", "notifications_expire_hours": 1e6,
               "notifications_kannel_url": notifications_env()["DOSSIER_NOTIFICATIONS_KANNEL_URL"]} | config
    config = NotificationsSettings(environment="local", mongo_url=settings.mongo_url,
                                   mongo_database=settings.mongo_database, **options,
                                   notifications_kannel_password=(SECRETS / "dossier_notifications_kannel_password").read_text())
    clock = {"now": instants[0]}

    async def run() -> list[int]:
        mongo = AsyncMongoClient(settings.mongo_url)
        core = Core.build(config, MessageStore(mongo, settings.mongo_database), Kannel(config), Templates.load(),
                          WorkingCalendar.load(), CollectorRegistry(), clock=lambda: clock["now"])
        try:
            await on_status([Record(RECORDS.validate_python(e), orjson.dumps(e), e["subject"].encode(), "t", 0, n, 0)
                             for n, e in enumerate(events)], core)
            sent = []
            for instant in instants:
                clock["now"] = instant
                sent.append(await core.sender.send_due())
            return sent
        finally:
            await core.provider.close()
            await mongo.close()

    return asyncio.run(run())


def test_a_night_time_change_is_sent_at_seven_in_the_morning(stack, settings):
    stack.ensure("kannel")
    code = dossier_code(START, sequence=106)
    night = datetime(2026, 3, 2, 22, 30, tzinfo=VN)
    instants = [night, datetime(2026, 3, 3, 6, 59, tzinfo=VN), datetime(2026, 3, 3, 7, 0, tzinfo=VN)]
    assert run_notifier(settings, [status_changed(code, night)], instants) == [0, 0, 1]  # quiet 21:00–07:00
    wait_until(lambda: len(received_by_smsc(code)) == 1, message="the SMS at the SMSC")


def test_over_the_daily_limit_a_message_waits_for_the_next_morning(stack, settings):
    stack.ensure("kannel")
    noon = datetime(2026, 3, 2, 12, 0, tzinfo=VN)
    codes = [dossier_code(START, sequence=n) for n in (107, 108)]  # the same citizen's two dossiers
    instants = [noon, noon + timedelta(hours=5), datetime(2026, 3, 3, 7, 0, tzinfo=VN)]
    # A number of its own: the daily limit is counted in the database, across replicas and tests.
    assert run_notifier(settings, [status_changed(c, noon, phone="0912000107") for c in codes], instants,
                        notifications_daily_limit=1) == [1, 0, 1]


def status_changed(code: str, at: datetime, phone: str = "0912345678") -> dict:
    new = {"state": "processing", "due_at": "2026-03-04T17:00:00+07:00", "timeliness": None,
           "appointment_at": "2026-03-04T17:00:00+07:00", "open_state": "within_deadline"}
    return {"specversion": "1.0", "id": f"night-{code}", "source": "urn:dossier-tracker:processing",
            "type": "dossier.status_changed", "subject": code, "time": at.isoformat(),
            "data": {"dossier_code": code, "commune_code": "14923", "sector": "HT", "procedure_code": "1.001193",
                     "channel": "direct", "online_level": None, "received_at": at.isoformat(), "ended_at": None,
                     "withdrawn_at": None, "old": None, "new": new, "missing": None, "events": 1, "timeline": [],
                     "cause": {"id": "r", "type": "dossier.received"},
                     "applicant": {"phone": phone, "sms_opt_in": True}}}


def test_a_status_event_delivered_three_times_in_one_batch_sends_one_sms(sms):
    code = dossier_code(START, sequence=104)
    sms.post(life(code)[:1])
    [announced] = wait_until(lambda: asyncio.run(read_topic(sms.settings, sms.settings.topic_status)),
                             message="the receipt's status event")

    async def again() -> None:  # as processing does when it publishes its outbox again after a failure
        producer = AIOKafkaProducer(**client_options(sms.settings))
        await producer.start()
        try:
            for _ in range(2):
                await producer.send_and_wait(sms.settings.topic_status, announced.value, key=announced.key,
                                             headers=list(announced.headers))
        finally:
            await producer.stop()

    asyncio.run(again())
    notifications = start_notifications(sms)  # reads the three copies from the start, in one batch
    try:
        wait_until(lambda: [m["status"] for m in messages(notifications, code)] == ["delivered"], timeout=60,
                   message="one message, delivered")
        time.sleep(2)
        assert len(received_by_smsc(code)) == 1
    finally:
        notifications.stop()
