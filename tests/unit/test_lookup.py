"""The citizens' lookup: its factors, its limits, what it shows, the page, the SMS replies."""

import asyncio
import ipaddress
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from services.notifications.replies import NEUTRAL, PerNumber, code_in, reply
from services.notifications.sms import is_gsm7
from services.processing.history import view
from services.processing.lookup import (Attempts, LookupRefused, Slots, citizen_view, client_of, factor_matches,
                                        well_formed_factor)
from services.processing.page import render
from shared.calendar import WorkingCalendar
from shared.dossier import fold
from shared.lookup import last4, lookup_link, lookup_token
from shared.ratelimit import Windows
from tests.fixtures.memory import MemoryCollection
from tests.unit.test_dossier import LIFE, ev, received

CAL = WorkingCalendar.load()
CODE = LIFE[0].subject


def test_the_token_is_the_code_keyed_and_nothing_else():
    token = lookup_token("k1", CODE)
    assert token == lookup_token("k1", CODE) and len(token) == 16 and token.isalnum()
    assert token != lookup_token("k2", CODE) and token != lookup_token("k1", CODE[:-1] + "9")
    assert lookup_link("http://x/tra-cuu", "k1", CODE) == f"http://x/tra-cuu?ma={CODE}&t={token}"


@pytest.mark.parametrize("phone4, token, ok", [
    ("5678", None, True),
    (None, "a" * 16, True),
    ("567", None, False),
    ("56789", None, False),
    ("١٢٣٤", None, False),  # Arabic-Indic digits: isdigit() is true, they are not what was given
    ("１２３４", None, False),  # full-width digits
    ("5678", "a" * 16, False),  # one factor, not two
    (None, None, False),
    (None, "A" * 16, False),
    (None, "a" * 17, False),
])
def test_a_factor_is_four_ascii_digits_or_a_token(phone4, token, ok):
    assert well_formed_factor(phone4, token) is ok


def test_the_right_factor_matches_and_a_wrong_one_or_none_stored_does_not():
    assert factor_matches(CODE, "5678", None, "5678", "k")
    assert not factor_matches(CODE, "1234", None, "5678", "k")
    assert not factor_matches(CODE, "1234", None, None, "k")  # unknown dossier: compared with a stand-in
    assert factor_matches(CODE, None, lookup_token("k", CODE), None, "k")
    assert not factor_matches(CODE, None, lookup_token("other", CODE), None, "k")
    assert last4("+84 912-345-678") == "5678" and last4("12") is None


def test_attempts_are_limited_per_client_a_minute():
    now = [0.0]
    attempts = Attempts(Slots(MemoryCollection()), 3, 10, 5, clock=lambda: now[0])
    for _ in range(3):
        attempts.check("1.2.3.4")
    with pytest.raises(LookupRefused):
        attempts.check("1.2.3.4")  # the client's fourth in a minute
    attempts.check("5.6.7.8")  # another client
    now[0] = 61
    attempts.check("1.2.3.4")


async def test_guesses_are_limited_per_code_and_per_client_and_code_and_a_right_one_is_given_back():
    now = [7200.0]
    attempts = Attempts(Slots(MemoryCollection(), clock=lambda: now[0]), 100, 3, 2)
    right = await attempts.guess("1.1.1.1", "A")
    await attempts.right(right)  # not a failure
    await attempts.guess("1.1.1.1", "A")
    await attempts.guess("1.1.1.1", "A")
    with pytest.raises(LookupRefused):
        await attempts.guess("1.1.1.1", "A")  # this client's third wrong guess on A
    await attempts.guess("2.2.2.2", "A")  # the code's third
    with pytest.raises(LookupRefused) as refused:
        await attempts.guess("3.3.3.3", "A")  # any client: the code is locked for the hour
    assert 3000 < refused.value.retry_after <= 3601
    await attempts.guess("3.3.3.3", "B")  # another code
    await attempts.guess("3.3.3.3", "A", code_wide=False)  # a token guess counts for its client alone
    now[0] += 3600
    await attempts.guess("3.3.3.3", "A")  # the next hour


async def test_a_burst_of_concurrent_guesses_is_counted_before_any_is_evaluated():
    """The finding: the failure was recorded after the database read, so 30 concurrent guesses were all
    evaluated (limit 10)."""
    attempts = Attempts(Slots(MemoryCollection()), 10_000, 10, 5)
    outcomes = await asyncio.gather(*(attempts.guess(f"10.0.{n // 250}.{n % 250}", "A") for n in range(1000)),
                                    return_exceptions=True)
    assert sum(not isinstance(o, LookupRefused) for o in outcomes) == 10


async def test_guesses_at_once_take_their_first_slots_in_one_insert_and_one_slot_goes_to_one_guess():
    """50 clients' lookups cost an insert each before (services/processing/lookup.py `Slots.claim`)."""
    collection = MemoryCollection()
    inserts = []
    insert_many = collection.insert_many
    collection.insert_many = lambda docs, **kw: inserts.append(len(docs)) or insert_many(docs, **kw)
    attempts = Attempts(Slots(collection), 10_000, 10, 1)
    await asyncio.gather(*(attempts.guess(f"10.0.0.{n}", f"code{n}") for n in range(20)))
    assert inserts == [40]  # each guess's window per code and per (client, code), in one insert
    outcomes = await asyncio.gather(*(attempts.guess("10.0.0.99", "code0", code_wide=False) for _ in range(3)),
                                    return_exceptions=True)
    assert sum(not isinstance(o, LookupRefused) for o in outcomes) == 1  # its one slot, to one of them


async def test_the_windows_that_are_over_are_purged():
    now = [0.0]
    collection = MemoryCollection()
    slots = Slots(collection, clock=lambda: now[0])
    await Attempts(slots, 100, 10, 5).guess("1.1.1.1", "A", code_wide=False)
    now[0] = 3599
    await slots.purge()
    assert list(collection.docs) == ["client|1.1.1.1|A|0|0"]
    now[0] = 3601
    await slots.purge()
    assert collection.docs == {}


async def test_a_window_seen_full_is_refused_without_the_database_for_a_minute():
    now = [100.0]
    collection = MemoryCollection()
    attempts = Attempts(Slots(collection, clock=lambda: now[0]), 100, 2, 2)
    for _ in range(2):
        await attempts.guess("1.1.1.1", "A")
    with pytest.raises(LookupRefused):
        await attempts.guess("2.2.2.2", "A")  # the code's window, seen full by a read
    collection.docs.clear()  # what the database says no longer matters for a minute …
    with pytest.raises(LookupRefused) as refused:
        attempts.windows("3.3.3.3", "A")  # … refused before anything is awaited
    assert refused.value.retry_after == 3501
    attempts.windows("3.3.3.3", "B")
    now[0] = 159
    with pytest.raises(LookupRefused):
        attempts.windows("3.3.3.3", "A")
    now[0] = 160  # then the database is asked again: slots held by right guesses were given back
    await attempts.guess("3.3.3.3", "A")


async def test_a_citizens_own_lookups_side_by_side_lock_them_out_for_a_minute_at_most():
    now = [100.0]
    attempts = Attempts(Slots(MemoryCollection(), clock=lambda: now[0]), 100, 10, 2)
    held = [await attempts.guess("1.1.1.1", "A") for _ in range(2)]  # two right lookups under way
    with pytest.raises(LookupRefused):
        await attempts.guess("1.1.1.1", "A")
    for slots in held:
        await attempts.right(slots)
    now[0] += 61
    await attempts.guess("1.1.1.1", "A")


async def test_the_windows_seen_full_are_bounded():
    slots = Slots(MemoryCollection(), remembered=3)
    attempts = Attempts(slots, 100, 0, 0)
    for code in "ABCDE":
        with pytest.raises(LookupRefused):
            await attempts.guess("1.1.1.1", code)
    assert len(slots._full) == 3
    with pytest.raises(LookupRefused):
        await attempts.guess("1.1.1.1", "E")  # not remembered: the database refuses it again


async def test_a_right_guess_gives_its_slots_back_after_the_answer():
    collection = MemoryCollection()
    attempts = Attempts(Slots(collection), 100, 3, 2)
    attempts.right_later(await attempts.guess("1.1.1.1", "A"))
    assert len(collection.docs) == 2  # still counted while the answer is sent
    await attempts.settled()
    assert collection.docs == {}


async def test_right_guesses_answered_together_give_their_slots_back_in_one_delete():
    collection = MemoryCollection()
    deletes = []
    delete_many = collection.delete_many
    collection.delete_many = lambda query: deletes.append(query) or delete_many(query)
    attempts = Attempts(Slots(collection), 100, 3, 2)
    for code in "ABC":  # one client's lookups back to back, each answered before the next
        attempts.right_later(await attempts.guess("1.1.1.1", code))
        await asyncio.sleep(0)
    await attempts.settled()
    assert collection.docs == {} and len(deletes) == 1


async def test_a_citizen_polling_the_right_digits_back_to_back_is_never_refused():
    # Their slots waiting to be given back together would fill their window (found by a review).
    attempts = Attempts(Slots(MemoryCollection()), 100, 3, 2)
    for _ in range(6):
        attempts.right_later(await attempts.guess("1.1.1.1", "A"))
        await asyncio.sleep(0)  # the answer is sent
    await attempts.settled()


async def test_at_close_the_slots_waiting_are_given_back_at_once():
    collection = MemoryCollection()
    attempts = Attempts(Slots(collection), 100, 3, 2)
    attempts.right_later(await attempts.guess("1.1.1.1", "A"))
    await asyncio.wait_for(attempts.close(), 0.01)
    assert collection.docs == {}


def request_from(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


PROXIES = [ipaddress.ip_network("10.1.0.0/16")]


@pytest.mark.parametrize("peer, forwarded, client", [
    ("203.0.113.9", None, "203.0.113.9"),
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a trusted proxy: its header is not believed
    ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
    ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # what the caller wrote before the proxy's
    ("10.1.2.3", "198.51.100.1, 10.1.9.9", "198.51.100.1"),  # through two proxies of ours
    ("10.1.2.3", "not an address", "10.1.2.3"),
    ("10.1.2.3", None, "10.1.2.3"),
])
def test_the_client_is_the_peer_or_what_a_trusted_proxy_says(peer, forwarded, client):
    assert client_of(request_from(peer, forwarded), PROXIES) == client


def test_the_citizen_sees_state_appointment_steps_and_what_is_missing_never_a_name_or_phone():
    history = [received(applicant={"name": "Nguyễn Văn An", "phone": "0912345678", "sms_opt_in": True}),
               ev("dossier.supplement_requested", "2025-07-07 15:00", reason="Thiếu bản sao CCCD")]
    shown = citizen_view(view(fold(history, CAL).dossier), datetime(2025, 7, 8, tzinfo=UTC), CAL)
    assert shown["state_name"] == "Cần bổ sung hồ sơ" and shown["missing"] == "Thiếu bản sao CCCD"
    assert [s["name"] for s in shown["steps"]] == ["Tiếp nhận hồ sơ", "Yêu cầu bổ sung hồ sơ"]
    text = str(shown)
    assert "Nguyễn" not in text and "0912" not in text and "78" not in text.split("missing")[0][-40:]
    assert "applicant" not in shown


def test_the_page_loads_nothing_from_elsewhere_and_labels_its_fields():
    found = citizen_view(view(fold(LIFE, CAL).dossier), datetime(2025, 7, 20, tzinfo=UTC), CAL)
    page = render(CAL, CODE, "5678", found=found)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert '<label for="ma">' in page and '<label for="so">' in page and 'lang="vi"' in page
    assert "Đã trả kết quả" in page
    assert "<script>alert(1)</script>" not in render(CAL, "<script>alert(1)</script>", error="x")


@given(st.text(max_size=300))
def test_any_text_a_phone_sends_is_read_without_raising(text):
    code_in(text)


def test_the_sms_reply_says_where_the_dossier_stands_in_one_gsm7_part():
    assert code_in("hs 000.00.38.H56-250701-0001 xin cam on") == "000.00.38.H56-250701-0001"
    assert code_in("HS 000.00.38.H56-251399-0001") is None  # not a real date
    answer = reply("000.00.38.H56-250701-0001", {"state": "processing",
                                                   "appointment_at": "2025-07-03T10:00:00+07:00"}, CAL)
    assert answer == "Ho so 000.00.38.H56-250701-0001: Dang giai quyet. Ngay hen tra ket qua: 03/07/2025."
    suspended = reply("000.00.38.H56-250701-0001", {"state": "awaiting_supplement",
                                                      "appointment_at": "2025-07-03T10:00:00+07:00"}, CAL)
    assert suspended == "Ho so 000.00.38.H56-250701-0001: Can bo sung ho so."
    assert is_gsm7(answer) and len(answer) <= 160 and is_gsm7(NEUTRAL) and len(NEUTRAL) <= 160


def test_replies_are_limited_per_number():
    now = [0.0]
    limit = PerNumber(2, clock=lambda: now[0])
    assert limit.allow("n") and limit.allow("n") and not limit.allow("n") and limit.allow("m")
    now[0] = 3601
    assert limit.allow("n")


def test_a_window_says_how_long_to_wait_and_forgets_keys_whose_events_are_past():
    now = [0.0]
    windows = Windows(2, 60, clock=lambda: now[0])
    windows.add("a")
    assert windows.wait("a") is None
    windows.add("a")
    assert windows.wait("a") == 60
    now[0] = 30
    assert windows.wait("a") == 30 and windows.wait("b") is None and len(windows) == 1
    now[0] = 60
    assert windows.wait("a") is None and len(windows) == 0  # a number that texted once is not kept
