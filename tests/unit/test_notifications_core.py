"""The notifications core without Kafka, FerretDB or Kannel (issue 22, item 7): the decider, the
sender, the delivery-report reader and the purge on the real `MessageStore` over dicts, a gateway
that keeps what it is handed (tests/fixtures/sms.py), and a clock the test moves."""

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter
from pymongo.errors import AutoReconnect

from services.notifications.core import Core
from services.notifications.handlers import on_status
from services.notifications.messages import Body, Message, MessageStatus, Move, furthest
from services.notifications.settings import NotificationsSettings
from services.notifications.sender import BATCH
from services.notifications.templates import Templates
from shared.calendar import WorkingCalendar
from shared.contracts import StatusRecord
from shared.consumer_app import Record
from shared.mongo import Chain
from tests.fixtures.sample import VN, dossier_code
from tests.fixtures.sms import Gateway, MemoryMongo, memory_store

CAL = WorkingCalendar.load()
TEMPLATES = Templates.load()
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=VN)  # a Monday
CITIZEN = "0912345678"
PROCESSING = {"state": "processing", "due_at": "2026-03-04T17:00:00+07:00", "timeliness": None,
              "appointment_at": "2026-03-04T17:00:00+07:00", "open_state": "within_deadline"}


class Now:
    """The clock the core reads, moved by the test."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def as_records(*events: dict) -> list[Record]:
    return [Record(TypeAdapter(StatusRecord).validate_python(e), orjson.dumps(e), e["subject"].encode(),
                   "dossier-status", 0, n, 0) for n, e in enumerate(events)]


class Notifications:
    """One replica's core on a shared in-memory database."""

    def __init__(self, mongo: MemoryMongo | None = None, at: datetime = NOON, **values: Any):
        self.settings = NotificationsSettings(**{"environment": "local", "notifications_provider": "log",
                                                 "notifications_backoff_seconds": 5} | values)
        self.mongo = mongo or MemoryMongo()
        self.gateway = Gateway()
        self.now = Now(at)
        self.core = Core.build(self.settings, memory_store(self.mongo), self.gateway, TEMPLATES, CAL,
                               CollectorRegistry(), self.now)

    def take(self, *events: dict) -> None:
        """Status records as the consumer's handler gets them, in one batch."""
        asyncio.run(on_status(as_records(*events), self.core))

    def send_at(self, at: datetime) -> int:
        self.now.at = at
        return asyncio.run(self.core.sender.send_due())

    def report(self, message_id: str, to: MessageStatus) -> bool:
        return asyncio.run(self.core.reports.reached(message_id, to))

    def status(self, message_id: str) -> MessageStatus:
        async def read() -> MessageStatus:
            store = self.core.store
            return furthest((await store.message(message_id)).status, await store.moves_of(message_id))
        return asyncio.run(read())

    def messages(self) -> dict[str, dict]:
        return self.mongo.collection("notifications_messages").docs

    def counted(self, status: str) -> float:
        return self.core.metrics.messages.labels(status, "http")._value.get()


def received(code: str, at: datetime = NOON, phone: str | None = CITIZEN, opted_in: bool = True) -> dict:
    return changed(code, None, PROCESSING, "dossier.received", at, phone=phone, opted_in=opted_in)


def changed(code: str, old: dict | None, new: dict, cause: str, at: datetime, phone: str | None = CITIZEN,
            opted_in: bool = True, missing: str | None = None) -> dict:
    return {"specversion": "1.0", "id": f"{code}-{cause}", "source": "urn:dossier-tracker:processing",
            "type": "dossier.status_changed", "subject": code, "time": at.isoformat(),
            "data": {"dossier_code": code, "commune_code": "14923", "sector": "HT", "procedure_code": "1.001193",
                     "channel": "direct", "online_level": None, "received_at": NOON.isoformat(), "ended_at": None,
                     "withdrawn_at": None, "old": old, "new": new, "missing": missing, "events": 1, "timeline": [],
                     "cause": {"id": f"{cause}-{code}", "type": cause},
                     "applicant": {"phone": phone, "sms_opt_in": opted_in}}}


def code(n: int) -> str:
    return dossier_code(NOON, sequence=n)


# -- the decider ----------------------------------------------------------------------------------


def test_a_receipt_is_decided_stored_and_sent_once_however_often_its_status_event_comes():
    n = Notifications()
    n.take(received(code(1)), received(code(1)), received(code(1)))  # one batch, three copies
    n.take(received(code(1)))  # a redelivery
    [message_id] = n.messages()
    assert n.status(message_id) == MessageStatus.CREATED and n.counted("created") == 1
    assert n.send_at(NOON) == 1 and n.send_at(NOON + timedelta(hours=1)) == 0
    [given], [body] = n.gateway.given, n.gateway.texts
    assert (given.id, given.trigger, given.coding, given.parts) == (message_id, "received", "gsm7", 1)
    assert body.recipient == "+84912345678" and body.text.startswith(f"Ho so {code(1)} da duoc tiep nhan")
    assert n.status(message_id) == MessageStatus.SENT and n.counted("sent") == 1


@pytest.mark.parametrize("phone, opted_in, status", [
    (CITIZEN, False, MessageStatus.OPTED_OUT),
    ("0241234567", True, MessageStatus.INVALID_RECIPIENT),  # a landline: no SMS
    (None, True, MessageStatus.INVALID_RECIPIENT),
])
def test_a_message_not_to_send_is_stored_with_why_and_never_sent(phone, opted_in, status):
    n = Notifications()
    n.take(received(code(2), phone=phone, opted_in=opted_in))
    [doc] = n.messages().values()
    assert doc["status"] == status and "not_before" not in doc
    assert n.mongo.collection("notifications_bodies").docs == {}
    assert n.send_at(NOON) == 0 and n.gateway.given == []


def test_old_news_is_expired_and_beyond_the_retention_only_counted():
    n = Notifications(notifications_expire_hours=48, notifications_retention_days=30)
    n.take(received(code(3), at=NOON - timedelta(days=3)), received(code(4), at=NOON - timedelta(days=40)))
    assert [d["dossier"] for d in n.messages().values()] == [code(3)]
    assert furthest(MessageStatus(next(iter(n.messages().values()))["status"]), []) == MessageStatus.EXPIRED
    assert n.counted("expired") == 2 and n.send_at(NOON) == 0


def test_a_dossier_life_asks_for_its_messages_in_the_order_of_its_steps():
    n = Notifications()
    c = code(5)
    awaiting = PROCESSING | {"state": "awaiting_supplement"}
    n.take(received(c, at=NOON),
           changed(c, PROCESSING, awaiting, "dossier.supplement_requested", NOON + timedelta(minutes=1),
                   missing="Thiếu bản sao căn cước"),
           changed(c, awaiting, PROCESSING | {"state": "resolved"}, "dossier.resolved", NOON + timedelta(minutes=2)))
    assert n.send_at(NOON + timedelta(minutes=3)) == 3
    assert [m.trigger for m in n.gateway.given] == ["received", "supplement_requested", "resolved"]
    assert "can bo sung: Thieu ban sao can cuoc" in n.gateway.texts[1].text
    standing = n.mongo.collection("notifications_citizens").docs[c]
    assert standing["state"] == "resolved" and standing["phone"] == n.core.store.number_hash("+84912345678")


def test_a_receipt_inserts_where_its_dossier_stands_and_a_later_change_replaces_it():
    """Where each dossier stands was replaced by an upsert per status record: FerretDB runs each as a query and
    a transaction of its own, ~115 µs of its CPU against ~13 for a document inserted in a batch (by hand). A
    receipt's record (no status before it) is the dossier's first: its standing is inserted, and replaced
    only if it is there already (the record delivered again)."""
    n = Notifications()
    first, second = code(30), code(31)
    before = n.mongo.commands()
    n.take(received(first, at=NOON), received(second, at=NOON))
    assert "notifications_citizens.bulk_write" not in n.mongo.commands() - before
    n.take(received(first, at=NOON))  # delivered again
    n.take(changed(first, PROCESSING, PROCESSING | {"state": "resolved"}, "dossier.resolved",
                   NOON + timedelta(minutes=2)))
    citizens = n.mongo.collection("notifications_citizens").docs
    assert citizens[first]["state"] == "resolved" and citizens[second]["state"] == "processing"
    assert citizens[second]["phone"] == n.core.store.number_hash("+84912345678")


# -- the sender ----------------------------------------------------------------------------------


def test_a_night_time_change_waits_for_the_end_of_the_quiet_hours():
    n = Notifications()
    night = datetime(2026, 3, 2, 22, 30, tzinfo=VN)
    n.now.at = night
    n.take(received(code(6), at=night))
    assert [n.send_at(night), n.send_at(datetime(2026, 3, 3, 6, 59, tzinfo=VN)),
            n.send_at(datetime(2026, 3, 3, 7, 0, tzinfo=VN))] == [0, 0, 1]


def test_over_its_daily_limit_a_number_gets_the_rest_the_next_morning():
    n = Notifications(notifications_daily_limit=1)
    n.take(received(code(7)), received(code(8)))  # the same citizen's two dossiers
    assert [n.send_at(NOON), n.send_at(NOON + timedelta(hours=5)),
            n.send_at(datetime(2026, 3, 3, 7, 0, tzinfo=VN))] == [1, 0, 1]


def test_a_temporary_refusal_is_tried_again_after_a_doubling_backoff():
    n = Notifications(notifications_backoff_seconds=5)
    n.take(received(code(9)))
    [message_id] = n.messages()
    n.gateway.refuse = 2
    assert n.send_at(NOON) == 0 and n.send_at(NOON + timedelta(seconds=4)) == 0  # not yet: 5 s
    assert n.send_at(NOON + timedelta(seconds=5)) == 0  # refused again: 10 s more
    assert n.send_at(NOON + timedelta(seconds=14)) == 0 and n.send_at(NOON + timedelta(seconds=15)) == 1
    moves = asyncio.run(n.core.store.moves_of(message_id))
    assert sorted((m.status, m.attempt) for m in moves if m.attempt) == [
        ("refused", 1), ("refused", 2), ("sending", 1), ("sending", 2), ("sending", 3)]
    assert len(n.gateway.given) == 1


def test_a_permanent_refusal_fails_the_message_at_once_and_so_do_spent_attempts():
    n = Notifications(notifications_max_attempts=2, notifications_backoff_seconds=0)
    n.take(received(code(10)), received(code(11), phone="0988000111"))
    first, second = n.messages()
    n.gateway.refuse, n.gateway.permanent = 1, True
    n.send_at(NOON)
    assert {n.status(first), n.status(second)} == {MessageStatus.FAILED, MessageStatus.SENT}

    n = Notifications(notifications_max_attempts=2, notifications_backoff_seconds=0)
    n.take(received(code(12)))
    [message_id] = n.messages()
    n.gateway.refuse = 5
    assert n.send_at(NOON) == 0 and n.send_at(NOON) == 0 and n.send_at(NOON + timedelta(hours=1)) == 0
    assert n.status(message_id) == MessageStatus.FAILED and n.counted("failed") == 1


def test_a_message_that_went_stale_while_waiting_expires_unsent():
    n = Notifications(notifications_expire_hours=1)
    n.take(received(code(13)))
    [message_id] = n.messages()
    assert n.send_at(NOON + timedelta(hours=2)) == 0
    assert n.status(message_id) == MessageStatus.EXPIRED and n.gateway.given == []


def test_a_restarted_replica_sends_what_was_left_and_waits_out_an_attempt_the_gateway_may_have():
    mongo = MemoryMongo()
    first = Notifications(mongo, notifications_sending_timeout_seconds=60)
    first.take(received(code(14)), received(code(15), phone="0988000111"))
    left, claimed = first.messages()
    message = Message.from_doc(first.messages()[claimed])
    # The first replica claimed one attempt and died before the gateway answered.
    assert asyncio.run(first.core.store.record(message, Move(claimed, MessageStatus.SENDING, NOON, 1)))

    second = Notifications(mongo, notifications_sending_timeout_seconds=60)
    assert asyncio.run(second.core.sender.load()) == 2
    assert second.send_at(NOON) == 1 and [m.id for m in second.gateway.given] == [left]
    assert second.send_at(NOON + timedelta(seconds=60)) == 1  # the lost attempt, after the timeout
    assert [m.id for m in second.gateway.given] == [left, claimed]
    moves = asyncio.run(second.core.store.moves_of(claimed))
    assert sorted(m.attempt for m in moves if m.status is MessageStatus.SENDING) == [1, 2]


def test_two_replicas_with_the_same_message_send_it_once():
    mongo = MemoryMongo()
    one, two = Notifications(mongo), Notifications(mongo)
    one.take(received(code(16)))
    asyncio.run(two.core.sender.load())
    assert one.send_at(NOON) + two.send_at(NOON) == 1
    assert len(one.gateway.given) + len(two.gateway.given) == 1


def sent_in_one_batch(n: int) -> tuple[Notifications, Counter]:
    """n citizens' receipts sent in one batch: the notifications, and the store commands of the sending."""
    notifications = Notifications(notifications_daily_limit=1000)
    notifications.take(*(received(code(400 + i), phone=f"09{i:08d}") for i in range(n)))
    before = notifications.mongo.commands()
    assert notifications.send_at(NOON) == n
    return notifications, notifications.mongo.commands() - before


def test_a_batch_of_messages_costs_the_store_the_same_few_commands_however_many_it_holds():
    """Issue 26, item 3: each message cost the store 20-25 round trips (its slot, the slot's purge note,
    its attempt, its `sent`, each with a lookup entry, each read first), 68 SMS/s in a burst. A batch
    writes each kind of document once for all its messages."""
    few, many = sent_in_one_batch(3)[1], sent_in_one_batch(BATCH)[1]
    assert few == many and sum(many.values()) <= 8, many
    assert not any(kind.endswith(("find_one", "insert_one")) for kind in many if "purge" not in kind), many


def test_when_the_database_goes_away_a_dossiers_next_message_waits_for_the_one_before():
    """The batch of a dossier's receipt fails: its next message, due after it, is held back with it, never sent
    first (it fails without the sender's re-queueing of the later waves)."""
    n = Notifications()
    c = code(810)
    n.take(received(c, at=NOON), changed(c, PROCESSING, PROCESSING | {"state": "resolved"}, "dossier.resolved",
                                         NOON + timedelta(minutes=1)))
    slots = n.core.store.take_slots

    async def away_once(*args: Any) -> Any:
        n.core.store.take_slots = slots
        raise AutoReconnect("database away")

    n.core.store.take_slots = away_once
    assert n.send_at(NOON + timedelta(minutes=2)) == 0
    assert n.send_at(NOON + timedelta(minutes=2, seconds=1)) == 2
    assert [m.trigger for m in n.gateway.given] == ["received", "resolved"]  # held back with the receipt's


def test_a_batch_takes_distinct_daily_slots_for_one_number_and_the_rest_waits_for_the_next_morning():
    n = Notifications(notifications_daily_limit=2)
    n.take(*(received(code(500 + i)) for i in range(3)))  # one citizen's three dossiers
    assert n.send_at(NOON) == 2 and len(n.mongo.collection("notifications_daily").docs) == 2
    assert n.send_at(datetime(2026, 3, 3, 7, 0, tzinfo=VN)) == 1


def test_a_database_failure_beside_a_batch_still_records_what_the_gateway_took():
    """A batch's calls go to the gateway side by side: if recording one's refusal fails (the database went
    away), those the gateway took are recorded `sent` all the same, never handed over again."""
    n = Notifications(notifications_sending_timeout_seconds=60)
    n.take(received(code(700)), received(code(701), phone="0988000111"))
    n.gateway.refuse = 1

    async def database_away(*_: Any) -> None:
        raise AutoReconnect("database away")

    n.core.sender._refused = database_away
    assert n.send_at(NOON) == 0
    [taken] = n.gateway.given
    [refused] = set(n.messages()) - {taken.id}
    assert n.status(taken.id) == MessageStatus.SENT and n.status(refused) == MessageStatus.SENDING
    assert n.send_at(NOON + timedelta(seconds=60)) == 1  # the refused one, after the sending timeout
    assert [m.id for m in n.gateway.given] == [taken.id, refused]


def test_a_reload_reads_only_the_messages_this_replica_does_not_hold():
    """The reload read every pending message, its text and its moves again (a dozen key reads each) to
    find the few another replica left; those it holds are skipped."""
    n = Notifications()
    n.take(*(received(code(600 + i), phone=f"09{i:08d}") for i in range(20)))
    before = n.mongo.commands()
    assert asyncio.run(n.core.sender.load()) == 20
    assert n.mongo.commands() - before == Counter({"notifications_pending.find": 1})
    other = Notifications(mongo=n.mongo)  # a replica that holds none reads them
    assert asyncio.run(other.core.sender.load()) == 20


# -- the delivery-report reader ---------------------------------------------------------------------


def test_a_report_moves_a_sent_message_forward_once_and_never_one_not_handed_over():
    n = Notifications()
    n.take(received(code(17)))
    [message_id] = n.messages()
    assert n.report(message_id, MessageStatus.DELIVERED) is False  # no gateway has it yet
    assert n.status(message_id) == MessageStatus.CREATED
    assert n.send_at(NOON) == 1
    assert n.report(message_id, MessageStatus.DELIVERED) is True
    assert n.report(message_id, MessageStatus.DELIVERED) is False  # repeated
    assert n.report(message_id, MessageStatus.SENT) is False  # behind: statuses only move forward
    assert n.report(message_id, MessageStatus.CREATED) is False and n.report("0" * 32, MessageStatus.FAILED) is False
    assert n.status(message_id) == MessageStatus.DELIVERED and n.counted("delivered") == 1
    assert asyncio.run(n.core.reports.from_kannel(message_id, 4)) is False  # buffered: nothing to record


def test_a_report_on_an_attempt_in_flight_stops_the_message_being_sent_again():
    n = Notifications(notifications_sending_timeout_seconds=60)
    n.take(received(code(18)))
    [message_id] = n.messages()
    message = Message.from_doc(n.messages()[message_id])
    asyncio.run(n.core.sender.load())
    assert asyncio.run(n.core.store.record(message, Move(message_id, MessageStatus.SENDING, NOON, 1)))
    assert n.report(message_id, MessageStatus.DELIVERED) is True
    assert n.send_at(NOON + timedelta(minutes=5)) == 0 and n.gateway.given == []


def test_reports_arriving_together_are_recorded_in_one_write_each_answered_for_its_own():
    """Kannel reports twice per message, one request each: the reports that come while the previous
    ones are written are recorded together (issue 26, item 3)."""
    n, _ = sent_in_one_batch(40)
    ids = list(n.messages())
    before = n.mongo.commands()

    async def reports() -> list[bool]:
        reached = n.core.reports.reached
        return await asyncio.gather(*(reached(i, MessageStatus.DELIVERED) for i in ids + ids[:5]))

    answers = asyncio.run(reports())
    assert answers == [True] * 40 + [False] * 5  # a report repeated records nothing
    moves = {kind: k for kind, k in (n.mongo.commands() - before).items() if kind.startswith("notifications_moves.")}
    assert sum(moves.values()) <= 2, moves  # the first report's write, then the others' together
    assert n.counted("delivered") == 40 and all(n.status(i) == MessageStatus.DELIVERED for i in ids)
    assert n.mongo.collection("notifications_pending").docs == {}


def test_a_report_on_a_message_this_replica_handed_over_reads_neither_it_nor_its_attempts_back():
    """Issue 26, item 3: each delivery report read the message and, when it came before the `sent` was
    recorded (Kannel reports at once), every move of it (about ten key reads): a third of the service's
    time in a burst. The replica that handed the message over knows it; another replica still reads."""
    n = Notifications()
    n.take(received(code(22)))
    [message_id] = n.messages()
    assert n.send_at(NOON) == 1
    reads = {"notifications_messages": 0, "notifications_moves": 0}
    for name in reads:
        collection, find_one = n.mongo.collection(name), n.mongo.collection(name).find_one

        async def counted(query, name=name, find_one=find_one):
            reads[name] += 1
            return await find_one(query)

        collection.find_one = counted
    assert n.report(message_id, MessageStatus.DELIVERED) is True
    assert reads == {"notifications_messages": 0, "notifications_moves": 0}  # the move's _id refuses a second
    other = Notifications(mongo=n.mongo)  # a replica that did not send it
    assert asyncio.run(other.core.reports.reached(message_id, MessageStatus.DELIVERED)) is False  # repeated
    assert reads["notifications_messages"] == 1


# -- the purge ---------------------------------------------------------------------------------------


def test_the_purge_forgets_numbers_and_texts_after_the_retention_but_not_of_a_message_still_to_send():
    n = Notifications(notifications_retention_days=1, notifications_daily_limit=1)
    n.take(received(code(19)), received(code(20)))  # the second waits: the number's day is full
    sent, waiting = n.messages()
    assert n.send_at(NOON) == 1
    n.now.at = NOON + timedelta(days=1, minutes=1)
    assert asyncio.run(n.core.purge.run()) == 2  # the sent one's body and the day's slot
    assert set(n.mongo.collection("notifications_bodies").docs) == {waiting}
    assert n.status(sent) == MessageStatus.SENT and len(n.messages()) == 2


def test_a_batch_notes_its_bodies_and_its_slots_for_the_purge_once_and_all_are_purged_with_older_notes():
    """Each message sent noted its daily slot for the purge in a note of its own, 20 senders side by
    side racing for a day's next link (issue 26, item 3). A batch writes one note for all its slots,
    as one for all its bodies; the purge still reads the 16 chains a day and the one chain of before."""
    n = Notifications(notifications_daily_limit=1000, notifications_retention_days=1)
    n.take(*(received(code(300 + i), phone=f"09{i:08d}") for i in range(60)))
    assert n.send_at(NOON) == 60
    purge = n.mongo.collection("notifications_purge")
    assert len(purge.docs) == 2 and all(doc_id.startswith(f"{NOON.date()}|") for doc_id in purge.docs)
    day = NOON.date().isoformat()  # a note as the service wrote it before: one chain a day
    purge.docs[day] = Chain.link(day, 0, {"collection": "daily", "ids": ["old-slot"], "at": NOON})
    n.mongo.collection("notifications_daily").docs["old-slot"] = {"_id": "old-slot"}
    n.now.at = NOON + timedelta(days=2)
    assert asyncio.run(n.core.purge.run()) == 121  # every body and slot of the day, and the old slot
    assert n.mongo.collection("notifications_bodies").docs == {}


# -- the stored shapes --------------------------------------------------------------------------------

# Documents as the service wrote them before its messages were typed (services/notifications/service.py).
OLD_MESSAGE = {"_id": "a" * 32, "step": f"{code(21)}|received", "dossier": code(21), "commune": "14923",
               "trigger": "received", "created_at": datetime(2026, 3, 2, 5, 0), "step_at": datetime(2026, 3, 2, 5, 0),
               "provider": "kannel", "status": "created", "coding": "gsm7", "parts": 1,
               "not_before": datetime(2026, 3, 2, 5, 0)}
OLD_BODY = {"_id": "a" * 32, "recipient": "+84912345678", "body": "Ho so ...", "created_at": datetime(2026, 3, 2, 5)}
OLD_MOVES = [{"_id": f"{'a' * 32}/sending/1", "message": "a" * 32, "status": "sending", "at": datetime(2026, 3, 2, 5, 1)},
             {"_id": f"{'a' * 32}/sent", "message": "a" * 32, "status": "sent", "at": datetime(2026, 3, 2, 5, 1),
              "provider_id": None},
             {"_id": f"{'a' * 32}/delivered", "message": "a" * 32, "status": "delivered",
              "at": datetime(2026, 3, 2, 5, 2)}]


def test_documents_written_before_the_types_read_and_write_back_the_same():
    message = Message.from_doc(OLD_MESSAGE)
    assert message.status is MessageStatus.CREATED and message.created_at.tzinfo is not None
    moves = [Move.from_doc(m) for m in OLD_MOVES]
    assert furthest(message.status, moves) is MessageStatus.DELIVERED and moves[0].attempt == 1
    naive = lambda doc: {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v  # noqa: E731
                         for k, v in doc.items()}  # as BSON gives instants back
    assert naive(message.to_doc()) == OLD_MESSAGE
    assert [naive(m.to_doc()) for m in moves] == OLD_MOVES
    assert naive(Body.from_doc(OLD_BODY).to_doc()) == OLD_BODY
    assert all(type(v) is str for v in (message.to_doc()["status"], moves[0].to_doc()["status"]))
