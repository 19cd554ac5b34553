"""make bench-intake: intake's throughput and latency beside raw aiokafka on the same broker.

Starts its own intake process (port 8101, topic bench-dossier-events) against the stack's Kafka,
so the running system's topics are untouched.
"""

import asyncio
import itertools
import statistics
import time

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench.harness import DURATION, knob, percentile, port, post, sample_events, session, stack_settings, start_service
from bench.report import table, write_section
from shared.kafka import STRUCTURED_HEADERS, client_options
from shared.kafka_acls import prepare
from shared.settings import ServiceSettings

PORT = port(8101)
TOPIC = "bench-dossier-events"
ROUNDS = knob("BENCH_INTAKE_ROUNDS", 3, 1)
EVENTS = knob("BENCH_INTAKE_EVENTS", 10_000, 1_000)
RATE = knob("BENCH_INTAKE_RATE", 300, 100)  # single events a second, for the latency


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


async def main() -> None:
    settings = stack_settings(topic_events=TOPIC)
    await prepare(settings)
    events = sample_events(EVENTS)
    singles = [orjson.dumps(e) for e in events]
    batches = [orjson.dumps(events[i : i + 100]) for i in range(0, len(events), 100)]
    records = [(e["subject"].encode(), s) for e, s in zip(events, singles, strict=True)]

    intake = start_service("intake", settings, PORT)
    try:
        # Alternate the two sides, ROUNDS times each, and compare medians: the machine drifts.
        batched, raw_batched, single, raw_single = [], [], [], []
        for n in range(1, ROUNDS + 1):
            print(f"round {n}/{ROUNDS}: batches of 100, then single events, intake and raw aiokafka …", flush=True)
            raw_batched.append(await raw_throughput(settings, records, 100, concurrency=4))
            batched.append(await intake_throughput(batches, "application/cloudevents-batch+json", 100, concurrency=4))
            raw_single.append(await raw_throughput(settings, records, 1, concurrency=16))
            single.append(await intake_throughput(singles, "application/cloudevents+json", 1, concurrency=16))
        print(f"intake, single events at {RATE} requests/s …", flush=True)
        latencies = await fixed_rate_latency(singles, RATE)
    finally:
        intake.terminate()
        intake.wait()
    batched, raw_batched, single, raw_single = map(statistics.median, (batched, raw_batched, single, raw_single))

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
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal: p99 ≤ 50 ms).\n"
    )
    print(body)
    write_section("intake", "Intake", "make bench-intake", body)


if __name__ == "__main__":
    asyncio.run(main())
