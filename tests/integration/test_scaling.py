"""Metrics beyond one process, on the real Kafka and FerretDB: replicas owning different provinces give
together what one replica of every province gives, and the dossiers and the PAKN that ended before the
horizon leave memory without changing a figure or a report."""

import asyncio
import subprocess
import sys
import time
from datetime import date, datetime, timedelta

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from bson import Binary
from pymongo import AsyncMongoClient

from services.metrics.figures import Counted
from services.metrics.store import KEPT
from shared.calendar import WorkingCalendar
from shared.contracts import PROCESSING_SOURCE, SignatureData, SignatureVerified, status_changed, status_of
from shared.dossier import fold
from shared.kafka import client_options
from shared.events import parse_event
from tests.fixtures.sample import VN, event
from tests.integration.conftest import OPERATOR, ROOT, read_topic, service, wait_until
from tests.integration.test_feedback import EVENTS as PAKN
from tests.integration.test_metrics import FAST, business, counted, publish_status
from tests.integration.test_processing import histories

CAL = WorkingCalendar.load()
THANH_BA = "08152"  # Phú Thọ (25)
BA_THUOC = "14923"  # Thanh Hóa (38)
PERIODS = ((date(2025, 7, 1), date(2025, 7, 31)), (date(2025, 7, 7), date(2025, 7, 9)),
           (date(2025, 1, 1), date(2026, 12, 31)))
AS_OF = (datetime(2025, 7, 9, 12, tzinfo=VN), datetime(2025, 8, 1, tzinfo=VN), datetime(2026, 11, 1, tzinfo=VN))


def replica(pipeline, name: str, **env: str):
    return service("metrics", pipeline.settings, **FAST, DOSSIER_METRICS_REPLICA=name,
                   DOSSIER_METRICS_GROUP_ID=f"metrics-{name}", **env).start()


def reports(metrics, commune: str, paths: tuple[str, ...] = ("", "/at-risk", "/units")) -> list[dict]:
    """Every period and instant of the test, for each of the commune's report paths."""
    out = []
    for start, end in PERIODS:
        for as_of in AS_OF:
            query = {"from": start.isoformat(), "to": end.isoformat(), "as_of": as_of.isoformat()}
            for path in paths:
                answer = httpx.get(f"{metrics.url}/v1/reports/communes/{commune}{path}", params=query, timeout=30,
                                   headers=OPERATOR)
                assert answer.status_code == 200, answer.text
                out.append(answer.json())
    return out


def feedback_reports(metrics, commune: str) -> list[dict]:
    return reports(metrics, commune, ("/feedback",))


def feedback_held(pipeline, replica_name: str) -> set[str]:
    """The PAKN a replica keeps in its collection (not archived)."""
    async def ids() -> set[str]:
        client: AsyncMongoClient = AsyncMongoClient(pipeline.settings.mongo_url)
        try:
            collection = client[pipeline.settings.mongo_database][f"metrics_{replica_name}_feedback"]
            return {doc["_id"] async for doc in collection.find({}, {"_id": 1})}
        finally:
            await client.close()
    return asyncio.run(ids())


def scorecard(metrics, province: str) -> dict:
    answer = httpx.get(f"{metrics.url}/v1/reports/provinces/{province}/scorecard", timeout=30, headers=OPERATOR,
                       params={"from": "2025-07-01", "to": "2025-09-30", "as_of": "2025-10-01T00:00:00+07:00"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def in_thanh_ba(lives: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The same lives, received at Thanh Ba."""
    out = {}
    for code, events in lives.items():
        moved = code.replace("000.00.38.H56", "000.00.25.H43")
        out[moved] = [e | {"subject": moved, "id": f"{e['id']}-25",
                           "data": e["data"] | ({"commune_code": THANH_BA} if e["type"] == "dossier.received" else {})}
                      for e in events]
    return out


def test_replicas_of_different_provinces_give_together_what_one_replica_gives(pipeline):
    pipeline.add_processing().start()
    whole = replica(pipeline, "whole")
    north = replica(pipeline, "north", DOSSIER_METRICS_PROVINCES="38")
    south = replica(pipeline, "south", DOSSIER_METRICS_PROVINCES="25", DOSSIER_METRICS_OWNERS=f'{{"38": "{north.url}"}}')
    try:
        ours, theirs = histories(20, seed=21), in_thanh_ba(histories(15, seed=22))
        pipeline.post([e for lives in (ours, theirs) for events in lives.values() for e in events])
        wait_until(lambda: (counted(whole), counted(north), counted(south)) == (35, 20, 15), timeout=90,
                   message="each replica counts its provinces' dossiers")
        wait_until(lambda: business(north) | business(south) == business(whole), timeout=30,
                   message="the replicas' series, together, are the whole replica's")
        shards, everything = (business(north), business(south)), business(whole)
        assert not set(shards[0]) & set(shards[1]), "no series in both: Prometheus' sums stay right"
        assert {dict(labels).get("commune") for _, labels in shards[1]} <= {THANH_BA, None}

        assert reports(north, BA_THUOC) == reports(whole, BA_THUOC)
        assert reports(south, THANH_BA) == reports(whole, THANH_BA)
        assert scorecard(north, "38") == scorecard(whole, "38") and scorecard(south, "25") == scorecard(whole, "25")

        july = {"from": "2025-07-01", "to": "2025-07-31"}
        misdirected = httpx.get(f"{south.url}/v1/reports/communes/{BA_THUOC}", params=july, headers=OPERATOR)
        assert misdirected.status_code == 421 and north.url in misdirected.json()["detail"]
        unknown_owner = httpx.get(f"{north.url}/v1/reports/provinces/25/scorecard", params=july, headers=OPERATOR)
        assert unknown_owner.status_code == 421 and "25" in unknown_owner.json()["detail"]
        assert everything  # the whole replica answers for both
    finally:
        for metrics in (whole, north, south):
            metrics.stop()


def test_dossiers_that_ended_before_the_horizon_leave_memory_and_every_report_stays_the_same(pipeline):
    """`bounded` keeps no quarter before the current one (its horizon); `kept` keeps everything. The
    2025 dossiers and PAKN that ended leave `bounded`'s memory for the archive; those still open stay."""
    pipeline.add_processing().start()
    kept = replica(pipeline, "kept", DOSSIER_METRICS_HORIZON_QUARTERS="1000")
    bounded = replica(pipeline, "bounded", DOSSIER_METRICS_HORIZON_QUARTERS="0",
                      DOSSIER_METRICS_COMPACT_INTERVAL_SECONDS="1")
    try:
        lives = histories(40, seed=23)
        opened = sum(len(events) == 2 for events in lives.values())  # received and digitized, never ended
        rated = [c for c, events in lives.items() if events[-1]["type"] == "dossier.rated"]
        asyncio.run(publish_status(pipeline, verified(rated[0], "KQ-1", "valid", datetime(2025, 7, 20, tzinfo=VN))))
        pipeline.post([e for events in lives.values() for e in events] + PAKN)
        wait_until(lambda: counted(kept) == len(lives) and counted(bounded) == opened, timeout=90,
                   message="kept holds every dossier, bounded only the open ones")
        wait_until(lambda: feedback_held(pipeline, "kept") == {"PAKN-A", "PAKN-B", "PAKN-C", "PAKN-D", "PAKN-E"}
                   and feedback_held(pipeline, "bounded") == {"PAKN-B", "PAKN-C", "PAKN-D"}, timeout=60,
                   message="kept holds every PAKN, bounded only the open ones (A published, E rejected)")
        wait_until(lambda: business(bounded) == business(kept), message="the same figures")
        expected = reports(kept, BA_THUOC), scorecard(kept, "38"), feedback_reports(kept, BA_THUOC)
        assert expected[2][0]["counts"]["taken"] > 0  # July's PAKN counted
        assert (reports(bounded, BA_THUOC), scorecard(bounded, "38"), feedback_reports(bounded, BA_THUOC)) == expected

        bounded.stop()
        bounded.start()  # loads the state, the carried dossiers and no log before the horizon
        assert counted(bounded) == opened and business(bounded) == business(kept)
        assert (reports(bounded, BA_THUOC), scorecard(bounded, "38"), feedback_reports(bounded, BA_THUOC)) == expected

        # An archived dossier rated a year on counts once, from memory, with its verdict, and goes back at the next
        # compaction, also when the service restarts first (its archived figures counted twice after a restart
        # before, and its verdict was lost: a review found both). A verdict for another archived dossier is kept
        # through the compactions, and a status record older than what the archive holds changes nothing.
        bounded.stop()
        bounded = replica(pipeline, "bounded", DOSSIER_METRICS_HORIZON_QUARTERS="0",
                          DOSSIER_METRICS_COMPACT_INTERVAL_SECONDS="3600")  # a compaction only as it starts
        code, events = rated[0], lives[rated[0]]
        late = event("dossier.rated", code, datetime.fromisoformat(events[-1]["time"]) + timedelta(days=365),
                     id_=f"{code}-late", rating="unsatisfied")
        first = fold([parse_event(e) for e in lives[rated[1]][:1]], CAL)
        older = status_changed(first.dossier, None, status_of(first.dossier, CAL), first.timeline, 1)
        asyncio.run(publish_status(pipeline, verified(rated[2], "KQ-2", "invalid", datetime(2025, 7, 25, tzinfo=VN))))
        asyncio.run(publish_status(pipeline, older))
        pipeline.post([late])
        wait_until(lambda: sample(kept, "dossier_ratings", rating="unsatisfied") == 1
                   and sample(kept, "dossier_signatures", verdict="invalid") == 1,
                   timeout=60, message="the late rating and the verdict counted by kept")
        wait_until(lambda: business(bounded) == business(kept), message="and by bounded, once")
        assert reports(bounded, BA_THUOC) == reports(kept, BA_THUOC)
        for _ in range(2):  # the first start archives the rated dossier again, the second loads what it wrote
            bounded.stop()
            bounded.start()
            assert counted(bounded) == opened, "the rated dossier back in the archive"
            assert business(bounded) == business(kept)
            assert reports(bounded, BA_THUOC) == reports(kept, BA_THUOC)

        # Its horizon raised: the horizon stays where the archive begins. It went back before, and reports no
        # longer read the archived dossiers (found by hand: the demo's stack restarted with its clock in 2028,
        # then in 2026).
        bounded.stop()
        bounded = replica(pipeline, "bounded", DOSSIER_METRICS_HORIZON_QUARTERS="1000")
        assert counted(bounded) == opened and business(bounded) == business(kept)
        assert (reports(bounded, BA_THUOC), scorecard(bounded, "38")) == (reports(kept, BA_THUOC),
                                                                          scorecard(kept, "38"))

        # Both clocks back in the lives' quarter, long before bounded's horizon: the points at risk of the
        # quarter read the archived dossiers too, as its reports do (they read memory alone before, a review found).
        summer = {"DOSSIER_CLOCK_OFFSET_SECONDS": str((datetime(2025, 7, 9, 12, tzinfo=VN)
                                                       - datetime.now(VN)).total_seconds())}
        kept.stop()
        bounded.stop()
        kept = replica(pipeline, "kept", DOSSIER_METRICS_HORIZON_QUARTERS="1000", **summer)
        bounded = replica(pipeline, "bounded", DOSSIER_METRICS_HORIZON_QUARTERS="0",
                          DOSSIER_METRICS_COMPACT_INTERVAL_SECONDS="1", **summer)
        at_risk = [sample for sample in business(kept) if sample[0] == "dossier_points_at_risk"]
        assert at_risk and any(business(kept)[sample] for sample in at_risk), "the quarter has points at risk"
        assert counted(bounded) == opened and business(bounded) == business(kept)
        assert (reports(bounded, BA_THUOC), scorecard(bounded, "38")) == (reports(kept, BA_THUOC),
                                                                          scorecard(kept, "38"))
        # A dossier that ends now stays in memory: what leaves it follows the clock, not the store's horizon.
        code = next(c for c, events in lives.items() if len(events) == 2)
        before = business(kept)
        pipeline.post([event("dossier.resolved", code, datetime(2025, 7, 9, 11, tzinfo=VN), id_=f"{code}-end")])
        wait_until(lambda: business(bounded) == business(kept) and business(kept) != before, timeout=60,
                   message="the end counted by both")
        time.sleep(3)  # compactions every second
        assert counted(bounded) == opened
    finally:
        kept.stop()
        bounded.stop()


def sample(metrics, name: str, **labels: str) -> float:
    """The sum of a business figure's samples with these labels."""
    return sum(value for (n, sample_labels), value in business(metrics).items()
               if n == name and labels.items() <= dict(sample_labels).items())


def verified(code: str, document: str, verdict: str, at: datetime) -> SignatureVerified:
    """The signature service's verdict on a result of a dossier received at Bá Thước."""
    return SignatureVerified(id=f"{code}-{document}-{verdict}", subject=code, time=at, data=SignatureData(
        dossier_code=code, commune_code=BA_THUOC, sector="HT", document_id=document, verdict=verdict, reasons=[],
        document_sha256="ab" * 32, signatures=[]))


def as_kept_before_v1_2(data: dict) -> dict:
    """What versions before v1.2 kept of a status record: its fields the figures read, and `new`."""
    fields = ("dossier_code", "commune_code", "sector", "procedure_code", "channel", "online_level", "received_at",
              "events", "timeline", "arrivals", "arrivals_synced")
    return {name: data[name] for name in fields} | {"new": {"appointment_at": data["new"]["appointment_at"]}}


def test_what_a_version_before_the_archive_stored_is_moved_once_and_counted(pipeline):
    """An upgrade: `metrics_status` (blobs of statuses), `metrics_signatures` and `metrics_clock_sent`
    become the quarters' logs by the one-off `migrate` command, and are gone after it."""
    lives = histories(12, seed=24)
    statuses = []
    for events in lives.values():
        folded = fold([parse_event(e) for e in events], CAL)
        record = status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(events))
        statuses.append(as_kept_before_v1_2(orjson.loads(record.to_bytes())["data"]))
    code = next(iter(lives))
    verdict = SignatureData(dossier_code=code, commune_code=BA_THUOC, sector="HT", document_id="KQ-1",
                            verdict="valid", reasons=[], document_sha256="ab" * 32, signatures=[])

    async def store_as_before() -> None:
        client = AsyncMongoClient(pipeline.settings.mongo_url)
        try:
            db = client[pipeline.settings.mongo_database]
            await db["metrics_status"].insert_one({"_id": "a", "statuses": Binary(orjson.dumps(statuses))})
            await db["metrics_signatures"].insert_one({"_id": "v1", "time": "2025-07-20T10:00:00+07:00",
                                                       "data": verdict.model_dump(mode="json")})
            await db["metrics_clock_sent"].insert_one({"_id": "clock-1"})
        finally:
            await client.close()

    async def collections() -> set[str]:
        client = AsyncMongoClient(pipeline.settings.mongo_url)
        try:
            return set(await client[pipeline.settings.mongo_database].list_collection_names())
        finally:
            await client.close()

    asyncio.run(store_as_before())
    metrics = service("metrics", pipeline.settings, **FAST)
    command = [sys.executable, "-m", "services.metrics", "migrate"]
    moved = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=metrics.env, timeout=60)
    assert (moved.returncode, moved.stdout.strip()) == (0, "moved what an earlier version stored into the quarters' logs"), moved.stderr
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=metrics.env, timeout=60)
    assert again.stdout.strip() == "nothing to move", again.stderr
    metrics.start()
    try:
        assert counted(metrics) == len(lives)
        assert any(name == "dossier_signatures" and dict(labels)["verdict"] == "valid" and value == 1
                   for (name, labels), value in business(metrics).items())
        assert not {"metrics_status", "metrics_signatures", "metrics_clock_sent"} & asyncio.run(collections())
        metrics.stop()
        metrics.start()
        assert counted(metrics) == len(lives)
    finally:
        metrics.stop()


def test_statuses_a_version_before_v1_4_stored_are_rewritten_as_rows_once_and_counted_the_same(pipeline):
    """An upgrade: the logs' blobs of whole statuses become blobs of rows by `migrate`, and a start counts the same."""
    lives = histories(12, seed=26)
    statuses = []
    for events in lives.values():
        folded = fold([parse_event(e) for e in events], CAL)
        record = status_changed(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(events))
        statuses.append(Counted.of(record.data))

    async def stored(as_before: bytes | None = None) -> list[str]:
        """The kinds of the blobs in the quarter's log, after storing `as_before` there."""
        client = AsyncMongoClient(pipeline.settings.mongo_url)
        try:
            log = client[pipeline.settings.mongo_database]["metrics_log_2025q3"]
            if as_before is not None:
                await log.insert_one({"_id": "v1.3", "kind": "statuses", "blob": Binary(as_before)})
            return [doc["kind"] async for doc in log.find({})]
        finally:
            await client.close()

    assert asyncio.run(stored(KEPT.dump_json(statuses))) == ["statuses"]
    metrics = service("metrics", pipeline.settings, **FAST)
    command = [sys.executable, "-m", "services.metrics", "migrate"]
    rewritten = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=metrics.env, timeout=60)
    assert rewritten.stdout.strip() == f"rewrote {len(lives)} statuses an earlier version stored as rows", rewritten.stderr
    assert asyncio.run(stored()) == ["held"]
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=metrics.env, timeout=60)
    assert again.stdout.strip() == "nothing to move", again.stderr
    metrics.start()
    try:
        assert counted(metrics) == len(lives)
    finally:
        metrics.stop()


def test_a_log_written_a_few_rows_at_a_time_is_rewritten_in_full_blobs_and_loads_the_same(pipeline):
    """A live service stores a blob per batch: consumed one record at a time, a quarter's log holds a blob per
    status record and per verdict. Once a start has settled what it loaded, the log is written anew from memory in
    full blobs (services/metrics/compaction.py `consolidate`): the next start reads a blob of each, and counts the
    same."""
    pipeline.add_processing().start()
    lives = histories(40, seed=25)
    small = replica(pipeline, "small", DOSSIER_METRICS_MAX_BATCH="1", DOSSIER_METRICS_HORIZON_QUARTERS="1000")
    try:
        pipeline.post([e for events in lives.values() for e in events])
        asyncio.run(publish_each(pipeline, [verified(code, "KQ-1", "valid", datetime(2025, 7, 20, tzinfo=VN))
                                            for code in list(lives)[:20]]))
        wait_until(lambda: counted(small) == len(lives) and held_blobs(pipeline, "small") == statuses_of(pipeline)
                   and held_blobs(pipeline, "small", "verdicts") == 20, timeout=90, message="a blob per record")
        assert held_blobs(pipeline, "small") > 100
        wait_until(lambda: sample(small, "dossier_received_total") == len(lives)
                   and sample(small, "dossier_signatures") == 20, message="the snapshot up to date")
        before = business(small), reports(small, BA_THUOC)
        small.stop()
        small.start()
        wait_until(lambda: held_blobs(pipeline, "small") == held_blobs(pipeline, "small", "verdicts") == 1,
                   message="the quarter's log in a blob of rows and one of verdicts")
        assert (business(small), reports(small, BA_THUOC)) == before
        small.stop()
        small.start()
        assert (business(small), reports(small, BA_THUOC)) == before
        assert held_blobs(pipeline, "small") == held_blobs(pipeline, "small", "verdicts") == 1
    finally:
        small.stop()


async def publish_each(pipeline, records: list) -> None:
    """Records on dossier-status, one at a time."""
    producer = AIOKafkaProducer(**client_options(pipeline.settings))
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(pipeline.settings.topic_status, record.to_bytes(), key=record.subject.encode())
    finally:
        await producer.stop()


def statuses_of(pipeline) -> int:
    """Processing's status records on the topic."""
    records = asyncio.run(read_topic(pipeline.settings, pipeline.settings.topic_status))
    return sum(orjson.loads(r.value)["source"] == PROCESSING_SOURCE for r in records)


def held_blobs(pipeline, replica_name: str, kind: str = "held") -> int:
    """The blobs of rows (or of another kind) in a replica's log of the lives' quarter."""
    async def count() -> int:
        client: AsyncMongoClient = AsyncMongoClient(pipeline.settings.mongo_url)
        try:
            log = client[pipeline.settings.mongo_database][f"metrics_{replica_name}_log_2025q3"]
            return len([doc async for doc in log.find({}, {"kind": 1}) if doc["kind"] == kind])
        finally:
            await client.close()
    return asyncio.run(count())
