"""make bench-metrics: the metrics service at province scale, each figure beside its naive baseline.

- In process, a province-year (Thanh Hóa's 166 communes, ~500,000 dossiers, 25 sectors, a busy
  commune taking 13,000 dossiers a quarter): loading the timelines, memory, a commune-quarter report
  (beside folding each dossier's events as of the instant, what a service without timelines does),
  the province scorecard, rendering the Prometheus snapshot.
- The clock with 100,000 open dossiers: cost per tick (beside scanning every open dossier per tick).
- The real service on the `make up` stack, loaded from FerretDB with a dossier in every
  commune × sector × channel: startup, GET /metrics (the snapshot beside rendering at scrape time),
  and a report over HTTP.
"""

import asyncio
import contextlib
import gc
import hashlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from io import BytesIO
from pathlib import Path

import httpx
import orjson
from bson import Binary
from pymongo import AsyncMongoClient

from bench.clock import YEAR_END
from bench.cpu import tree_of
from bench.end_to_end import usage
from bench.harness import AUTH, bench_settings, knob, percentile, port, start_service
from bench.report import table, write_section
from tests.fixtures.sample import VN, event
from services.metrics.exposition import render
from services.metrics.figures import Counted, Figures
from services.metrics.store import CHUNK, COUNTED, KEPT, Batch, FiguresStore, quarter
from shared.calendar import WorkingCalendar
from shared.communes import communes_of_province
from shared.dossier import fold
from shared.settings import ServiceSettings
from shared.events import parse_event
from shared.kafka_acls import prepare
from shared.mongo import insert_new
from shared.contracts import StatusChanged, status_changed, status_of

CAL = WorkingCalendar.load()
PROVINCE = "38"
BUSY = "14923"  # Xã Bá Thước
DOSSIERS = knob("BENCH_METRICS_DOSSIERS", 500_000, 2_000)
BUSY_PER_QUARTER = knob("BENCH_METRICS_BUSY", 13_000, 100)
OPEN_DOSSIERS = knob("BENCH_METRICS_OPEN", 100_000, 500)
RESTART_DOSSIERS = knob("BENCH_METRICS_RESTART", 500_000, 2_000)  # stored, then the service restarted on them
LIVE_ROWS = 5  # announcements a blob in the store written as live (a consumed batch of a few records)
# The service loaded from FerretDB: a dossier in every commune (of so many) × sector × channel × kind.
SERVICE_COMMUNES = knob("BENCH_METRICS_SERVICE_COMMUNES", 166, 3)
REQUESTS = knob("BENCH_METRICS_REQUESTS", 50, 5)
SECTORS = [f"S{n:02d}" for n in range(25)]
KINDS = ("plain", "supplement", "withdrawn", "open")
METRICS_PORT = port(8103)
ROOT = Path(__file__).resolve().parents[1]
# The tree the province-year is loaded and queried with beside this one, in the same run: by default the last
# commit before a dossier's timeline was held packed (issue 26, item 4).
BASELINE = os.environ.get("BENCH_METRICS_BASELINE", "ef4bd70")
# The restart beside the last commit before the start lost its re-sharing of datetimes and its blocking first clock
# tick (issue 26, item 4, 2026-12-06), in the same run.
RESTART_BEFORE = os.environ.get("BENCH_METRICS_RESTART_BEFORE", "ef152a0")
AS_OF = YEAR_END  # the load's now


def life(code: str, received: datetime, kind: str, channel: str, days: float = 3) -> list:
    """A dossier's events; 'plain' is received, digitized, resolved, paid, returned, rated."""
    online = {"channel": channel, "online_level": "full" if channel == "online" else None}
    steps = [event("dossier.received", code, received, processing_time={"value": days, "unit": "working_days"},
                   **online),
             event("dossier.digitized", code, received + timedelta(minutes=5))]
    if kind == "supplement":
        steps += [event("dossier.supplement_requested", code, received + timedelta(hours=2)),
                  event("dossier.supplement_received", code, received + timedelta(days=1))]
    if kind == "withdrawn":
        steps.append(event("dossier.withdrawn", code, received + timedelta(hours=5)))
    elif kind != "open":
        steps += [event("dossier.resolved", code, received + timedelta(days=2)),
                  event("dossier.payment_completed", code, received + timedelta(days=2, hours=1)),
                  event("dossier.returned", code, received + timedelta(days=2, hours=2)),
                  event("dossier.rated", code, received + timedelta(days=2, hours=3))]
    return [parse_event(e) for e in steps]


def status_record(events: list) -> StatusChanged:
    """Processing's status record of a dossier with these events."""
    folded = fold(events, CAL)
    return status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(events))


def status_data(events: list) -> dict:
    """What the metrics store keeps of processing's status record for these events."""
    return COUNTED.dump_python(Counted.of(status_record(events).data), mode="json")


class Templates:
    """One folded life per (day, kind, channel) of 2025: dossiers of the province reuse them."""

    def __init__(self) -> None:
        self.events: dict[tuple, list] = {}
        self.data: dict[tuple, dict] = {}

    def get(self, day: int, kind: str, channel: str) -> tuple[list, dict]:
        key = (day, kind, channel)
        if key not in self.data:
            received = datetime(2025, 1, 1, 8, 30, tzinfo=VN) + timedelta(days=day)
            self.events[key] = life(f"000.00.38.H56-{received:%y%m%d}-0001", received, kind, channel)
            self.data[key] = status_data(self.events[key])
        return self.events[key], self.data[key]


def province_dossiers(templates: Templates, total: int) -> Iterator[tuple[dict, tuple]]:
    """(status data, template key) for a province-year; the busy commune gets 13,000 a quarter."""
    communes = [c.code for c in communes_of_province(PROVINCE) if c.code != BUSY]
    busy = 4 * BUSY_PER_QUARTER
    for n in range(total):
        commune = BUSY if n < busy else communes[n % len(communes)]
        day = (n * 7) % 365
        key = (day, KINDS[n % 4] if n % 10 < 4 else "plain", ("direct", "online", "postal")[n % 3])
        _, data = templates.get(*key)
        code = f"000.00.38.H{n % 100:02d}-{n:08d}"
        yield {**data, "dossier_code": code, "commune_code": commune, "sector": SECTORS[n % 25]}, key


def stored_blobs(templates: Templates, total: int) -> Iterator[bytes]:
    """The province-year as the service's store keeps it (services/metrics/store.py): JSON blobs of CHUNK statuses."""
    dossiers = province_dossiers(templates, total)
    while chunk := [d for d, _ in itertools.islice(dossiers, CHUNK)]:
        yield orjson.dumps(chunk)


def load_province(figures: Figures, total: int) -> dict[str, float]:
    """The province-year read into `figures` as a start reads the store: since v1.4 the rows of the dossiers as
    held (services/metrics/store.py `held_of`), each left unsettled, then every one settled (what the service does
    once consuming); in a tree before, the whole statuses parsed with pydantic and applied, each settled as it is
    applied. Wall and CPU seconds of the reading and applying, then of the settling (the blobs' making apart), and
    the RSS it added (MiB). The collector is paused as services/metrics/loader.py pauses it (since issue 26's item 4;
    the baseline tree's service did not)."""
    try:  # here, not at the top: the baseline's probe loads this file beside an older tree, which has no rows
        from services.metrics.figures import held
        from services.metrics.store import held_of, row_of
    except ImportError:
        held = None
    templates = Templates()
    blobs = stored_blobs(templates, total)
    for _ in province_dossiers(templates, total):  # every template folded before measuring
        pass
    gc.collect()
    gc.disable()
    before, wall, cpu = rss_mib(), 0.0, 0.0
    for blob in blobs:
        if held is not None:
            blob = orjson.dumps([row_of(held(c)) for c in KEPT.validate_json(blob)])  # the rows the store keeps
        started, started_cpu = time.perf_counter(), time.process_time()
        if held is None:
            for counted in KEPT.validate_json(blob):
                figures.apply(counted, AS_OF)
        else:
            for row in orjson.loads(blob):
                figures.apply(held_of(row), AS_OF, settle=False)
        wall, cpu = wall + time.perf_counter() - started, cpu + time.process_time() - started_cpu
    del blob
    started, started_cpu = time.perf_counter(), time.process_time()
    if held is not None:
        for tracked in list(figures.dossiers.values()):
            figures.settle(tracked)
    settle_s, settle_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    gc.enable()
    gc.collect()
    return {"load_s": wall, "load_cpu": cpu, "settle_s": settle_s, "settle_cpu": settle_cpu,
            "memory_mib": rss_mib() - before}


def answers_digest(figures: Figures) -> str:
    """SHA-256 of what the province-year answers: the Prometheus counts, the scorecard as of two instants, and
    for the busy commune's quarter its report, both on-time views, where dossiers waited and the overdue steps."""
    province, year = communes_of_province(PROVINCE), (date(2025, 1, 1), date(2025, 12, 31))
    quarter, as_of = (date(2025, 7, 1), date(2025, 9, 30)), datetime(2025, 10, 1, 8, tzinfo=VN)
    answers = [sorted(map(list, figures.counts.items())),
               figures.scorecard(province, *year, datetime(2026, 1, 1, tzinfo=VN)),
               figures.scorecard(province, *year, AS_OF),
               figures.report(BUSY, *quarter, as_of), figures.on_time_views(BUSY, *quarter, as_of),
               figures.units(BUSY, *quarter, as_of), figures.overdue_steps(BUSY, *quarter, as_of)]
    return hashlib.sha256(orjson.dumps(answers, default=str, option=orjson.OPT_SORT_KEYS)).hexdigest()


def timed(work: Callable[[], object], rounds: int = 1) -> tuple[float, object]:
    """Median seconds of `rounds` runs, and the last result."""
    seconds, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one run (the CPU's are steadier on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def scorecard_timings(figures: Figures) -> dict[str, float]:
    """The province-year scorecard (wall and CPU seconds): as of the period's end (2026-01-01 00:00), first
    then again (remembered), as of another instant (2025-12-31 17:00, the load's now); and a commune's
    report as GET /v1/reports/communes answers it (`report` and `on_time_views`, the busy commune's quarter),
    median of 5. The same calls in the tree before settled dossiers were packed (`baseline_probe`)."""
    province, year = communes_of_province(PROVINCE), (date(2025, 1, 1), date(2025, 12, 31))
    found: dict[str, float] = {"load_1min": os.getloadavg()[0]}  # the machine's, as the timings start
    found["end_s"], found["end_cpu"] = cpu_timed(lambda: figures.scorecard(province, *year, datetime(2026, 1, 1,
                                                                                                     tzinfo=VN)))
    found["again_s"], _ = timed(lambda: figures.scorecard(province, *year, datetime(2026, 1, 1, tzinfo=VN)), rounds=5)
    found["other_s"], found["other_cpu"] = cpu_timed(lambda: figures.scorecard(province, *year, datetime(
        2025, 12, 31, 17, tzinfo=VN)))
    quarter, as_of = (date(2025, 7, 1), date(2025, 9, 30)), datetime(2025, 10, 1, 8, tzinfo=VN)
    found["commune_s"], _ = timed(lambda: figures.report(BUSY, *quarter, as_of)
                                  | {"on_time_views": figures.on_time_views(BUSY, *quarter, as_of)}, rounds=5)
    return found


def baseline_probe(total: int) -> dict[str, float | str]:
    """In the baseline tree's process: the province-year loaded (`load_province`), `scorecard_timings`, and the
    digest of its answers."""
    figures = Figures(CAL)
    loaded = load_province(figures, total)
    return loaded | scorecard_timings(figures) | {"digest": answers_digest(figures)}


def baseline(total: int) -> dict[str, float | str]:
    """`baseline_probe` run with the services and shared packages of commit BASELINE (this file loaded by path:
    the probe is the same code)."""
    with tempfile.TemporaryDirectory() as scratch:
        archive = subprocess.run(["git", "archive", BASELINE], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(scratch, filter="data")
        code = (f"import sys, json, importlib.util as u; sys.path[:0] = [{scratch!r}]; "
                f"s = u.spec_from_file_location('bench_metrics', {str(Path(__file__))!r}); m = u.module_from_spec(s); "
                f"s.loader.exec_module(m); print(json.dumps(m.baseline_probe({total})))")
        done = subprocess.run([sys.executable, "-c", code], cwd=scratch, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def province_scale() -> list[list[object]]:
    figures = Figures(CAL)
    loaded = load_province(figures, DOSSIERS)
    print(f"loaded in {loaded['load_s']:.1f} s (CPU {loaded['load_cpu']:.1f} s), {loaded['memory_mib']:.0f} MiB")
    quarter = (date(2025, 7, 1), date(2025, 9, 30))
    q_as_of = datetime(2025, 10, 1, 8, tzinfo=VN)
    report_s, report = timed(lambda: figures.report(BUSY, *quarter, q_as_of), rounds=5)
    templates = Templates()
    cohort = [templates.events[key] for d, key in province_dossiers(templates, DOSSIERS)
              if d["commune_code"] == BUSY and quarter[0] <= date(2025, 1, 1) + timedelta(days=key[0]) <= quarter[1]]
    fold_s, _ = timed(lambda: [fold(events, CAL, as_of=q_as_of) for events in cohort])
    print(f"commune-quarter report of {report['received']} dossiers: {1000 * report_s:.0f} ms "
          f"(folding them: {1000 * fold_s:.0f} ms)")
    render_s, text = timed(lambda: render(figures.counts), rounds=3)
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    print(f"snapshot of {series} series: {render_s:.2f} s")
    cohort.clear()
    now = loaded | scorecard_timings(figures) | {"digest": answers_digest(figures)}
    print(f"this tree: {now}")
    base = baseline(DOSSIERS)
    print(f"{BASELINE}: {base}")
    if now["digest"] != base["digest"]:
        raise SystemExit(f"the province-year's answers differ from {BASELINE}'s: {now['digest']} != {base['digest']}")
    return [
        *load_rows(now, base),
        [f"report: commune-quarter ({report['received']:,} dossiers)", "median of 5", f"{1000 * report_s:.0f} ms",
         f"folding each dossier as of the instant instead: {1000 * fold_s:,.0f} ms = "
         f"**{fold_s / report_s:.0f}×** slower (goal < 1 s)"],
        *scorecard_rows(now, base),
        [f"Prometheus snapshot render ({series:,} series, {len(text) / 2**20:.1f} MiB)", "median of 3",
         f"{1000 * render_s:.0f} ms", "in a background thread, not per scrape"],
    ]


def load_rows(now: dict, base: dict) -> list[list[object]]:
    """Loading the province-year and what it holds, beside the baseline tree, and whether both answer alike."""
    def kib(found: dict) -> str:
        return f"{found['memory_mib']:,.0f} MiB ({1024 * found['memory_mib'] / DOSSIERS:.2f} KiB a dossier)"

    return [
        [f"memory held, province-year ({DOSSIERS:,} dossiers, RSS)", "1 run", kib(now),
         f"at {BASELINE}: {kib(base)}; **{base['memory_mib'] / now['memory_mib']:.1f}×** less (goal ≤ 1 KiB a dossier)"],
        ["loading them as a start does (now: the store's rows read, the dossiers left unsettled; then: the JSON "
         "statuses parsed with pydantic and applied)", "1 run",
         f"{now['load_s']:.1f} s (CPU {now['load_cpu']:.1f} s); then settled in {now['settle_s']:.1f} s",
         f"at {BASELINE}: {base['load_s']:.1f} s (CPU {base['load_cpu']:.1f} s), settled as applied; "
         f"{DOSSIERS / now['load_s']:,.0f} against {DOSSIERS / base['load_s']:,.0f} dossiers/s"],
        ["answers (counts, scorecard at two instants, a commune's report, views, units, overdue steps)", "1 run",
         f"SHA-256 {str(now['digest'])[:12]}…", f"at {BASELINE}: the same"],
    ]


def scorecard_rows(now: dict[str, float], base: dict[str, float]) -> list[list[object]]:
    """The scorecard's rows: this tree's figures beside the baseline tree's, with the machine's load (its
    1-minute average) when each started."""
    def ratio(key: str) -> str:
        return f"now / then **{now[key] / base[key]:.2f}**" if base[key] else ""

    def cpu(found: dict[str, float], key: str) -> str:
        return f"{found[key + '_s']:.2f} s (CPU {found[key + '_cpu']:.2f} s)"

    year = f"province-year, {DOSSIERS:,} dossiers, 166 communes"
    return [
        [f"scorecard as of the period's end, first ({year}; load {now['load_1min']:.1f})", "1 run", cpu(now, "end"),
         f"at {BASELINE} (load {base['load_1min']:.1f}): {cpu(base, 'end')}; {ratio('end_s')} (goal < 1 s)"],
        ["scorecard as of the period's end, again (remembered)", "median of 5", f"{1000 * now['again_s']:.1f} ms",
         f"at {BASELINE}: {1000 * base['again_s']:.1f} ms"],
        ["scorecard as of 2025-12-31 17:00, first", "1 run", cpu(now, "other"),
         f"at {BASELINE}: {cpu(base, 'other')}; {ratio('other_s')} (goal < 3 s)"],
        ["commune report as GET answers it (report + on_time_views, busy commune's quarter)", "median of 5",
         f"{1000 * now['commune_s']:.1f} ms",
         f"at {BASELINE}: {1000 * base['commune_s']:.1f} ms; {ratio('commune_s')} (goal < 100 ms)"],
    ]


def clock_scale() -> list[list[object]]:
    """100,000 open dossiers received over the last 20 days with 10 working days each: the first
    tick after loading them (a restart: every change since each receipt), ticks every 10 s for an
    hour, and one tick after a day stopped."""
    figures = Figures(CAL)
    now = datetime(2025, 10, 1, 8, tzinfo=VN)
    slots = 20 * 24 * 6  # 10-minute receipt slots
    lives = {}
    for slot in range(min(slots, OPEN_DOSSIERS)):
        received = now - timedelta(days=20) + timedelta(minutes=10 * slot)
        lives[slot] = status_data(life(f"000.00.38.H56-{received:%y%m%d}-0001", received, "open", "direct", days=10))
    for n in range(OPEN_DOSSIERS):
        figures.apply(COUNTED.validate_python({**lives[n % slots], "dossier_code": f"open-{n}", "commune_code": BUSY,
                                 "sector": SECTORS[n % 25]}), now)
    first_s, first = timed(lambda: len(figures.tick(now)))
    ticks = [now + timedelta(seconds=10 * k) for k in range(1, 361)]
    seconds, moved = [], 0
    for t in ticks:
        started = time.perf_counter()
        moved += len(figures.tick(t))
        seconds.append(time.perf_counter() - started)
    day_s, day_moved = timed(lambda: len(figures.tick(now + timedelta(days=1, hours=1))))
    opened = [d for d in figures.dossiers.values() if d.open_counted]
    scan_s, _ = timed(lambda: [d.now.open_state(ticks[-1], CAL) for d in opened], rounds=3)
    mean = statistics.mean(seconds)
    print(f"clock: first tick {1000 * first_s:.0f} ms ({first} changes); {1e6 * mean:.0f} µs a tick ({moved} "
          f"changes in an hour); a day at once {1000 * day_s:.0f} ms ({day_moved} changes); "
          f"full scan {1000 * scan_s:.0f} ms")
    return [
        [f"clock: first tick after loading {OPEN_DOSSIERS:,} open dossiers", "1 tick", f"{1000 * first_s:.0f} ms",
         f"{first:,} changes since their receipts (what a restart announces, minus those already sent)"],
        [f"clock tick, {OPEN_DOSSIERS:,} open dossiers", "360 ticks (1 h, every 10 s)", f"{1e6 * mean:.0f} µs",
         f"{moved} changes announced; scanning every open dossier instead: {1000 * scan_s:.0f} ms a tick = "
         f"**{scan_s / mean:,.0f}×**"],
        ["clock tick after a day stopped", "1 tick", f"{1000 * day_s:.0f} ms", f"{day_moved:,} changes"],
    ]


async def store_everywhere(settings: ServiceSettings, communes: list[str]) -> list[dict]:
    """A dossier in every commune × sector × channel × kind, stored in the quarters' logs as the
    service stores them; returns them as stored."""
    templates = Templates()
    docs = []
    n = 0
    for commune in communes:
        for sector in SECTORS:
            for kind, channel in (("plain", "online"), ("open", "direct"), ("withdrawn", "postal"),
                                  ("supplement", "online")):
                _, data = templates.get(200 + n % 90, kind, channel)
                docs.append({**data, "dossier_code": f"svc-{n}", "commune_code": commune, "sector": sector})
                n += 1
    from services.metrics.figures import held  # here: the baseline's probe loads this file beside an older tree

    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    try:
        batch = Batch()
        for doc in docs:
            batch.statuses.setdefault(quarter(date.fromisoformat(doc["received_at"][:10])), []).append(
                held(COUNTED.validate_python(doc)))
        await FiguresStore(mongo, settings.mongo_database).save(batch)
    finally:
        await mongo.close()
    return docs


async def service_scale() -> list[list[object]]:
    """The real service loaded from FerretDB: a dossier in every commune × sector × channel × kind."""
    settings = bench_settings("metrics")
    await prepare(settings)
    communes = [c.code for c in communes_of_province(PROVINCE)][:SERVICE_COMMUNES]
    docs = await store_everywhere(settings, communes)
    started = time.perf_counter()
    process = start_service("metrics", settings, METRICS_PORT, now=AS_OF)
    startup = time.perf_counter() - started
    try:
        url = f"http://127.0.0.1:{METRICS_PORT}"
        with httpx.Client(base_url=url, timeout=30, headers=AUTH) as client:
            client.get("/metrics")
            scrapes = []
            for _ in range(REQUESTS):
                t = time.perf_counter()
                body = client.get("/metrics").content
                scrapes.append(time.perf_counter() - t)
            reports = []
            for _ in range(max(1, REQUESTS * 2 // 5)):
                t = time.perf_counter()
                client.get(f"/v1/reports/communes/{BUSY}", params={"from": "2025-01-01", "to": "2025-12-31"})
                reports.append(time.perf_counter() - t)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        figures = Figures(CAL)
        for d in docs:
            figures.apply(COUNTED.validate_python(d), AS_OF)
        live_s, _ = timed(lambda: render(figures.counts), rounds=3)
    finally:
        process.terminate()
        process.wait()
    p50, p99 = statistics.median(scrapes), percentile(scrapes, 99)
    print(f"service: {len(docs)} dossiers loaded from FerretDB in {startup:.1f} s; GET /metrics ({series} series) "
          f"p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms; rendering at scrape time {1000 * live_s:.0f} ms")
    return [
        [f"service start, {len(docs):,} dossiers in FerretDB", "1 run", f"{startup:.1f} s",
         f"{len(docs) / startup:,.0f} dossiers/s read and applied until /readyz"],
        [f"GET /metrics, {len(communes)} communes × 25 sectors ({series:,} series, {len(body) / 2**20:.1f} MiB)",
         f"{REQUESTS} scrapes", f"p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms",
         f"rendering at scrape time instead: {1000 * live_s:.0f} ms = **{live_s / p50:.0f}×** (goal < 200 ms)"],
        ["GET /v1/reports/communes (a year, 100 dossiers)", f"{len(reports)} requests",
         f"p50 {1000 * statistics.median(reports):.1f} ms", ""],
    ]


async def store_province(settings: ServiceSettings, total: int, before_v14: bool = False) -> None:
    """A province-year in a database of its own (dropped first), as the service stores what it consumes: one
    announcement a dossier, in its quarter's log (a dossier's earlier announcements, also there in life, are
    skipped by a start once read: the figure below is a floor). `before_v14`: as a store written before v1.4
    keeps them (whole statuses, kind `statuses`), which the baseline's tree reads, and this one still does."""
    from services.metrics.figures import held  # here: the baseline's probe loads this file beside an older tree

    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    try:
        await mongo.drop_database(settings.mongo_database)
        store, batch = FiguresStore(mongo, settings.mongo_database), Batch()
        for n, (data, _) in enumerate(province_dossiers(Templates(), total), start=1):
            counted = COUNTED.validate_python(data)
            batch.statuses.setdefault(quarter(CAL.local(counted.received_at).date()), []).append(held(counted))
            if n % (50 * CHUNK) == 0:
                await (_save_before_v14(mongo, settings, batch) if before_v14 else store.save(batch))
                batch = Batch()
        await (_save_before_v14(mongo, settings, batch) if before_v14 else store.save(batch))
    finally:
        await mongo.close()


async def _save_before_v14(mongo: AsyncMongoClient, settings: ServiceSettings, batch: Batch) -> None:
    from services.metrics import compact  # as `held` above

    for where, announced in batch.statuses.items():
        statuses = [replace(h.receipt, timeline=compact.unpack(h.steps)) for h in announced]
        blobs = [KEPT.dump_json(statuses[i:i + CHUNK]) for i in range(0, len(statuses), CHUNK)]
        await insert_new(mongo[settings.mongo_database][f"metrics_log_{where}"], [
            {"_id": hashlib.sha256(b"statuses" + blob).hexdigest(), "kind": "statuses", "blob": Binary(blob)}
            for blob in blobs])


async def store_live(settings: ServiceSettings, total: int) -> int:
    """The province-year as a live service stores it: a blob per consumed batch of LIVE_ROWS announcements (the store
    above holds a thousand a blob), in a database of its own (dropped first); returns the blobs stored."""
    from services.metrics.figures import held  # as in `store_province`
    from services.metrics.store import row_of

    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    try:
        await mongo.drop_database(settings.mongo_database)
        db, rows, stored = mongo[settings.mongo_database], {}, 0
        for n, (data, _) in enumerate(province_dossiers(Templates(), total), start=1):
            counted = COUNTED.validate_python(data)
            rows.setdefault(quarter(CAL.local(counted.received_at).date()), []).append(row_of(held(counted)))
            if n % (LIVE_ROWS * CHUNK) == 0 or n == total:
                for where, written in rows.items():
                    blobs = [FiguresStore.blob("held", written[i:i + LIVE_ROWS])
                             for i in range(0, len(written), LIVE_ROWS)]
                    await insert_new(db[f"metrics_log_{where}"], blobs)
                    stored += len(blobs)
                rows = {}
        return stored
    finally:
        await mongo.close()


def restarted(settings: ServiceSettings, tree: Path, blobs_below: int | None = None, again: bool = False
              ) -> tuple[float, float, float]:
    """Seconds from starting `tree`'s metrics service on the stored province to /readyz, its peak RSS (MiB), and
    the seconds after that until every dossier loaded is settled (`metrics_dossiers_unsettled` 0; a tree without
    that gauge settles before it is ready: 0), or with `blobs_below`, until the logs it rewrites once settled hold
    fewer blobs (`metrics_store_blobs`). Its clock reads AS_OF, the province-year's last evening, whatever the
    day the bench runs: its horizon, the quarter whose points at risk the start computes and its clock's changes are
    those of the year's end; `again`: five minutes later (a restart after a start of this tree on the same store,
    which serves the points at risk that start stored: services/metrics/core.py). It consumes in a group of its own,
    as each replica does: in the stack's group `metrics` it waited ~2 s for the stack's service to join again, and
    moved that service's partitions each time (until 2026-12-07)."""
    with contextlib.chdir(tree):
        started = time.perf_counter()
        process = start_service("metrics", settings, METRICS_PORT, now=AS_OF + timedelta(minutes=5 if again else 0),
                                ready_within=900, DOSSIER_METRICS_GROUP_ID="metrics-bench-restart")
        ready = time.perf_counter() - started
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    while (unsettled := _gauge(url, "metrics_dossiers_unsettled")) or (
            blobs_below is not None and _gauge(url, "metrics_store_blobs") >= blobs_below):  # type: ignore[operator]
        time.sleep(0.1)
    settled = time.perf_counter() - started - ready
    peak = usage(process.pid).peak_rss_mib
    process.terminate()
    process.wait()
    return ready, peak, settled if unsettled is not None else 0.0


def _gauge(url: str, name: str) -> float | None:
    """A gauge's value on a service's /metrics; None when it has none."""
    for line in httpx.get(url, headers=AUTH, timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def restart_scale() -> list[list[object]]:
    """The service restarted on a stored province-year, this tree's beside the baseline tree's."""
    settings = bench_settings("metrics").model_copy(update={"mongo_database": "bench_metrics_restart"})
    from bench import harness  # here: the baseline's probe loads this file beside an older bench package

    harness.RUNS.append(settings)  # its database too goes at the end
    await prepare(settings)
    await store_province(settings, RESTART_DOSSIERS, before_v14=True)
    with tempfile.TemporaryDirectory() as scratch:
        then_s, then_mib, _ = restarted(settings, tree_of(BASELINE, Path(scratch)))
    upgraded_s, upgraded_mib, upgraded_settled = restarted(settings, ROOT)
    await store_province(settings, RESTART_DOSSIERS)
    with tempfile.TemporaryDirectory() as scratch:
        before_s, before_mib, before_settled = restarted(settings, tree_of(RESTART_BEFORE, Path(scratch)))
    first_s, first_mib, _ = restarted(settings, ROOT)
    now_s, now_mib, settled = restarted(settings, ROOT, again=True)
    blobs = await store_live(settings, RESTART_DOSSIERS)
    full = 2 * (RESTART_DOSSIERS // CHUNK + 4) + 8 * 4  # compaction.py `_spread` of its four quarters
    live_s, live_mib, rewritten_after = restarted(settings, ROOT, blobs_below=full)
    rewritten_s, rewritten_mib, _ = restarted(settings, ROOT, again=True)
    print(f"restart on {RESTART_DOSSIERS} dossiers: {now_s:.1f} s, {now_mib:.0f} MiB (settled {settled:.1f} s later); "
          f"its first start {first_s:.1f} s; at {RESTART_BEFORE}: {before_s:.1f} s; on a store before v1.4 "
          f"{upgraded_s:.1f} s, {upgraded_mib:.0f} MiB; at {BASELINE}: {then_s:.1f} s, {then_mib:.0f} MiB; written live "
          f"({blobs} blobs) {live_s:.1f} s, then rewritten {rewritten_after:.1f} s later, then {rewritten_s:.1f} s")
    return [[f"service restart to /readyz, a province-year stored ({RESTART_DOSSIERS:,} dossiers)", "1 run",
             f"{now_s:.1f} s; peak RSS {now_mib:,.0f} MiB; every dossier settled {settled:.1f} s after",
             f"at {RESTART_BEFORE}: {before_s:.1f} s ({now_s / before_s:.0%}), {before_mib:,.0f} MiB, settled "
             f"{before_settled:.1f} s after; at {BASELINE}: {then_s:.1f} s, {then_mib:,.0f} MiB (goal ≤ 10 s)"],
            ["the same, the first start of this tree on that store (no points at risk stored: worked out before it is "
             "ready)", "1 run", f"{first_s:.1f} s; peak RSS {first_mib:,.0f} MiB", ""],
            ["the same, the first start after upgrading (the store written before v1.4)", "1 run",
             f"{upgraded_s:.1f} s; peak RSS {upgraded_mib:,.0f} MiB; settled {upgraded_settled:.1f} s after", ""],
            [f"the same province stored as written live ({LIVE_ROWS} announcements a blob, {blobs:,} blobs): the start "
             "after its logs were rewritten (in full blobs, once the start before had settled)", "1 run",
             f"{rewritten_s:.1f} s; peak RSS {rewritten_mib:,.0f} MiB",
             f"the start before: {live_s:.1f} s ({rewritten_s / live_s:.0%}), {live_mib:,.0f} MiB; settled and "
             f"rewritten {rewritten_after:.1f} s after it was ready"]]


HOW = (
    "How the memory went down (issue 26, item 4; services/metrics/compact.py): a dossier held keeps its timeline "
    "packed into bytes (about 90 for six Facts, against ~2 KB of objects, each datetime with a tzinfo of its own), "
    "its last Facts, and its announcement without the timeline, repeated strings and time zones shared. A report "
    "unpacks a timeline only to read a dossier as of an earlier instant: the commune report with both on-time "
    "views unpacks the dossiers the views disagree on (the 2× above, 13 ms). A start pauses the cyclic collector "
    "while it loads and freezes what it loaded (services/metrics/loader.py): the collector rescanned every held "
    "object again and again, half the load's time; the in-process load above pauses it for both trees. The "
    "price on the live path: metrics' CPU a status record 162 µs against 151 at ef4bd70 (`python -m bench.cpu "
    "--baseline ef4bd70` on 2026-12-05 at 1b9fc11, same run: 1.07×), the timeline packed at each announcement.\n\n"
    "What a restart spends (by hand on 2026-12-06, the same stored province, py-spy and the service's log): since "
    "v1.4 a start reads each dossier as the figures hold it (a row of ~330 bytes, the timeline packed: "
    "services/metrics/store.py), without pydantic and without judging it; it settles the dossiers once consuming, "
    "in the background (docs/scaling.md). Of an 18 s start (21 s in the run above): ~1 s importing, ~15 s the load (the service's CPU, ~30 "
    "µs a dossier: its row parsed 1.6 µs, its receipt and last Facts made into objects ~18 µs, counted ~8 µs; "
    "FerretDB serves the 166 MB of rows in 5.6 s on the other core meanwhile), ~1.2 s the compaction's scan, the "
    "points at risk and the first snapshot, then ~0.7 s until /readyz answers while the first clock tick and the "
    "settling take turns. What this start no longer does: share each datetime's tzinfo with `replace` (1.0 µs, "
    "ten times the cost of making it again from its pickled state; up to seven datetimes a dossier) and share the last "
    "Facts' datetimes once more after `unpack` had; hold the event loop 1.5 s for the first clock tick (every open "
    "dossier moved again: now 500 dossiers a turn); run again at once the snapshot, the points at risk and the "
    "compaction it had just run. Before v1.4, a third of the service's CPU went to pydantic parsing ~1.2 GB of JSON "
    "statuses. The goal of 10 s is not met: what is left is the objects themselves (a Counted of 21 frozen fields is "
    "3.7 µs to make, its last Facts 2.2 µs), and keeping a row as read until something needs it costs more memory "
    "than the objects (1,013 against 897 bytes a dossier, measured): that needs another representation, not built."
    "\n\n"
    "The restarts' clock (since 2026-12-07): the service restarted above reads AS_OF (2025-12-31 17:00, the "
    "province-year's last evening) whatever the day the bench runs, and so does each baseline's. Before, it ran on "
    "the wall clock: in December 2026 its current quarter held none of the year's dossiers, so the start computed "
    "no points at risk, and from 2027-04-01 it would have archived the year's first quarters at start instead of "
    "loading them. At the year's end the start judges the last quarter's dossiers (a quarter of the province, not "
    "settled yet) for the points at risk before it is ready: by hand on 2026-12-07, one stored province restarted "
    "in turns, 19.2 and 21.0 s at AS_OF against 15.1 and 14.6 s on the wall clock (starts swing by a fifth from "
    "run to run), py-spy putting a fifth of the start in `refresh_at_risk`, most of it unpacking timelines to judge "
    "them."
    "\n\n"
    "Since 2026-12-07 (later that day) a restart serves the points at risk as the service stored them when it last "
    "worked them out, if in the same quarter and within the hour, and works them out again once consuming "
    "(docs/scaling.md): the restart above comes after a first start of this tree on the same store, its clock five "
    "minutes later; the first start, which works them out before it is ready, is its own row. By hand on the same "
    "day, one stored province, the service's log: ~0.6 s importing, the load 7.2-8.5 s, the points at risk 2.5-2.7 "
    "s, the snapshot 0.1 s, Kafka 0.05 s; restarted three times after a start, each clock five minutes after the "
    "last: 8.4, 8.6 and 9.5 s (each start's clock must be later than the points stored: one earlier works them out "
    "again before it is ready, as after a clock moved back). The bench's "
    "service consumed in the stack's group `metrics` before, so each start waited ~1.9 s for the stack's service to "
    "join the group again (and took its partitions): a replica has a group of its own, and so has the bench's now."
    "\n\n"
    "A store written live (since 2026-12-07, the last row): the service writes a blob per consumed batch, and a "
    "verdict mostly comes alone, so a live province's logs hold many small blobs, which FerretDB serves one by one "
    "(~2,000 a second). Once a start has settled, and at each compaction, the logs whose blobs are more than twice "
    "what they hold needs are written anew from memory in full blobs (docs/scaling.md). The row above stores the "
    "province 5 announcements a blob: the first start reads 100,000 blobs, then rewrites them; the next reads the "
    "full ones. Starts swing by a fifth and more on this machine: by hand on 2026-12-07, one stored province "
    "restarted three times in turns with this tree and 8c8f69a (before the rewrite and the returned dossiers' "
    "notes), 20.3, 16.4 and 25.9 s against 16.9, 20.0 and 21.0 s."
    "\n\n"
    "How the scorecard became fast (issue 25; services/metrics/queries.py, scoring.py): a dossier settled at the "
    "cut adds to its cohort's counts what it added when it settled, packed in one int, so a commune's total is "
    "one `+` a dossier; only the others are judged at each query. Beside 6a84a34 (before), on 2026-12-04 at "
    "4dc7d20: the province-year scorecard 0.27 s against 6.94 s, a commune's report 13 ms against 131 ms."
)


def main() -> None:
    rows = province_scale() + clock_scale() + asyncio.run(service_scale()) + asyncio.run(restart_scale())
    write_section(
        "metrics", "Metrics: reports, scrape and clock at province scale", "make bench-metrics",
        table(["what", "runs", "time", "beside"], rows) + "\n\nThe province-year is generated from folded lives "
        "(one per day, kind and channel) given to each dossier of the province; reports and the scorecard "
        "read the same in-memory timelines the service keeps. The clock's ticks cost what moves, "
        "not the number of open dossiers.\n\n" + HOW,
    )


if __name__ == "__main__":
    from bench.harness import run  # not above: the baseline's probe loads this file beside an older bench package

    run(main)
