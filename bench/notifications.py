"""make bench-notifications: SMS per second through Kannel with delivery reports, beside Kannel's own
sendsms rate driven directly by a plain HTTP loop, on the `make up` stack's Kannel and fake SMSC.

Ours: status events published straight to a status topic of the benchmark's own; a notifications
service of its own decides, writes, sends through Kannel and takes the delivery reports. Timed from
the first status event to the last message `delivered`, with the CPU time each process spent per
message meanwhile (the service, FerretDB, Kannel's two boxes): where the time went.
"""

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.cpu import tree_of
from bench.harness import ROOT, bench_settings, knob, port, run, stack_pid, start_service
from bench.report import table, write_section
from services.notifications.settings import NotificationsSettings
from shared.calendar import WorkingCalendar
from shared.contracts import status_changed, status_of
from shared.dossier import fold
from shared.events import parse_event
from shared.kafka import STRUCTURED_HEADERS, client_options
from shared.kafka_acls import prepare
from tests.fixtures.sample import VN, dossier_code, event

MESSAGES = knob("BENCH_SMS", 10_000, 20)  # a morning's burst: 1,000 went out in under 2 s, too short to measure
DEADLINE = knob("BENCH_SMS_DEADLINE", 600.0, 60.0)  # seconds for every message to be delivered
QUIET_LEAD = knob("BENCH_SMS_QUIET_LEAD", 40.0, 10.0)  # seconds of quiet hours to decide every message in
CAL = WorkingCalendar.load()
# Kannel's sendsms port as deploy/local/common.sh reads it, its user and password as the service reads them
# (the stack's generated secret).
KANNEL = f"http://127.0.0.1:{os.environ.get('DOSSIER_KANNEL_SENDSMS_PORT', '13013')}/cgi-bin/sendsms"
PORT = port(8104)
# The services beside this one: before it sent in batches (when issue 26 was filed), and before its gateway calls
# went through aiohttp.
BASELINES = os.environ.get("BENCH_SMS_BASELINE", "bdf26ee 6460565").split()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The stack's processes whose CPU a message costs besides the service's (deploy/local/*.sh pid files).
STACK_PROCESSES = {"FerretDB": ["ferretdb"], "Kannel": ["kannel-bearerbox", "kannel-smsbox"]}


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def stack_cpu() -> dict[str, float]:
    """CPU seconds so far of the stack's FerretDB and Kannel, as far as their pid files tell."""
    spent: dict[str, float] = {}
    for name, processes in STACK_PROCESSES.items():
        try:
            spent[name] = sum(cpu_seconds(stack_pid(p)) for p in processes)
        except (OSError, ValueError):
            pass
    return spent


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


def burst_clock(lead: float) -> dict[str, str]:
    """The service's clock moved to `lead` seconds before 07:00 local, the end of the default quiet
    hours: the messages it decides meanwhile all fall due at once, as after a night."""
    now = datetime.now(VN)
    seven = now.replace(hour=7, minute=0, second=0, microsecond=0)
    seven += timedelta(days=1) if seven <= now else timedelta(0)
    offset = (seven - timedelta(seconds=lead) - now).total_seconds()
    return {"DOSSIER_CLOCK_OFFSET_SECONDS": f"{offset:.3f}"}


async def ours(n: int, tree: Path = ROOT, burst: bool = False) -> tuple[float, dict, dict[str, float]]:
    """The notifications service of `tree`'s files, from the first status event to the last `delivered`
    (`burst`: from the end of the quiet hours, every message decided before): messages per second,
    messages by status, CPU milliseconds per message by process."""
    settings = bench_settings("notifications")
    await prepare(settings)
    quiet = burst_clock(QUIET_LEAD) if burst else {"DOSSIER_NOTIFICATIONS_QUIET_START": "00:00",
                                                   "DOSSIER_NOTIFICATIONS_QUIET_END": "00:00"}
    quiet_ends = time.perf_counter() + QUIET_LEAD
    with contextlib.chdir(tree):  # `python -m` imports from the working directory
        process = start_service("notifications", settings, PORT, now=None,  # its messages dated now (or burst_clock's)
                                DOSSIER_NOTIFICATIONS_PROVIDER="kannel",
                                DOSSIER_NOTIFICATIONS_KANNEL_URL=KANNEL,
                                DOSSIER_NOTIFICATIONS_DLR_BASE_URL=f"http://127.0.0.1:{PORT}",
                                DOSSIER_NOTIFICATIONS_DAILY_LIMIT="1000000",
                                DOSSIER_NOTIFICATIONS_SEND_INTERVAL_SECONDS="0.05", **quiet)
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5)
    await producer.start()
    try:
        records = [status_record(i) for i in range(n)]
        cpu_before = stack_cpu() | {"service": cpu_seconds(process.pid)}
        started = time.perf_counter()
        for key, value in records:
            await producer.send(settings.topic_status, value, key=key, headers=STRUCTURED_HEADERS)
        await producer.flush()
        if burst:
            started, cpu_before = await quiet_night(n, quiet_ends, process)
        elapsed = await delivered(n, started, process)
        cpu_after = stack_cpu() | {"service": cpu_seconds(process.pid)}
        statuses = await reached()
    finally:
        await producer.stop()
        process.terminate()
        process.wait()
    return n / elapsed, statuses, {k: 1000 * (cpu_after[k] - cpu_before[k]) / n for k in cpu_before if k in cpu_after}


async def quiet_night(n: int, quiet_ends: float, process: subprocess.Popen) -> tuple[float, dict[str, float]]:
    """Every message decided and waiting before the quiet hours end; then the instant they end and the
    CPU spent so far."""
    while (await reached()).get("created", 0) < n:
        await asyncio.sleep(0.2)
        if time.perf_counter() > quiet_ends:
            raise SystemExit(f"{n} messages not all decided within the quiet hours: raise BENCH_SMS_QUIET_LEAD")
    if (await reached()).get("sent", 0):
        raise SystemExit("messages were sent during the quiet hours")
    await asyncio.sleep(quiet_ends - time.perf_counter())
    return time.perf_counter(), stack_cpu() | {"service": cpu_seconds(process.pid)}


async def delivered(n: int, started: float, process: subprocess.Popen) -> float:
    """Seconds from `started` until the service counts n messages delivered (its own counters: a count
    over its moves would make FerretDB scan them, beside the service)."""
    while (done := (await reached()).get("delivered", 0)) < n:
        await asyncio.sleep(0.2)
        if time.perf_counter() - started > DEADLINE or process.poll() is not None:
            raise SystemExit(f"only {done:.0f} of {n} delivered in {time.perf_counter() - started:.0f} s")
    return time.perf_counter() - started


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


def cpu_cells(cpu: dict[str, float]) -> list[str]:
    return [f"{cpu[k]:.2f}" if k in cpu else "?" for k in ("service", "FerretDB", "Kannel")]


PATHS = {False: "status event → message written → Kannel → fake SMSC → delivery report → delivered",
         True: "morning burst: every message decided in the quiet hours, from 07:00 to the last delivered"}


async def rows_of(tree: Path, name: str, direct: float,
                  now: dict[bool, float] | None = None) -> tuple[dict[bool, float], list[list]]:
    """The service of `tree` streamed and in a burst: its rates and the table's rows (with `now`, this
    tree's rates, each beside them)."""
    rates, rows = {}, []
    for burst in (False, True):
        rate, statuses, cpu = await ours(MESSAGES, tree, burst)
        print(f"{name}, {PATHS[burst]}: {rate:,.0f} messages/s ({statuses}), CPU ms per message {cpu}")
        ratio = f"{rate / direct:.1%}" + (f" (now / then: {now[burst] / rate:.2f}×)" if now else "")
        rates[burst] = rate
        rows.append([f"{name}: {PATHS[burst]}", MESSAGES, f"{rate:,.1f}", ratio, *cpu_cells(cpu)])
    return rates, rows


# What the section says beside its table: how the figures are made, what changed, where the time goes.
NOTES = ("\n\nCPU is each process's user and system time from the first status event (in the morning burst, "
    "from 07:00) to the last `delivered`, divided by the messages: the service's own, FerretDB's (the "
    "store's side of every write) and Kannel's "
    "(bearerbox and smsbox). Figures swing by a fifth from run to run on this shared machine; the CPU per "
    "message holds better.\n\n"
    "What changed (issue 26, item 3): the service sends in batches of 100 messages due, four side by side: "
    "one FerretDB write of their daily slots (and one purge note), one of their sending attempts, the "
    "gateway's calls, one of their `sent`, each with one lookup entry per dossier, instead of 20-25 "
    "single-document round trips a message; the delivery reports that arrive while the previous ones are "
    "written are recorded in one write; nothing is read before recording a move (its `_id` refuses a "
    "second), and a message's end no longer summarises its dossier's lookup chain (a dozen key reads "
    "each: the lookup does it when it reads). Kannel is asked only for the reports that move a message "
    "(delivered, failed, refused by the SMSC: one request per message, not three). The gateway's calls "
    "(40 at once) are spread over httpx clients of 5 each: httpx's CPU per call grows with the calls in "
    "flight on one client (0.5 ms with up to 5, 1.3 ms with 20).\n\n"
    "Since 6460565 (the last rows): the gateway's calls go through one aiohttp session, its connections kept "
    "alive, as many as the calls at once (services/notifications/providers.py), instead of those httpx "
    "clients: in a py-spy profile of the service during this bench's streamed path (2026-12-06, not measured "
    "by it), httpx's calls to Kannel took 57 % of the service's samples before, 15 % after. And each "
    "message's text is spelt in GSM-7 with each character's spelling remembered, its GSM-7 check a set's: a "
    "message renders in 45 µs instead of 183 (by hand, 2026-12-06).\n\n"
    "Where the time goes now (the same profile, after): the delivery reports' requests through FastAPI and "
    "uvicorn about a fifth of the service's samples (FastAPI's own share of a request is ~100 µs, whatever "
    "the endpoint returns), the Kafka consumer (decoding, deciding, rendering, storing the messages) and the "
    "calls to Kannel about 15 % each, the store's writes 12 %. FerretDB's CPU is then the largest of the "
    "three processes' in the streamed path: a message is about ten documents written (the message, its "
    "body, its moves sending, sent and delivered, each with an entry in its dossier's chain, its daily "
    "slot and the purge's notes), in the smaller batches a stream gives; the morning burst writes them in "
    "batches of 100. A commune centre sends a few hundred SMS a day, a province's peak hour a few thousand.\n\n"
    "Since 41ba699 (2026-12-07, 10.5 % streamed and 12.0 % in the burst): a py-spy profile of the burst showed the "
    "service's main thread busy little more than half the time, and FerretDB's pprof profile a quarter of its "
    "CPU in deletes: the pending list lost its keys by a DeleteOne each, which FerretDB ran as a query and a "
    "transaction of its own (~90 µs of its CPU a document, 30 for a key already gone, as at the delivery "
    "report); `shared.mongo.delete_all` now sends one `{_id: {$in: [...]}}` per 1,000 keys (~30 and 3 µs): "
    "FerretDB's CPU a message in the burst went from 0.45 to 0.36 ms. The gateway's calls took ~35 ms each in "
    "the burst (the service's send-duration histogram), and Kannel answered a probe from outside in ~20 ms "
    "meanwhile (~2.5 ms idle): Kannel, carrying the delivery reports too, answers later under load, and 40 "
    "calls at once held the burst to ~1,050 messages/s. The service now keeps 100 at once with Kannel (40, as "
    "before, with an aggregator's HTTP API, whose limits on connections are its own; "
    "`DOSSIER_NOTIFICATIONS_GATEWAY_CONCURRENCY` sets either). And where each dossier stands "
    "(for the citizens' SMS replies) was an upsert per status record, which FerretDB runs as a query and a "
    "transaction of its own (~115 µs of its CPU, against ~13 for a document inserted in a batch): it is "
    "inserted from the dossier's first status record now, replaced after. This bench's status records are "
    "all receipts, so its streamed path gains the whole of it (FerretDB 0.51-0.57 -> 0.42-0.46 ms a message, "
    "A/B by hand); a real day's records are receipts about one in five. The streamed path, watched on the "
    "service's counters (2026-12-07, by hand): the consumer decides and stores the 10,000 messages in ~5 s while "
    "the sender starts a second after the first event and sends ~1,100-1,200 a second beside it, then ~1,500 once "
    "the consumer is done, the burst's pace: the two share the service's one event loop. A send that made each "
    "next batch of what fell due as the one before ended (instead of rounds) sent no faster (A/B twice, "
    "1,160/1,111 against 1,161/1,134 messages/s) and was dropped.")


async def main() -> None:
    direct = await kannel_direct(MESSAGES)
    print(f"Kannel sendsms directly: {direct:,.0f} messages/s")
    rows = [["Kannel sendsms driven directly (20 in flight, no delivery report)", MESSAGES, f"{direct:,.0f}", "1",
             "", "", ""]]
    rates, mine = await rows_of(ROOT, "notifications", direct)
    rows += mine
    for baseline in BASELINES:
        with tempfile.TemporaryDirectory() as scratch:
            rows += (await rows_of(tree_of(baseline, Path(scratch)), f"the service of commit {baseline}", direct,
                                   rates))[1]
    write_section(
        "notifications", "Notifications: SMS through Kannel", "make bench-notifications",
        table(["path", "messages", "messages/s", "ratio", "CPU ms/message: service", "FerretDB", "Kannel"], rows)
        + NOTES,
    )


if __name__ == "__main__":
    run(lambda: asyncio.run(main()))
