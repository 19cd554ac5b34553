"""make bench-e2e: the whole pipeline at increasing rates, until the end-to-end p99 passes 2 s.

Whole dossier lives (7 events each, interleaved as a busy centre sends them) are posted through
intake in an open loop, a batch every 50 ms, at 250, 500, 1,000, … events/s, each rate for
BENCH_STEP_SECONDS, after a short warm-up. End to end is intake's `202` → the metrics service's report API counting the
dossier: the report for the commune is polled every 50 ms, and the k-th receipt accepted is
reflected once the report counts k dossiers. Per step: the rate reached, p50/p99, CPU and peak
memory of each service, the consumer lag left at the end. Beside it, in the same run and on the
same stack, the raw baselines the ratios are taken against: aiokafka producing and consuming the
same events, PyMongo bulk inserts and upserts of them.

Runs intake, processing and metrics of its own (topics and database of its own) on the `make up`
stack.
"""

import asyncio
import contextlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.clock import BENCH_NOW
from bench.cpu import tree_of
from bench.harness import AUTH, ROOT, bench_settings, knob, percentile, port, post, run, sample_events, session, stack_pid, start_service
from bench.processing import UPSERT_EVENTS, raw_baseline
from bench.report import table, write_section
from shared.kafka import STRUCTURED_HEADERS, client_options
from shared.kafka_acls import prepare
from shared.settings import ServiceSettings

PORTS = {"intake": port(8111), "processing": port(8112), "metrics": port(8113)}
STEP_SECONDS = knob("BENCH_STEP_SECONDS", 10.0, 1.0)
# The commit whose services run the same steps after this tree's, on the same stack: the session's start, before
# the citizens' index chains were read from where they ended (commits before Kafka's logins cannot run on it).
BASELINE = os.environ.get("BENCH_E2E_BASELINE", "3c2140a")
RATES = [int(r) for r in knob("BENCH_RATES", "250,500,1000,1500,2000,2500,3000,4000", "250").split(",")]
WARM_UP = knob("BENCH_WARM_UP_EVENTS", 300, 70)  # at 100 events/s, not reported
BASELINE_EVENTS = knob("BENCH_BASELINE_EVENTS", 20_000, 700)
TICK = 0.05
COMMUNE = "14923"  # the sample dossiers' receiving unit
REPORT = f"http://127.0.0.1:{PORTS['metrics']}/v1/reports/communes/{COMMUNE}"
COHORT = {"from": "2025-01-01", "to": "2026-12-31"}  # every sample dossier's receipt date
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    cpu_seconds: float
    peak_rss_mib: float


def usage(pid: int) -> Usage:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    peak = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    return Usage(cpu, peak / 1024)


# What shares the machine with the services, measured the same way: where the cores went at each step.
OTHERS = ("kafka", "ferretdb", "load")


def the_rest() -> dict[str, int]:
    """The pids of the stack's Kafka and FerretDB (DOSSIER_STACK_DIR/run) and of this process, the load."""
    return {"kafka": stack_pid("kafka"), "ferretdb": stack_pid("ferretdb"), "load": os.getpid()}


def consumer_lag() -> int:
    lag = 0
    for name in ("processing", "metrics"):
        for line in httpx.get(f"http://127.0.0.1:{PORTS[name]}/metrics").text.splitlines():
            if "consumer_lag" in line and not line.startswith("#"):
                lag += int(float(line.split()[-1]))
    return lag


def reported() -> int:
    answer = httpx.get(REPORT, params=COHORT, headers=AUTH, timeout=10)
    return answer.json()["received"]


@dataclass
class Step:
    rate: int
    reached: float
    receipts: int
    p50: float
    p99: float
    drained: bool  # every accepted receipt reflected, and no post failed or timed out
    lag: int
    cpu: dict[str, float]  # share of one core over the step
    rss: dict[str, float]


async def step(rate: int, events: list[dict], already: int, pids: dict[str, int]) -> Step:
    """`events` at `rate` per second; latency of each receipt from 202 to the report counting it."""
    accepted: list[float] = []  # the time each receipt was accepted, in order
    reflected: list[float] = []  # the time the report first counted k dossiers beyond `already`
    before = {name: usage(pid) for name, pid in pids.items()}
    failures: list[list[dict]] = []
    done = asyncio.Event()

    async def poll() -> None:
        async with httpx.AsyncClient(timeout=10, headers=AUTH) as client:
            while not done.is_set() or len(reflected) < len(accepted):
                answer = await client.get(REPORT, params=COHORT)
                now = time.perf_counter()
                count = answer.json()["received"] - already
                reflected.extend([now] * (count - len(reflected)))
                if done.is_set() and now > finished + 30:
                    return
                await asyncio.sleep(TICK)

    async with session(PORTS["intake"], 100) as client:

        async def send(batch: list[dict]) -> None:
            try:
                await post(client, orjson.dumps(batch), "application/cloudevents-batch+json")
            except (TimeoutError, aiohttp.ClientError):  # refused or not answered in 30 s
                failures.append(batch)
                return
            now = time.perf_counter()
            accepted.extend(now for e in batch if e["type"] == "dossier.received")

        poller = asyncio.create_task(poll())
        started = time.perf_counter()
        sends = []
        ticks = math.ceil(len(events) / (rate * TICK))
        for n in range(ticks):  # tick n sends what is due by its end: the rate holds without rounding
            await asyncio.sleep(max(0.0, started + n * TICK - time.perf_counter()))
            batch = events[round(n * rate * TICK): round((n + 1) * rate * TICK)]
            if batch:
                sends.append(asyncio.create_task(send(batch)))
        await asyncio.gather(*sends)
        finished = time.perf_counter()
        reached = len(events) / (finished - started)
        done.set()
        await poller
    after = {name: usage(pid) for name, pid in pids.items()}
    elapsed = time.perf_counter() - started
    accepted.sort()
    latencies = [r - a for a, r in zip(accepted, reflected)]
    drained = len(reflected) >= len(accepted) and not failures
    if not drained:  # what was never reflected counts as the longest wait
        latencies += [elapsed + 30] * (len(accepted) - len(reflected))
    return Step(rate, reached, len(accepted), percentile(latencies, 50), percentile(latencies, 99), drained,
                consumer_lag(), {n: (after[n].cpu_seconds - before[n].cpu_seconds) / elapsed for n in pids},
                {n: after[n].peak_rss_mib for n in pids})


async def raw_kafka(settings: ServiceSettings, events: list[dict]) -> float:
    """aiokafka alone: produce the events (acks=all, idempotent, as intake) and consume them back."""
    producer = AIOKafkaProducer(**client_options(settings), acks="all",
                                enable_idempotence=True, linger_ms=5)
    consumer = AIOKafkaConsumer(settings.topic_events, **client_options(settings),
                                auto_offset_reset="earliest", group_id="raw-baseline", max_poll_records=500)
    await producer.start()
    await consumer.start()
    try:
        started = time.perf_counter()
        sent = [await producer.send(settings.topic_events, orjson.dumps(e), key=e["subject"].encode(),
                                    headers=STRUCTURED_HEADERS) for e in events]
        await asyncio.gather(*sent)
        received = 0
        while received < len(events):
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                received += sum(orjson.loads(r.value)["id"] is not None for r in records)
        return len(events) / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


def report(steps: list[Step], kafka: float, inserts: float, upserts: float) -> str:
    """docs/benchmarks.md's section, from the steps and the baselines measured in the same run."""
    good = [s for s in steps if s.p99 <= 2 and s.drained and s.reached >= 0.95 * s.rate]
    sustained = max((s.reached for s in good), default=0.0)
    at_500 = next((s for s in steps if s.rate == 500), None)
    rows = [[f"{s.rate:,}", f"{s.reached:,.0f}", f"{s.p50 * 1000:,.0f}", f"{s.p99 * 1000:,.0f}", s.lag,
             " / ".join(f"{s.cpu[n]:.0%}" for n in PORTS), " / ".join(f"{s.cpu[n]:.0%}" for n in OTHERS),
             " / ".join(f"{s.rss[n]:.0f}" for n in PORTS)]
            for s in steps]
    return (
        f"Whole dossier lives (7 events each) posted through intake in an open loop, one batch every "
        f"{TICK * 1000:.0f} ms, each rate for {STEP_SECONDS:g} s, until the p99 from intake's `202` to the report "
        "API counting the dossier passes 2 s. intake, processing and metrics (one instance each) share the "
        "machine with Kafka, FerretDB and the load generator.\n\n"
        + table(["target events/s", "reached", "p50 ms", "p99 ms", "lag at end",
                 "CPU (intake / processing / metrics)", "CPU (Kafka / FerretDB / load generator)",
                 "peak RSS MiB (intake / processing / metrics)"], rows)
        + f"\n\nSustained end to end (p99 ≤ 2 s, rate reached): **{sustained:,.0f} events/s** (goal ≥ 2,000)"
        + (f"; at 500 events/s p99 {at_500.p99 * 1000:,.0f} ms (goal ≤ 1 s)" if at_500 else "")
        + f"; highest peak RSS {max(s.rss[n] for s in steps for n in PORTS):,.0f} MiB (goal < 500 MiB per service). "
        "CPU is each process's share of one core over the step (the machine has "
        f"{os.cpu_count()}).\n\n"
        + "Baselines in the same run, same stack, same events:\n\n"
        + table(["baseline", "events/s", "end to end / baseline"], [
            [f"aiokafka produce (acks=all) + consume, {BASELINE_EVENTS:,} events", f"{kafka:,.0f}",
             f"{sustained / kafka:.0%}"],
            ["PyMongo bulk inserts (a document per dossier and batch)", f"{inserts:,.0f}", f"{sustained / inserts:.0%}"],
            [f"PyMongo bulk upserts by _id (first {UPSERT_EVENTS:,} events)", f"{upserts:,.0f}",
             f"{sustained / upserts:.0%}"],
        ]) + "\n"
    )


def side_by_side(steps: list[Step], before: list[Step]) -> str:
    """This tree's steps beside the baseline commit's, same rates, same stack, one after the other."""
    if not before:
        return ""
    at = {s.rate: s for s in before}

    def cells(s: Step | None) -> list[str]:
        if s is None:
            return ["-", "-", "-"]
        p99 = f"{s.p99 * 1000:,.0f}" + ("" if s.drained else " (not drained)")
        return [f"{s.reached:,.0f}", p99, " / ".join(f"{s.cpu[n]:.0%}" for n in PORTS)]

    rows = [[f"{s.rate:,}", *cells(s), *cells(at.get(s.rate))] for s in steps]
    rows += [[f"{s.rate:,}", *cells(None), *cells(s)] for s in before if s.rate not in {t.rate for t in steps}]
    return ("\nThe same steps with the services of commit " + BASELINE + " (BENCH_E2E_BASELINE), "
            "started after this tree's on the same stack:\n\n"
            + table(["target events/s", "reached", "p99 ms", "CPU (intake / processing / metrics)",
                     f"reached at {BASELINE}", f"p99 ms at {BASELINE}", f"CPU at {BASELINE}"], rows) + "\n")


async def pipeline(tree: Path, name: str) -> list[Step]:
    """The rates, one after another, through intake, processing and metrics started from `tree`'s files (topics
    and database of their own), until a step's p99 passes 2 s or it does not drain."""
    settings = bench_settings(name)
    await prepare(settings)
    with contextlib.chdir(tree):  # `python -m` imports from the working directory
        processes = {service: start_service(service, settings, PORTS[service], now=BENCH_NOW) for service in PORTS}
    pids = {service: p.pid for service, p in processes.items()} | the_rest()
    steps: list[Step] = []
    try:
        print(f"{tree}: warming up, 100 events/s for {WARM_UP / 100:.1f} s (not reported) …", flush=True)
        warm = sample_events(WARM_UP, first_sequence=0)
        await step(100, warm, reported(), pids)
        sent = len(warm) // 7 + 1
        for rate in RATES:
            events = sample_events(int(rate * STEP_SECONDS), first_sequence=sent)
            sent += len(events) // 7 + 1
            print(f"{rate:,} events/s for {STEP_SECONDS:g} s …", flush=True)
            s = await step(rate, events, reported(), pids)
            steps.append(s)
            print(f"  reached {s.reached:,.0f}/s, p50 {s.p50 * 1000:,.0f} ms, p99 {s.p99 * 1000:,.0f} ms, "
                  f"lag {s.lag}, drained {s.drained}, cpu {s.cpu}, rss {s.rss}", flush=True)
            if s.p99 > 2 or not s.drained:
                break
    finally:
        for process in processes.values():
            process.terminate()
            process.wait()
    return steps


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base_tree = tree_of(BASELINE, Path(scratch)) if BASELINE else None  # a wrong commit stops the bench at once
        steps = await pipeline(ROOT, "e2e")
        before = await pipeline(base_tree, "e2e-base") if base_tree else []

    baseline = bench_settings("e2e-raw")
    await prepare(baseline)
    events = sample_events(BASELINE_EVENTS, first_sequence=900_000)
    print(f"raw aiokafka produce + consume of {BASELINE_EVENTS:,} events …", flush=True)
    kafka = await raw_kafka(baseline, events)
    print("raw PyMongo bulk inserts and upserts …", flush=True)
    inserts = await raw_baseline(baseline, events, upsert=False)
    upserts = await raw_baseline(baseline, events[:UPSERT_EVENTS], upsert=True)

    body = report(steps, kafka, inserts, upserts) + side_by_side(steps, before)
    print(body)
    write_section("end-to-end", "End to end", "make bench-e2e", body)


if __name__ == "__main__":
    run(lambda: asyncio.run(main()))
