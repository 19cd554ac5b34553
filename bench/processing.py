"""make bench-processing: replay speed into the database, and end-to-end latency at a fixed rate.

Both beside their baselines in the same run: the replay beside plain PyMongo bulk upserts of the
same events into the same database; latency measured from intake's 202 to the dossier's status
event, which processing publishes only after the state is written (so the state is readable).
Runs processing and intake of its own, on topics and a database of its own, on the `make up` stack.
"""

import asyncio
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

import bson
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient, InsertOne, UpdateOne

from bench.clock import BENCH_NOW
from bench.harness import DURATION, bench_settings, knob, percentile, port, post, run, sample_events, session, start_service
from bench.report import table, write_section
from shared.kafka import STRUCTURED_HEADERS, client_options
from shared.kafka_acls import prepare
from services.processing.history import StoredDossier, integrate
from services.processing.settings import ProcessingSettings
from services.processing.store import history_doc, link_to, published_docs
from shared.calendar import WorkingCalendar
from shared.events import parse_event_json
from shared.settings import ServiceSettings
from tests.fixtures.sample import VN, dossier_code
from tests.fixtures.sample import event as sample_event

PROCESSING_PORT, INTAKE_PORT = port(8102), port(8101)
REPLAY_EVENTS = knob("BENCH_REPLAY_EVENTS", 21_000, 700)
# FerretDB's SQLite backend scans the collection on every update: the upsert baseline gets a subset.
UPSERT_EVENTS = knob("BENCH_UPSERT_EVENTS", 3_500, 140)
RATE = knob("BENCH_PROCESSING_RATE", 500, 200)  # events a second, end to end
BATCH = ProcessingSettings.model_fields["processing_max_batch"].default  # as the service batches by default


async def prefill(settings: ServiceSettings, events: list[dict]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        sent = [
            await producer.send(settings.topic_events, orjson.dumps(e), key=e["subject"].encode(),
                                headers=STRUCTURED_HEADERS)
            for e in events
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def consumed(port: int) -> float:
    total = 0.0
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        if line.startswith("processing_events_total{"):
            total += float(line.split()[-1])
    return total


def replay(settings: ServiceSettings, count: int) -> float:
    """Events per second processing folds and writes, from a topic filled beforehand."""
    process = start_service("processing", settings, PROCESSING_PORT, now=BENCH_NOW)
    try:
        started = time.perf_counter()
        while consumed(PROCESSING_PORT) < count:
            time.sleep(0.25)
        return count / (time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait()


def batches_by_dossier(events: list[dict]) -> list[dict[str, list[str]]]:
    """The events as processing batches them: up to BATCH at a time, grouped by dossier."""
    batches = []
    for i in range(0, len(events), BATCH):
        by_dossier: dict[str, list[str]] = defaultdict(list)
        for e in events[i : i + BATCH]:
            by_dossier[e["subject"]].append(orjson.dumps(e).decode())
        batches.append(by_dossier)
    return batches


async def raw_baseline(settings: ServiceSettings, events: list[dict], upsert: bool) -> float:
    """The same events, batched as processing batches them, written with plain PyMongo bulk writes:
    one document per dossier and batch (inserts), or upserts by _id pushing the events."""
    client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    collection = client[settings.mongo_database]["baseline_upserts" if upsert else "baseline_inserts"]
    try:
        started = time.perf_counter()
        for n, batch in enumerate(batches_by_dossier(events)):
            if upsert:
                operations = [UpdateOne({"_id": code}, {"$push": {"events": {"$each": raws}}}, upsert=True)
                              for code, raws in batch.items()]
            else:
                operations = [InsertOne({"_id": f"{code}#{n}", "events": raws}) for code, raws in batch.items()]
            await collection.bulk_write(operations, ordered=False)
        return len(events) / (time.perf_counter() - started)
    finally:
        await client.close()


async def end_to_end(settings: ServiceSettings, rate: float) -> list[float]:
    """Open loop: one new dossier's receipt every 1/rate s through intake; 202 -> status event."""
    accepted: dict[str, float] = {}
    announced: dict[str, float] = {}
    consumer = AIOKafkaConsumer(settings.topic_status, **client_options(settings),
                                auto_offset_reset="latest")
    await consumer.start()
    await asyncio.sleep(1)  # the consumer has its partitions before the first post

    async def listen() -> None:
        async for record in consumer:
            announced.setdefault(record.key.decode(), time.perf_counter())

    listener = asyncio.create_task(listen())
    events = sample_events(int(rate * DURATION) * 7, first_sequence=500_000)[::7]  # the receipts only
    async with session(INTAKE_PORT, 200) as client:

        async def one(event: dict) -> None:
            await post(client, orjson.dumps(event), "application/cloudevents+json")
            accepted[event["subject"]] = time.perf_counter()

        tasks = []
        started = time.perf_counter()
        for n, event in enumerate(events):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(event)))
        await asyncio.gather(*tasks)
    deadline = time.perf_counter() + 30
    while len(announced) < len(accepted) and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    listener.cancel()
    await consumer.stop()
    missing = len(accepted) - len(announced)
    if missing:
        raise SystemExit(f"{missing} dossiers were not announced within 30 s")
    return [announced[code] - accepted[code] for code in accepted]


def written_per_event(counts: tuple[int, ...] = (1, 10, 50, 100)) -> dict[int, dict[str, int]]:
    """Bytes processing's store writes (BSON) when a dossier's n-th event is applied, for a dossier transferred
    again and again: its link (the change), its summary and, at a checkpoint, its history (once the outbox
    is published); in all from the first event to the n-th, by event; and what a summary holding the whole
    history (the store until 2026-12-05, written at every event) cost beside the link."""
    calendar = WorkingCalendar.load()
    start = datetime(2025, 7, 7, 9, tzinfo=VN)
    code = dossier_code(start, sequence=1)
    events = [sample_event("dossier.received", code, start)]
    events += [sample_event("dossier.transferred", code, start + timedelta(minutes=10 * n)) for n in range(1, max(counts))]
    stored, written, total, whole_total = StoredDossier(code), {}, 0, 0
    for n, one in enumerate(events, 1):
        raw = orjson.dumps(one)
        after = integrate(stored, [(parse_event_json(raw), raw)], calendar, start + timedelta(days=1)).stored
        after = replace(after, version=stored.version + 1)
        link = len(bson.encode(link_to(stored, after).to_doc()))
        history, summary = published_docs(replace(after, outbox=[]))
        sizes = {"link": link, "summary": len(bson.encode(summary)),
                 "history": len(bson.encode(history)) if history else 0,
                 "whole": len(bson.encode(history_doc(replace(after, outbox=[]))))}
        total += sizes["link"] + sizes["summary"] + sizes["history"]
        whole_total += sizes["link"] + sizes["whole"]
        if n in counts:
            written[n] = sizes | {"per_event": total // n, "whole_per_event": whole_total // n}
        stored = replace(after, outbox=[])
    return written


def written_section() -> str:
    """The bytes written for an event, now and as the store wrote them before its histories."""
    return (
        "\nBytes written to the store when a dossier's n-th event is applied (BSON; a dossier transferred "
        "again and again; issue 26, item 5): the link (the change), the summary (where the dossier stands: "
        "its lookup's list of steps grows about 100 bytes an event) and, at versions 1, 8, 16, 32, ..., its "
        "whole history; beside them, the store before 2026-12-05, whose summary held the whole "
        "history and was written at every event.\n\n"
        + table(["event", "link", "summary", "history (checkpoints)", "written for it", "events 1..n, by event",
                 "before: for it", "before: 1..n, by event", "before / now (1..n)"],
                [[f"{n:,}", f"{w['link']:,}", f"{w['summary']:,}", f"{w['history']:,}",
                  f"{w['link'] + w['summary'] + w['history']:,}", f"{w['per_event']:,}",
                  f"{w['link'] + w['whole']:,}", f"{w['whole_per_event']:,}",
                  f"{w['whole_per_event'] / w['per_event']:.1f}×"]
                 for n, w in written_per_event().items()])
        + "\n"
    )


async def main() -> None:
    replay_settings = bench_settings("replay")
    await prepare(replay_settings)
    events = sample_events(REPLAY_EVENTS)
    print(f"filling a topic with {len(events):,} events …", flush=True)
    await prefill(replay_settings, events)
    print("processing replays it …", flush=True)
    replayed = replay(replay_settings, len(events))
    print("plain PyMongo bulk inserts of the same events …", flush=True)
    inserts = await raw_baseline(replay_settings, events, upsert=False)
    print(f"plain PyMongo bulk upserts of the first {UPSERT_EVENTS:,} …", flush=True)
    upserts = await raw_baseline(replay_settings, events[:UPSERT_EVENTS], upsert=True)

    latency_settings = bench_settings("latency")
    await prepare(latency_settings)
    processing = start_service("processing", latency_settings, PROCESSING_PORT, now=BENCH_NOW)
    intake = start_service("intake", latency_settings, INTAKE_PORT, now=BENCH_NOW)
    try:
        print(f"end to end at {RATE} events/s …", flush=True)
        latencies = await end_to_end(latency_settings, RATE)
    finally:
        for process in (intake, processing):
            process.terminate()
            process.wait()

    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    body = (
        f"Replay: {len(events):,} events of whole dossier lives (7 events each) pre-filled on a 6-partition topic, "
        f"folded and written by one processing instance (batches of up to {BATCH:,}) into FerretDB (SQLite). "
        "Baselines, batched the same way with plain PyMongo bulk writes into the same database: one inserted "
        "document per dossier and batch (the operation processing's store is built on), and upserts by `_id` "
        f"pushing the events (first {UPSERT_EVENTS:,} events only: FerretDB's SQLite backend scans the whole "
        "collection for every update, which is why the store never updates).\n\n"
        + table(
            ["measure", "events/s", "processing / this"],
            [
                ["processing replay (goal ≥ 3,000/s and ≥ 50 % of the baseline)", f"{replayed:,.0f}", "-"],
                ["baseline: plain bulk inserts", f"{inserts:,.0f}", f"{replayed / inserts:.0%}"],
                ["baseline: plain bulk upserts by _id", f"{upserts:,.0f}", f"{replayed / upserts:.0%}"],
            ],
        )
        + f"\n\nEnd to end at {RATE} events/s (open loop, {len(latencies):,} new dossiers through intake): "
        "from intake's "
        f"`202` to the dossier's status event, published after its state is written: p50 {p50:.0f} ms, "
        f"p99 {p99:.0f} ms (goal: p99 ≤ 1 s).\n"
        + written_section()
    )
    print(body)
    write_section("processing", "Processing", "make bench-processing", body)


if __name__ == "__main__":
    run(lambda: asyncio.run(main()))
