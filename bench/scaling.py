"""make bench-scaling: the metrics service beyond one process (docs/scaling.md).

1. A province over five years, in process: a province-year of dossiers (500,000) a year for five
   years, fed in order of receipt; at each quarter's start the dossiers that ended before the horizon
   (8 quarters back) leave memory, as the service's compaction does. Memory and dossiers held, beside
   a province-year held whole.
2. The country through the status path, on the `make up` stack: a synthetic year of the 3,321
   communes and 34 provinces (BENCH_SCALING_FRACTION of the assumed national volume, default 2 %),
   as processing's status records on a topic of its own; one replica of every province, then each
   shard of deploy/kubernetes' values-country.yaml, each reading the whole topic. Per replica: the
   dossiers it keeps, its memory (RSS after a restart), its load time (restart to /readyz), its
   report latency (a commune's year, its province's scorecard), and how fast it reads the topic
   beside the national peak office-hour rate.
"""

import asyncio
import gc
import statistics
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import yaml
from aiokafka import AIOKafkaProducer

from bench.clock import BENCH_NOW
from bench.harness import AUTH, bench_settings, knob, percentile, port, run, start_service
from bench.metrics import CAL, SECTORS, life, rss_mib, status_data, status_record
from bench.report import table, write_section
from services.metrics.figures import Figures
from services.metrics.store import COUNTED
from shared.calendar import quarter_of, quarters_before
from shared.communes import communes, communes_of_province
from shared.kafka import client_options
from shared.kafka_acls import prepare
from tests.fixtures.sample import VN

ROOT = Path(__file__).resolve().parents[1]
SHARDS = ROOT / "deploy" / "kubernetes" / "dossier-tracker" / "values-country.yaml"
PROVINCE_YEAR = knob("BENCH_SCALING_PROVINCE_YEAR", 500_000, 1_825)
YEARS = 5
HORIZON_QUARTERS = 8
# The national volume assumed: 3,000 dossiers a commune a year, three times that in Hà Nội and Hồ Chí
# Minh City; events per dossier ~6; the peak office hour three times an average one (8 h × 250 days).
PER_COMMUNE = 3000
BUSIEST = {"01", "79"}
EVENTS_PER_DOSSIER = 6
PEAK_FACTOR = 3
FRACTION = knob("BENCH_SCALING_FRACTION", 0.02, 0.0002)
# The shards of values-country.yaml measured beside the whole country, in the file's order (all of them by default).
SHARD_COUNT = knob("BENCH_SCALING_SHARDS", 1_000, 1)
PORT = port(8113)


# -- 1. a province over five years ------------------------------------------------------------------

class Lives:
    """One folded life per (day, outcome): every dossier of that day and outcome reuses it."""

    def __init__(self) -> None:
        self.kept: dict[tuple[date, str], dict] = {}

    def get(self, day: date, kind: str) -> dict:
        if (day, kind) not in self.kept:
            received = datetime.combine(day, datetime.min.time(), VN).replace(hour=8, minute=30)
            self.kept[day, kind] = status_data(life(f"000.00.38.H56-{received:%y%m%d}-0001", received, kind, "online"))
        return self.kept[day, kind]


def province_five_years() -> list[list[object]]:
    communes_38 = [c.code for c in communes_of_province("38")]
    lives = Lives()
    figures = Figures(CAL)
    first = date(2021, 1, 1)
    days = YEARS * 365
    per_day = PROVINCE_YEAR // 365
    now = datetime.combine(first + timedelta(days=days), datetime.min.time(), VN)
    gc.collect()
    before = rss_mib()
    peak, held_at_year, started, n = 0.0, {}, time.perf_counter(), 0
    for offset in range(days):
        day = first + timedelta(days=offset)
        if day == quarter_of(day)[0] and offset:
            horizon = quarters_before(day, HORIZON_QUARTERS)  # as the service's compaction reckons it
            ended = figures.ended_before(datetime.combine(horizon, datetime.min.time(), VN))
            figures.forget({t.code for t in ended})
        for k in range(per_day):
            kind = "open" if offset >= days - 20 and k % 10 == 0 else ("withdrawn" if k % 25 == 0 else "plain")
            data = lives.get(day, kind)
            figures.apply(COUNTED.validate_python({**data, "dossier_code": f"d{n}", "commune_code": communes_38[n % len(communes_38)],
                                     "sector": SECTORS[n % 25]}), now)
            n += 1
        if (offset + 1) % 365 == 0:
            gc.collect()
            held_at_year[(offset + 1) // 365] = (len(figures.dossiers), rss_mib() - before)
            peak = max(peak, rss_mib() - before)
            print(f"year {(offset + 1) // 365}: {len(figures.dossiers):,} dossiers held, "
                  f"{rss_mib() - before:,.0f} MiB, {time.perf_counter() - started:.0f} s")
    one_year_dossiers, one_year_mib = held_at_year[1]
    each = one_year_mib / one_year_dossiers
    held, mib = held_at_year[YEARS]
    rows = [[f"a province-year ({one_year_dossiers:,} dossiers), all held", f"{one_year_mib:,.0f} MiB",
             f"{1024 * each:.1f} KiB a dossier"]]
    for year in range(2, YEARS + 1):
        h, m = held_at_year[year]
        rows.append([f"after {year} years ({year * PROVINCE_YEAR:,} received), horizon {HORIZON_QUARTERS} quarters",
                     f"{m:,.0f} MiB", f"{h:,} dossiers held; all held: ~{year * one_year_mib:,.0f} MiB (extrapolated)"])
    rows.append(["bounded, five years", f"**{mib / (YEARS * one_year_mib):.2f}×** all held",
                 f"memory stops growing once the horizon is reached (year 3 on); peak {peak:,.0f} MiB"])
    del figures
    return rows


# -- 2. the country through the status path ---------------------------------------------------------

def volume() -> dict[str, int]:
    """Dossiers a year per commune, at FRACTION of the national volume assumed."""
    return {c.code: max(1, round(FRACTION * PER_COMMUNE * (3 if c.province_code in BUSIEST else 1)))
            for c in communes().values()}


def status_records(per_commune: dict[str, int]) -> list[tuple[bytes, bytes]]:
    """(key, value) of one status record per dossier: its latest, as processing last announced it."""
    templates: dict[tuple[int, str], dict] = {}
    out, n = [], 0
    for commune, count in per_commune.items():
        for k in range(count):
            day = (n * 7) % 365
            kind = ("plain", "plain", "plain", "supplement", "withdrawn", "open")[n % 6]
            if (day, kind) not in templates:
                received = datetime(2025, 1, 1, 8, 30, tzinfo=VN) + timedelta(days=day)
                record = status_record(life(f"000.00.38.H56-{received:%y%m%d}-0001", received, kind, "online"))
                templates[day, kind] = orjson.loads(record.to_bytes())
            record = templates[day, kind]
            code = f"000.00.{commune[:2]}.H{commune[2:]}-{n:08d}"
            data = record["data"] | {"dossier_code": code, "commune_code": commune, "sector": SECTORS[n % 25]}
            out.append((code.encode(), orjson.dumps(record | {"id": f"{code}-{record['id']}", "subject": code,
                                                              "data": data})))
            n += 1
    return out


async def produce(settings, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=20,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        for i in range(0, len(records), 5000):
            await asyncio.gather(*[await producer.send(settings.topic_status, value, key=key)
                                   for key, value in records[i:i + 5000]])
    finally:
        await producer.stop()


def scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=30).text


def gauge(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def caught_up(text: str, records: int) -> bool:
    """Every status record read (applied, older, or another shard's: other shards' clock records count
    there too, hence at least `records`), and no lag."""
    read = sum(gauge(text, f'metrics_status_events_total{{outcome="{o}"}}') for o in ("applied", "older", "not_owned"))
    return read >= records and gauge(text, "metrics_consumer_lag ") <= 0


def rss_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def replica_figures(settings, name: str, provinces: list[str], records: int, owned: int) -> list[object]:
    """Read the whole topic, restart, measure: the row of one replica."""
    env = {"DOSSIER_METRICS_REPLICA": name, "DOSSIER_METRICS_GROUP_ID": f"metrics-bench-{name}",  # metrics' groups: metrics…
           "DOSSIER_METRICS_PROVINCES": ",".join(provinces), "DOSSIER_METRICS_SECTOR_LABEL": "false",
           "DOSSIER_METRICS_AT_RISK_INTERVAL_SECONDS": "3600"}
    url = f"http://127.0.0.1:{PORT}"
    process = start_service("metrics", settings, PORT, now=BENCH_NOW, ready_within=600, **env)
    started = time.perf_counter()
    try:
        while not caught_up(scrape(url), records):  # one scrape a pass: the replica is being timed
            time.sleep(0.5)
        read_s = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait()
    started = time.perf_counter()
    process = start_service("metrics", settings, PORT, now=BENCH_NOW, ready_within=600, **env)
    load_s = time.perf_counter() - started
    try:
        held = gauge(scrape(url), "metrics_dossiers ")
        memory = rss_of(process.pid)
        province = provinces[0] if provinces else "01"
        commune = communes_of_province(province)[0].code
        year = {"from": "2025-01-01", "to": "2025-12-31", "as_of": BENCH_NOW.isoformat()}
        with httpx.Client(base_url=url, timeout=120, headers=AUTH) as client:
            reports = [timed_get(client, f"/v1/reports/communes/{commune}", year) for _ in range(20)]
            cards = [timed_get(client, f"/v1/reports/provinces/{province}/scorecard", year) for _ in range(5)]
    finally:
        process.terminate()
        process.wait()
    assert held == owned, f"{name} holds {held} dossiers, owns {owned}"
    return [name, ", ".join(provinces) or "all 34", f"{owned:,}", f"{memory:,.0f} MiB", f"{load_s:.1f} s",
            f"{records / read_s:,.0f} records/s", f"{1000 * statistics.median(reports):.0f} / "
            f"{1000 * percentile(reports, 99):.0f} ms", f"{1000 * statistics.median(cards):.0f} ms"]


def timed_get(client: httpx.Client, path: str, params: dict) -> float:
    started = time.perf_counter()
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - started


def country() -> tuple[list[list[object]], str]:
    per_commune = volume()
    records = status_records(per_commune)
    settings = bench_settings("scaling")
    asyncio.run(prepare(settings))
    asyncio.run(produce(settings, records))
    print(f"{len(records):,} status records of {len(per_commune):,} communes on {settings.topic_status}")
    province_of = {c.code: c.province_code for c in communes().values()}
    owned = {}
    for commune, count in per_commune.items():
        owned[province_of[commune]] = owned.get(province_of[commune], 0) + count
    shards = yaml.safe_load(SHARDS.read_text())["metrics"]["shards"][:SHARD_COUNT]
    rows = [replica_figures(settings, "whole", [], len(records), len(records))]
    print(rows[-1])
    for shard in shards:
        rows.append(replica_figures(settings, shard["name"], shard["provinces"], len(records),
                                    sum(owned.get(p, 0) for p in shard["provinces"])))
        print(rows[-1])
    national = sum(PER_COMMUNE * (3 if c.province_code in BUSIEST else 1) for c in communes().values())
    peak = national * EVENTS_PER_DOSSIER / (250 * 8 * 3600) * PEAK_FACTOR
    note = (f"National volume assumed: {national:,} dossiers a year; the peak office hour "
            f"{peak:,.0f} status records/s ({EVENTS_PER_DOSSIER} a dossier, {PEAK_FACTOR}× an average office "
            f"hour). Simulated: {FRACTION:.0%} of it, {len(records):,} dossiers, one status record each.")
    return rows, note


def main() -> None:
    five = province_five_years()
    rows, note = country()
    write_section(
        "scaling", "Scaling: the metrics service by province, with a horizon", "make bench-scaling",
        "### A province over five years (in process)\n\n"
        + table(["what", "memory", "beside"], five)
        + "\n\n### The country, one replica of every province beside each shard (values-country.yaml)\n\n"
        + table(["replica", "provinces", "dossiers kept", "memory (RSS)", "load (restart → ready)",
                 "reads the topic at", "commune-year report p50 / p99", "province scorecard p50"], rows)
        + f"\n\n{note} Each replica reads the whole topic and keeps its provinces' dossiers; its memory, "
        "load and reports scale with what it keeps. docs/scaling.md reads these figures at full scale.",
    )


if __name__ == "__main__":
    run(main)
