"""make bench-notifications: SMS per second through Kannel with delivery reports, beside Kannel's own
sendsms rate driven directly by a plain HTTP loop, on the `make up` stack's Kannel and fake SMSC.

Ours: status events published straight to a status topic of the benchmark's own; a notifications
service of its own decides, writes, sends through Kannel and takes the delivery reports. Timed from
the first status event to the last message `delivered`.
"""

import asyncio
import contextlib
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.cpu import tree_of
from bench.harness import ROOT, bench_settings, knob, port, start_service
from bench.report import table, write_section
from services.notifications.settings import NotificationsSettings
from shared.calendar import WorkingCalendar
from shared.contracts import status_changed, status_of
from shared.dossier import fold
from shared.events import parse_event
from shared.kafka import STRUCTURED_HEADERS, client_options
from shared.kafka_acls import prepare
from tests.fixtures.sample import VN, dossier_code, event

MESSAGES = knob("BENCH_SMS", 1000, 20)
DEADLINE = knob("BENCH_SMS_DEADLINE", 600.0, 60.0)  # seconds for every message to be delivered
CAL = WorkingCalendar.load()
# Kannel's sendsms port as deploy/local/common.sh reads it, its user and password as the service reads them
# (the stack's generated secret).
KANNEL = f"http://127.0.0.1:{os.environ.get('DOSSIER_KANNEL_SENDSMS_PORT', '13013')}/cgi-bin/sendsms"
PORT = port(8104)
BASELINE = os.environ.get("BENCH_SMS_BASELINE", "2dc2917")  # the service before its delivery reports read nothing


def kannel_user() -> tuple[str, str]:
    settings = NotificationsSettings(environment="local")
    password = settings.notifications_kannel_password.get_secret_value()
    if not password:
        raise SystemExit("no Kannel password: DOSSIER_SECRETS_DIR names no stack's secrets (`make up` makes them)")
    return settings.notifications_kannel_username, password


async def kannel_direct(n: int) -> float:
    """Kannel's sendsms driven directly, 20 requests in flight; returns messages per second."""
    username, password = kannel_user()
    params = {"username": username, "password": password, "from": "UBND-XA", "to": "+84912345678",
              "text": "Ho so 000.00.38.H56-250701-0001 da duoc tiep nhan.", "dlr-mask": "0"}
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        gate = asyncio.Semaphore(20)

        async def one() -> None:
            async with gate, http.get(KANNEL, params=params) as answer:
                assert answer.status in (200, 202), await answer.text()

        await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - started)


def status_record(n: int) -> tuple[bytes, bytes]:
    """Processing's status record of a new dossier (its receipt folded), the applicant opted in to SMS:
    the record's key and value."""
    code = dossier_code(datetime.now(VN), sequence=n)
    applicant = {"name": "Nguyễn Văn An", "phone": f"09{n:08d}", "sms_opt_in": True}
    folded = fold([parse_event(event("dossier.received", code, datetime.now(VN), applicant=applicant))], CAL)
    record = status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, 1)
    return code.encode(), record.to_bytes()


async def ours(n: int, tree: Path = ROOT) -> tuple[float, dict]:
    """The notifications service of `tree`'s files, from the first status event to the last `delivered`."""
    settings = bench_settings("notifications")
    await prepare(settings)
    with contextlib.chdir(tree):  # `python -m` imports from the working directory
        process = start_service("notifications", settings, PORT, DOSSIER_NOTIFICATIONS_PROVIDER="kannel",
                                DOSSIER_NOTIFICATIONS_KANNEL_URL=KANNEL,
                                DOSSIER_NOTIFICATIONS_DLR_BASE_URL=f"http://127.0.0.1:{PORT}",
                                DOSSIER_NOTIFICATIONS_QUIET_START="00:00", DOSSIER_NOTIFICATIONS_QUIET_END="00:00",
                                DOSSIER_NOTIFICATIONS_DAILY_LIMIT="1000000",
                                DOSSIER_NOTIFICATIONS_SEND_INTERVAL_SECONDS="0.05")
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5)
    await producer.start()
    try:
        records = [status_record(i) for i in range(n)]
        started = time.perf_counter()
        for key, value in records:
            await producer.send(settings.topic_status, value, key=key, headers=STRUCTURED_HEADERS)
        await producer.flush()
        # The service's own counters: a count over its moves would make FerretDB scan them, beside the service.
        while (done := (await reached()).get("delivered", 0)) < n:
            await asyncio.sleep(0.5)
            if time.perf_counter() - started > DEADLINE or process.poll() is not None:
                raise SystemExit(f"only {done:.0f} of {n} delivered in {time.perf_counter() - started:.0f} s")
        elapsed = time.perf_counter() - started
        statuses = await reached()
    finally:
        await producer.stop()
        process.terminate()
        process.wait()
    return n / elapsed, statuses


async def reached() -> dict[str, float]:
    """Messages by status reached, from the service's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{PORT}/metrics") as answer:
        text = await answer.text()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "notifications_messages_total":
                counts[sample.labels["status"]] = counts.get(sample.labels["status"], 0) + sample.value
    return counts


async def main() -> None:
    direct = await kannel_direct(MESSAGES)
    print(f"Kannel sendsms directly: {direct:,.0f} messages/s")
    rate, statuses = await ours(MESSAGES)
    print(f"notifications through Kannel, delivery reports included: {rate:,.0f} messages/s ({statuses})")
    rows = [["Kannel sendsms driven directly (20 in flight, no delivery report)", MESSAGES, f"{direct:,.0f}", "1"],
            ["notifications: status event → message written → Kannel → fake SMSC → delivery report → delivered",
             MESSAGES, f"{rate:,.1f}", f"{rate / direct:.1%}"]]
    if BASELINE:
        with tempfile.TemporaryDirectory() as scratch:
            before, _ = await ours(MESSAGES, tree_of(BASELINE, Path(scratch)))
        print(f"the same with the service of {BASELINE}: {before:,.0f} messages/s")
        rows.append([f"the same, the service of commit {BASELINE}", MESSAGES, f"{before:,.1f}",
                     f"{before / direct:.1%} (now / then: {rate / before:.2f}×)"])
    write_section(
        "notifications", "Notifications: SMS through Kannel", "make bench-notifications",
        table(["path", "messages", "messages/s", "ratio"], rows)
        + "\n\nEach message costs the service single-document FerretDB writes before and after the gateway "
        "(message and text, its daily slot and the slot's purge note, the sending attempt, sent, each with "
        "an entry in the dossier's lookup chain) and one per delivery report (Kannel reports 'submitted' "
        "and 'delivered'); up to 20 messages are with Kannel at once. A report on a message the replica "
        "handed over reads nothing back (it read the message and, before its `sent` was recorded, every "
        "move of it: a third of the service's time), and a day's purge notes go to 16 chains, not one "
        "that every sender raced for. With 100 messages at once instead of 20 it is no faster: FerretDB's "
        "single-document writes are the limit. Batching the writes is the next step. A commune "
        "centre sends a few hundred SMS a day, a province's peak hour a few thousand.",
    )


if __name__ == "__main__":
    asyncio.run(main())
