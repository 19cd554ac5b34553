"""make bench-intake: intake's throughput and latency beside raw aiokafka on the same broker, and the national
portal's format (`DongBoHoSoMC` batches on /v1/dvcqg, docs/dvcqg.md) beside the CloudEvents path in the same run,
each beside intake as it was at a baseline commit (by default the last before the applicant was sealed, issue 23
finding 6), run from that commit's files against the same broker in the same rounds.

Starts its own intake processes (ports 8101 and, for the baseline, 8102; topic bench-dossier-events) against the
stack's Kafka, so the running system's topics are untouched. BENCH_INTAKE_BASELINE=<rev or directory> picks
the baseline.
"""

import asyncio
import contextlib
import itertools
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench.clock import BENCH_NOW
from bench.cpu import tree_of
from bench.harness import (AUTH, DURATION, RUNS, knob, percentile, port, post, run, sample_events, session,
                           stack_settings, start_service)
from bench.report import table, write_section
from shared.kafka import STRUCTURED_HEADERS, client_options
from shared.kafka_acls import prepare
from shared.calendar import WorkingCalendar
from shared.catalogue import load_catalogue
from shared.dvcqg import Batch, Reference, record_events
from shared.settings import ServiceSettings
from shared.units import load_units
from tests.fixtures.dvcqg import UNIT, snapshot

PORT = port(8101)
BASE_PORT = port(8102)
# main just before the merge of per-dossier keys (36cb6f9, issue 23 finding 6): both doors, nothing sealed
BASELINE = os.environ.get("BENCH_INTAKE_BASELINE", "c965cb6")
TOPIC = "bench-dossier-events"
ROUNDS = knob("BENCH_INTAKE_ROUNDS", 3, 1)
EVENTS = knob("BENCH_INTAKE_EVENTS", 30_000, 1_000)
RATE = knob("BENCH_INTAKE_RATE", 300, 100)  # single events a second, for the latency
SNAPSHOTS = knob("BENCH_INTAKE_SNAPSHOTS", 6_000, 600)  # DongBoHoSoMC records, 100 a request
STATUSES = (2, 4, 5, 9, 10, 10)  # a busy centre's syncs: new, in progress, awaiting a supplement, ended


def distinct_applicants(events: list[dict], first: int = 0) -> list[dict]:
    """The sample's receipts, each its own applicant's phone (from number `first` on), as at a real centre
    (shared/personal.py indexes dossiers by citizen: one phone for every receipt would make one citizen of
    thousands of dossiers)."""
    for n, event in enumerate((e for e in events if e["type"] == "dossier.received"), start=first):
        event["data"]["applicant"] = event["data"]["applicant"] | {"phone": f"09{n:08d}"}
    return events


def portal_snapshots(n: int, first: int = 0) -> list[dict]:
    """n DongBoHoSoMC records of distinct dossiers of Bá Thước's centre (from number `first` on), at the statuses
    a sync carries; each its own applicant (one phone for all would make one citizen of thousands of dossiers:
    shared/personal.py), none the CloudEvents receipts' (08…, theirs 09…: a citizen's second dossier costs more
    than a first)."""
    return [snapshot(STATUSES[i % len(STATUSES)], f"{UNIT}-{250701 + i // 9000 % 28}-{i % 9000 + 1:04d}",
                     SoDienThoai=f"08{i:08d}") for i in range(first, first + n)]


def bodies(round_: int) -> dict[str, Any]:
    """The bodies sent: round 0's are the rounds' below too; each first-send round after it has dossiers and
    applicants of its own, new to the database."""
    events = distinct_applicants(sample_events(EVENTS, first_sequence=round_ * 100_000), first=round_ * 10**6)
    singles = [orjson.dumps(e) for e in events]
    snapshots = portal_snapshots(SNAPSHOTS, first=round_ * SNAPSHOTS)
    return {"events": events, "snapshots": snapshots, "singles": singles,
            "batches": [orjson.dumps(events[i : i + 100]) for i in range(0, len(events), 100)],
            "records": [(e["subject"].encode(), s) for e, s in zip(events, singles, strict=True)],
            "portal": [orjson.dumps({"madonvi": UNIT, "service": "DongBoHoSoMC", "isUpdating": "False",
                                     "data": snapshots[i : i + 100]}) for i in range(0, len(snapshots), 100)]}


def steps_per_record(records: list[dict], ref: Reference) -> float:
    """The Kafka records (steps) a DongBoHoSoMC record becomes, on average (shared/dvcqg.py)."""
    batch = Batch("urn:bench", UNIT, datetime.now(UTC))
    return sum(len(record_events("DongBoHoSoMC", r, batch, ref)) for r in records) / len(records)


async def portal_post(client: aiohttp.ClientSession, body: bytes) -> None:
    """One DongBoHoSoMC request, every record answered "00" (its steps acknowledged by Kafka)."""
    async with client.post("/v1/dvcqg", data=body, headers=AUTH | {"content-type": "application/json"}) as answer:
        found = await answer.json(content_type=None)
        if answer.status != 200 or found.get("error_code") != "00":
            raise SystemExit(f"intake answered {answer.status} to DongBoHoSoMC: {str(found)[:500]}")


async def portal_throughput(at: int, bodies: list[bytes], per_body: int, concurrency: int) -> float:
    """DongBoHoSoMC records accepted a second, cycling through the bodies for DURATION."""
    return await throughput(at, bodies, portal_post, per_body, concurrency)


async def intake_throughput(at: int, bodies: list[bytes], content_type: str, per_body: int,
                            concurrency: int) -> float:
    """CloudEvents accepted a second, cycling through the bodies for DURATION."""
    return await throughput(at, bodies, lambda client, body: post(client, body, content_type), per_body, concurrency)


async def throughput(at: int, bodies: list[bytes], send: Callable[[aiohttp.ClientSession, bytes], Awaitable[None]],
                     per_body: int, concurrency: int, once: bool = False) -> float:
    """Items accepted a second: `concurrency` senders through the bodies, for DURATION or, `once`, each body once."""
    sent = 0
    deadline = time.perf_counter() + DURATION
    order = itertools.count()

    async def worker(client: aiohttp.ClientSession) -> None:
        nonlocal sent
        for i in order:
            if (i >= len(bodies)) if once else (time.perf_counter() >= deadline):
                return
            await send(client, bodies[i % len(bodies)])
            sent += per_body

    async with session(at, concurrency) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return sent / (time.perf_counter() - started)


async def raw_throughput(
    settings: ServiceSettings, records: list[tuple[bytes, bytes]], per_await: int, concurrency: int
) -> float:
    """The same records with the same producer settings: `concurrency` senders, each awaiting
    the acknowledgements of `per_await` records at a time, as intake's requests do."""
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", enable_idempotence=True,
        linger_ms=2, max_batch_size=256 * 1024,
    )
    await producer.start()
    sent = 0
    deadline = time.perf_counter() + DURATION

    async def sender(offset: int) -> None:
        nonlocal sent
        for i in itertools.count(offset * per_await, concurrency * per_await):
            if time.perf_counter() >= deadline:
                return
            futures = []
            for key, value in (records[(i + n) % len(records)] for n in range(per_await)):
                futures.append(await producer.send(TOPIC, value=value, key=key, headers=STRUCTURED_HEADERS))
            await asyncio.gather(*futures)
            sent += per_await

    try:
        started = time.perf_counter()
        await asyncio.gather(*(sender(n) for n in range(concurrency)))
        return sent / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def fixed_rate_latency(at: int, bodies: list[bytes], rate: float) -> list[float]:
    """Open loop: one single-event request every 1/rate s, whatever the answers; their latencies."""
    latencies: list[float] = []

    async def one(client: aiohttp.ClientSession, body: bytes) -> None:
        started = time.perf_counter()
        await post(client, body, "application/cloudevents+json")
        latencies.append(time.perf_counter() - started)

    async with session(at, 200) as client:
        tasks = []
        started = time.perf_counter()
        for n in range(int(rate * DURATION)):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(client, bodies[n % len(bodies)])))
        await asyncio.gather(*tasks)
    return latencies


def portal_text(portal: dict[str, float], steps: float, batched: float) -> str:
    """The portal format's paragraph and rows: its records/s, their steps/s, beside the CloudEvents batches'."""
    rows = [[f"DongBoHoSoMC, 100 records a request (4 in flight), {side}", f"{records:,.0f}", f"{records * steps:,.0f}",
             f"{batched:,.0f}", f"{records * steps / batched:.0%}", "≥ 50 %" if side == "now" else "-"]
            for side, records in portal.items()]
    return (
        "The national portal's format in the same rounds (docs/dvcqg.md): `DongBoHoSoMC` snapshots of distinct "
        f"dossiers at statuses {', '.join(map(str, STATUSES))}, 100 a request, each answered \"00\" once its steps "
        f"(on average {steps:.1f} a snapshot: receipt, digitization, payment, supplement rounds, end, return, "
        "result) are acknowledged by Kafka. Beside: the CloudEvents batches above (now), Kafka records to Kafka "
        "records.\n\n"
        + table(["load", "portal records/s", "portal steps/s", "CloudEvents events/s", "steps / events", "goal"],
                rows) + "\n")


class Intakes:
    """This tree's intake and, unless BENCH_INTAKE_BASELINE is empty, the baseline commit's, started from its
    files (unpacked: no work tree of git's) on the same stack."""

    def __init__(self, settings: ServiceSettings, scratch: Path):
        self.settings = settings
        self.trees: dict[str, Path] = {"now": Path.cwd()}
        self.ports = {"now": PORT}
        if BASELINE:  # a commit, or a directory of files (an experiment's)
            self.trees[f"at {BASELINE}"] = Path(BASELINE) if Path(BASELINE).is_dir() else \
                tree_of(BASELINE, scratch / "baseline")
            self.ports[f"at {BASELINE}"] = BASE_PORT
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, side: str) -> None:
        with contextlib.chdir(self.trees[side]):  # `python -m` imports from the working directory
            self.processes[side] = start_service("intake", self.settings, self.ports[side], now=BENCH_NOW)

    def stop(self, side: str) -> None:
        self.processes[side].terminate()
        self.processes[side].wait()

    def restart(self, side: str) -> None:
        """Stopped and started again: what it kept in memory (this tree's: recent keys) is gone."""
        self.stop(side)
        self.start(side)


@contextlib.contextmanager
def intakes(settings: ServiceSettings) -> Iterator[Intakes]:
    with tempfile.TemporaryDirectory() as scratch:
        started = Intakes(settings, Path(scratch))
        try:
            for side in started.ports:
                started.start(side)
            yield started
        finally:
            for side in list(started.processes):
                started.stop(side)


async def first_sends(started: Intakes, loads: list[dict[str, list]]) -> dict[str, float]:
    """Each body sent once, 4 in flight, on each side: the dossiers new to this tree's intake, then the same again
    after a restart of both sides (keys in the database, none in memory); a round of each load, the sides taking
    turns. Events or portal records a second, the median of the rounds (one pass is a couple of seconds: a
    single one swung by a third from run to run)."""
    measured: dict[str, list[float]] = {}
    batch = partial(post, content_type="application/cloudevents-batch+json")
    for n, load in enumerate(loads, start=1):
        for regime in ("new", "again"):
            for side in started.ports if regime == "again" else ():
                started.restart(side)
            for side, at in started.ports.items():
                print(f"round {n}/{len(loads)}: each body once ({regime}), intake ({side}) …", flush=True)
                measured.setdefault(f"batched {regime} {side}", []).append(
                    await throughput(at, load["batches"], batch, 100, 4, once=True))
                measured.setdefault(f"portal {regime} {side}", []).append(
                    await throughput(at, load["portal"], portal_post, 100, 4, once=True))
    return {name: statistics.median(values) for name, values in measured.items()}


def first_sends_text(sides: list[str], measured: dict[str, float], events: int, receipts: int, records: int) -> str:
    """The paragraph and table of `first_sends`."""
    base = next((side for side in sides if side != "now"), None)
    rows = [[what] + [f"{measured[f'{kind} {regime} {side}']:,.0f}" for side in sides]
            + ([f"{measured[f'{kind} {regime} now'] / measured[f'{kind} {regime} {base}']:.0%}"] if base else [])
            for kind, regime, what in (
                ("batched", "new", "CloudEvents batches of 100, new dossiers"),
                ("batched", "again", "CloudEvents batches of 100, sent again after a restart"),
                ("portal", "new", "DongBoHoSoMC, 100 records a request, new dossiers"),
                ("portal", "again", "DongBoHoSoMC, 100 records a request, sent again after a restart"))]
    return (
        f"Each body sent once, 4 requests in flight, before the rounds below: {events:,} CloudEvents ({receipts:,} "
        f"receipts) and {records:,} portal records, every dossier new to the database; then the same again after "
        "both intakes restarted, the keys in the database and none in memory (a dossier a portal syncs again hours "
        f"later). Medians of {ROUNDS} rounds, each of dossiers and applicants of its own, the sides taking turns. "
        "Events or portal records a second.\n\n"
        + table(["load", *(f"intake {side}" for side in sides), *(["now / baseline"] if base else [])], rows)
        + "\n\n"
        "What a first send costs (issue 23, finding 6): each receipt's dossier key, read or made in the database "
        "(shared/personal.py) with those of the requests that come meanwhile, in one go (shared/group_commit.py). "
        "Each batch's keys are read first, by `_id`, in one query (our FerretDB's id-in patch, README): a "
        "dossier sent again costs that read alone; a new one is then listed for its citizen, and its key "
        "inserted. Before 2026-12-06, the CloudEvents door tried the citizens' first links first, sparing a new "
        "dossier the read, and FerretDB wrote a batch of links already there again one document at a time: "
        "receipts sent again after a restart at 62-72 % of c965cb6 (runs of 95d0176 and 8f6ee5d). Before "
        "2026-12-05 (a query a key, phone numbers parsed in full, each request on its own), in the run of "
        "0c6ce55: 89 %, 50 %, 112 % and 61 % of c965cb6. Where the difference goes (by hand, 2026-12-07, a "
        "pass of new dossiers): intake's CPU is either side's limit (c965cb6's intake was busy ~95 % of the "
        "pass). A go of keys costs intake ~0.75 ms of CPU (its three statements, ~250 µs of PyMongo's each: "
        "the read, the citizens' first links, the keys) and ~24 µs a receipt, and the requests wait for it: "
        "at 4 in flight, this tree's intake was busy 75-80 % of the pass. With more requests in flight the "
        "waits overlap: at 8, 86 % of c965cb6; at 16, 112 %. Two goes at once gained nothing, nor would "
        "PyMongo's `find` command in place of a cursor (the same CPU, by hand).\n\n")


async def rounds(settings: ServiceSettings, sides: dict[str, int], load: dict[str, list]) -> dict[str, list[float]]:
    """ROUNDS alternating rounds (the machine drifts): raw aiokafka, then each side, per kind of load."""
    measured: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        measured.setdefault(name, []).append(value)

    for n in range(1, ROUNDS + 1):
        print(f"round {n}/{ROUNDS}: batches of 100 (CloudEvents, the portal's format), then single events, "
              f"raw aiokafka and intake ({', '.join(sides)}) …", flush=True)
        keep("batched raw", await raw_throughput(settings, load["records"], 100, concurrency=4))
        for side, at in sides.items():
            keep(f"batched {side}", await intake_throughput(at, load["batches"], "application/cloudevents-batch+json",
                                                            100, concurrency=4))
            keep(f"portal {side}", await portal_throughput(at, load["portal"], 100, concurrency=4))
        keep("single raw", await raw_throughput(settings, load["records"], 1, concurrency=16))
        for side, at in sides.items():
            keep(f"single {side}", await intake_throughput(at, load["singles"], "application/cloudevents+json", 1,
                                                           concurrency=16))
    return measured


def report(sides: list[str], medians: dict[str, float], latencies: dict[str, list[float]], steps: float) -> str:
    """The section's text: the CloudEvents rows (each side beside raw aiokafka), latencies, the portal's rows."""
    rows = [[f"{load}, {side}", f"{medians[f'{kind} {side}']:,.0f}", f"{medians[f'{kind} raw']:,.0f}",
             f"{medians[f'{kind} {side}'] / medians[f'{kind} raw']:.0%}",
             f"{medians[f'{kind} now'] / medians[f'{kind} {side}']:.0%}" if side != "now" else "-",
             goal if side == "now" else "-"]
            for kind, load, goal in (("batched", "batches of 100 (4 in flight)", "≥ 50 % of raw and ≥ 10,000/s"),
                                     ("single", "single events (16 in flight)", "-"))
            for side in sides]
    timed = "; ".join(f"{side}: p50 {percentile(values, 50) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms"
                      for side, values in latencies.items())
    return (
        "Events accepted per second (HTTP `202`, every event acknowledged by Kafka with acks=all) beside raw "
        "aiokafka producing the same records with the same producer settings to the same broker, with as many "
        "records awaited at once, and beside intake at the baseline commit, run from its own files against the "
        "same broker in the same rounds. The load generator (aiohttp) runs on the same 2 cores, so intake shares "
        f"them with it and with Kafka. Medians of {ROUNDS} alternating rounds of {DURATION:g} s each. The requests "
        "cycle through the bodies sent above: every receipt is one sent again, within minutes (as a portal's "
        "snapshots are), its key in this tree's intake's memory.\n\n"
        + table(["load, intake", "intake events/s", "raw aiokafka events/s", "intake / raw", "now / this",
                 "goal"], rows)
        + f"\n\nSingle events at a fixed {RATE} requests/s (open loop, {len(latencies['now']):,} requests each): "
        f"{timed} (goal: p99 ≤ 50 ms).\n\n"
        + portal_text({side: medians[f"portal {side}"] for side in sides}, steps, medians["batched now"])
    )


async def main() -> None:
    # A database of this run's own: the dossiers' keys and the citizens' index (shared/personal.py) start empty.
    settings = stack_settings(topic_events=TOPIC, mongo_database=f"bench_intake_{uuid.uuid4().hex[:6]}")
    RUNS.append(settings)  # dropped at the end (bench/harness.py)
    await prepare(settings)
    loads = [bodies(n) for n in range(ROUNDS)]
    load = loads[0]
    events, singles, snapshots = load["events"], load["singles"], load["snapshots"]
    steps = steps_per_record(snapshots, Reference(load_units(), load_catalogue(), WorkingCalendar.load()))
    with intakes(settings) as started:
        sides = started.ports
        once = await first_sends(started, loads)
        measured = await rounds(settings, sides, load)
        latencies = {}
        for side, at in sides.items():
            print(f"intake ({side}), single events at {RATE} requests/s …", flush=True)
            latencies[side] = await fixed_rate_latency(at, singles, RATE)
    receipts = sum(e["type"] == "dossier.received" for e in events)
    body = (first_sends_text(list(sides), once, len(events), receipts, len(snapshots))
            + report(list(sides), {name: statistics.median(values) for name, values in measured.items()}, latencies,
                     steps))
    print(body)
    write_section("intake", "Intake", "make bench-intake", body)


if __name__ == "__main__":
    run(lambda: asyncio.run(main()))
