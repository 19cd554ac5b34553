"""make bench-intake: intake's throughput and latency beside raw aiokafka on the same broker, and the national
portal's format (`DongBoHoSoMC` batches on /v1/dvcqg, docs/dvcqg.md) beside the CloudEvents path in the same run.

Starts its own intake process (port 8101, topic bench-dossier-events) against the stack's Kafka,
so the running system's topics are untouched.
"""

import asyncio
import itertools
import statistics
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench.harness import (AUTH, DURATION, knob, percentile, port, post, sample_events, session, stack_settings,
                           start_service)
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
TOPIC = "bench-dossier-events"
ROUNDS = knob("BENCH_INTAKE_ROUNDS", 3, 1)
EVENTS = knob("BENCH_INTAKE_EVENTS", 10_000, 1_000)
RATE = knob("BENCH_INTAKE_RATE", 300, 100)  # single events a second, for the latency
SNAPSHOTS = knob("BENCH_INTAKE_SNAPSHOTS", 6_000, 600)  # DongBoHoSoMC records, 100 a request
STATUSES = (2, 4, 5, 9, 10, 10)  # a busy centre's syncs: new, in progress, awaiting a supplement, ended


def distinct_applicants(events: list[dict]) -> list[dict]:
    """The sample's receipts, each its own applicant's phone, as at a real centre (shared/personal.py indexes
    dossiers by citizen: one phone for every receipt would make one citizen of thousands of dossiers)."""
    for n, event in enumerate(e for e in events if e["type"] == "dossier.received"):
        event["data"]["applicant"] = event["data"]["applicant"] | {"phone": f"09{n:08d}"}
    return events


def portal_snapshots(n: int) -> list[dict]:
    """n DongBoHoSoMC records of distinct dossiers of Bá Thước's centre, at the statuses a sync carries; each its
    own applicant (one phone for all would make one citizen of thousands of dossiers: shared/personal.py)."""
    return [snapshot(STATUSES[i % len(STATUSES)], f"{UNIT}-{250701 + i // 9000 % 28}-{i % 9000 + 1:04d}",
                     SoDienThoai=f"09{i:08d}") for i in range(n)]


def steps_per_record(records: list[dict], ref: Reference) -> float:
    """The Kafka records (steps) a DongBoHoSoMC record becomes, on average (shared/dvcqg.py)."""
    batch = Batch("urn:bench", UNIT, datetime.now(UTC))
    return sum(len(record_events("DongBoHoSoMC", r, batch, ref)) for r in records) / len(records)


async def portal_throughput(bodies: list[bytes], per_body: int, concurrency: int) -> float:
    """DongBoHoSoMC records accepted a second (every one "00", its steps acknowledged by Kafka)."""
    sent = 0
    deadline = time.perf_counter() + DURATION

    async def worker(client: aiohttp.ClientSession, offset: int) -> None:
        nonlocal sent
        for i in itertools.count(offset, concurrency):
            if time.perf_counter() >= deadline:
                return
            async with client.post("/v1/dvcqg", data=bodies[i % len(bodies)],
                                   headers=AUTH | {"content-type": "application/json"}) as answer:
                found = await answer.json(content_type=None)
                if answer.status != 200 or found.get("error_code") != "00":
                    raise SystemExit(f"intake answered {answer.status} to DongBoHoSoMC: {str(found)[:500]}")
            sent += per_body

    async with session(PORT, concurrency) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client, n) for n in range(concurrency)))
        return sent / (time.perf_counter() - started)


async def intake_throughput(bodies: list[bytes], content_type: str, per_body: int, concurrency: int) -> float:
    sent = 0
    deadline = time.perf_counter() + DURATION

    async def worker(client: aiohttp.ClientSession, offset: int) -> None:
        nonlocal sent
        for i in itertools.count(offset, concurrency):
            if time.perf_counter() >= deadline:
                return
            await post(client, bodies[i % len(bodies)], content_type)
            sent += per_body

    async with session(PORT, concurrency) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client, n) for n in range(concurrency)))
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


async def fixed_rate_latency(bodies: list[bytes], rate: float) -> list[float]:
    """Open loop: one single-event request every 1/rate s, whatever the answers; their latencies."""
    latencies: list[float] = []

    async def one(client: aiohttp.ClientSession, body: bytes) -> None:
        started = time.perf_counter()
        await post(client, body, "application/cloudevents+json")
        latencies.append(time.perf_counter() - started)

    async with session(PORT, 200) as client:
        tasks = []
        started = time.perf_counter()
        for n in range(int(rate * DURATION)):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(client, bodies[n % len(bodies)])))
        await asyncio.gather(*tasks)
    return latencies


def portal_text(portal: float, steps: float, batched: float) -> str:
    """The portal format's paragraph and row: its records/s, their steps/s, beside the CloudEvents batches'."""
    row = ["DongBoHoSoMC, 100 records a request (4 in flight)", f"{portal:,.0f}", f"{portal * steps:,.0f}",
           f"{batched:,.0f}", f"{portal * steps / batched:.0%}", "≥ 50 %"]
    return (
        "The national portal's format in the same rounds (docs/dvcqg.md): `DongBoHoSoMC` snapshots of distinct "
        f"dossiers at statuses {', '.join(map(str, STATUSES))}, 100 a request, each answered \"00\" once its steps "
        f"(on average {steps:.1f} a snapshot: receipt, digitization, payment, supplement rounds, end, return, "
        "result) are acknowledged by Kafka. Beside: the CloudEvents batches above, Kafka records to Kafka records.\n\n"
        + table(["load", "portal records/s", "portal steps/s", "CloudEvents events/s", "steps / events", "goal"],
                [row]) + "\n")


async def main() -> None:
    # A database of this run's own: the dossiers' keys and the citizens' index (shared/personal.py) start empty.
    settings = stack_settings(topic_events=TOPIC, mongo_database=f"bench_intake_{uuid.uuid4().hex[:6]}")
    await prepare(settings)
    events = distinct_applicants(sample_events(EVENTS))
    singles = [orjson.dumps(e) for e in events]
    batches = [orjson.dumps(events[i : i + 100]) for i in range(0, len(events), 100)]
    records = [(e["subject"].encode(), s) for e, s in zip(events, singles, strict=True)]
    snapshots = portal_snapshots(SNAPSHOTS)
    portal_bodies = [orjson.dumps({"madonvi": UNIT, "service": "DongBoHoSoMC", "isUpdating": "False",
                                   "data": snapshots[i : i + 100]}) for i in range(0, len(snapshots), 100)]
    steps = steps_per_record(snapshots, Reference(load_units(), load_catalogue(), WorkingCalendar.load()))

    intake = start_service("intake", settings, PORT)
    try:
        # Alternate the sides, ROUNDS times each, and compare medians: the machine drifts.
        batched, raw_batched, single, raw_single, portal = [], [], [], [], []
        for n in range(1, ROUNDS + 1):
            print(f"round {n}/{ROUNDS}: batches of 100 (CloudEvents, the portal's format), then single events, "
                  "intake and raw aiokafka …", flush=True)
            raw_batched.append(await raw_throughput(settings, records, 100, concurrency=4))
            batched.append(await intake_throughput(batches, "application/cloudevents-batch+json", 100, concurrency=4))
            portal.append(await portal_throughput(portal_bodies, 100, concurrency=4))
            raw_single.append(await raw_throughput(settings, records, 1, concurrency=16))
            single.append(await intake_throughput(singles, "application/cloudevents+json", 1, concurrency=16))
        print(f"intake, single events at {RATE} requests/s …", flush=True)
        latencies = await fixed_rate_latency(singles, RATE)
    finally:
        intake.terminate()
        intake.wait()
    batched, raw_batched, single, raw_single, portal = map(
        statistics.median, (batched, raw_batched, single, raw_single, portal))

    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    rows = [
        ["batches of 100 (4 in flight)", f"{batched:,.0f}", f"{raw_batched:,.0f}", f"{batched / raw_batched:.0%}",
         "≥ 50 % of raw and ≥ 10,000/s"],
        ["single events (16 in flight)", f"{single:,.0f}", f"{raw_single:,.0f}", f"{single / raw_single:.0%}", "-"],
    ]
    body = (
        "Events accepted per second (HTTP `202`, every event acknowledged by Kafka with acks=all) beside raw "
        "aiokafka producing the same records with the same producer settings to the same broker, with as many "
        "records awaited at once. The load generator (aiohttp) runs on the same 2 cores, so intake shares them "
        f"with it and with Kafka. Medians of {ROUNDS} alternating rounds of {DURATION:g} s each.\n\n"
        + table(["load", "intake events/s", "raw aiokafka events/s", "intake / raw", "goal"], rows)
        + f"\n\nSingle events at a fixed {RATE} requests/s (open loop, {len(latencies):,} requests): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal: p99 ≤ 50 ms).\n\n" + portal_text(portal, steps, batched)
    )
    print(body)
    write_section("intake", "Intake", "make bench-intake", body)


if __name__ == "__main__":
    asyncio.run(main())
