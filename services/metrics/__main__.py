"""`python -m services.metrics [serve]`, `... report --commune 14923 --from 2025-07-01 --to 2025-11-11`,
`... rebuild` (with the service stopped: the figures again from `dossier-status`, from its start),
`... migrate` (once, with the service stopped: what a version before the archive stored, moved)."""

import argparse
import asyncio
import sys
from datetime import date, datetime

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from services.metrics.app import create_app
from services.metrics.consumer import sorted_out
from services.metrics.figures import figures_of, held_from
from services.metrics.loader import move_legacy
from services.metrics.core import MetricsCore
from services.metrics.settings import MetricsSettings
from services.metrics.store import FiguresStore
from shared.communes import commune
from shared.http import serve
from shared.kafka import client_options, partitions_of
from shared.logging import configure_logging
from shared.report import as_table
from shared.contracts import FeedbackChanged, StatusRecord

RECORDS: TypeAdapter[Any] = TypeAdapter(StatusRecord)


async def report(settings: MetricsSettings, code: str, first: date, last: date, as_of: datetime) -> dict:
    """From the durable figures in MongoDB, as the service loads them: works whether it runs or not."""
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        core = stored_core(settings, mongo)
        await core.load(compact=False)
        figures = await core.figures_for([code], first, last)
    finally:
        await mongo.close()
    return {"commune_code": code, "from": first.isoformat(), "to": last.isoformat(), "as_of": as_of.isoformat(),
            **figures.report(code, first, last, as_of)}


def stored_core(settings: MetricsSettings, mongo: AsyncMongoClient) -> MetricsCore:
    return MetricsCore(settings, figures_of(settings),
                       FiguresStore(mongo, settings.mongo_database, settings.metrics_replica), CollectorRegistry(),
                       settings.clock)


async def rebuild(settings: MetricsSettings) -> dict[str, int]:
    """Drop this replica's stored figures, store every status record of the topic again (processing's
    statuses, signature verdicts, the clock's announcements) for the provinces it owns, and move its
    consumer group to the end: the next start loads exactly what the topic says (and moves what ended
    before the horizon to the archive). A record that does not parse is counted and left (its
    consumer group dead-lettered it)."""
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    core = stored_core(settings, mongo)
    consumer = AIOKafkaConsumer(**client_options(settings),
                                group_id=settings.metrics_group_id, enable_auto_commit=False)
    partitions = await partitions_of(settings, settings.topic_status)
    if not partitions:
        raise SystemExit(f"no topic {settings.topic_status} on {settings.kafka_bootstrap_servers}")
    await consumer.start()
    try:
        consumer.assign(partitions)
        for tp, start in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, start)
        ends = await consumer.end_offsets(partitions)
        await core.store.drop()
        counts = {"statuses": 0, "signatures": 0, "clock": 0, "feedback": 0, "undecodable": 0}
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            values = []
            for record in (r for records in batch.values() for r in records):
                try:
                    values.append(RECORDS.validate_json(record.value or b""))
                except ValidationError:
                    counts["undecodable"] += 1
            statuses, verdicts, clocks, _ = sorted_out(core.replica, values)
            pakn = core.feedback.owned(v.data for v in values if isinstance(v, FeedbackChanged))
            await core.feedback.store.save(pakn)
            counts["feedback"] += len(pakn)
            clock = [(c.id, core.figures.calendar.local(c.data.received_at).date()) for c in clocks]
            await core.store.save(core.replica.batch_of([held_from(s.data) for s in statuses], verdicts, clock))
            counts["statuses"] += len(statuses)
            counts["signatures"] += len(verdicts)
            counts["clock"] += len(clocks)
        await consumer.commit({tp: ends[tp] for tp in partitions})
        return counts
    finally:
        await consumer.stop()
        await mongo.close()


async def migrate(settings: MetricsSettings) -> tuple[bool, int]:
    """What a version before the archive stored (`metrics_status`, `metrics_signatures`,
    `metrics_clock_sent`) into the quarters' logs, once (False when there was nothing to move); then the
    statuses a version before v1.4 stored rewritten as rows, which a start reads faster (how many)."""
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        core = stored_core(settings, mongo)
        moved = await move_legacy(core.replica, settings.clock())
        return moved, await core.store.rewrite_statuses()
    finally:
        await mongo.close()


def main(argv: list[str]) -> int:
    settings = MetricsSettings()
    parser = argparse.ArgumentParser(prog="python -m services.metrics")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the core (the default)")
    one = commands.add_parser("report", help="a commune's indicators for a cohort, as a table")
    one.add_argument("--commune", required=True)
    one.add_argument("--from", dest="first", required=True, type=date.fromisoformat)
    one.add_argument("--to", dest="last", required=True, type=date.fromisoformat)
    one.add_argument("--as-of", type=datetime.fromisoformat, default=settings.clock())
    one.add_argument("--json", action="store_true", help="the report API's JSON instead of a table")
    commands.add_parser("rebuild", help="the stored figures again from dossier-status (core stopped)")
    commands.add_parser("migrate", help="once, what a version before the archive or v1.4 stored (core stopped)")
    args = parser.parse_args(argv)

    if args.command in (None, "serve"):
        serve("metrics", lambda: create_app(settings), settings, settings.metrics_port)
        return 0
    configure_logging("metrics", settings.log_level, "console")
    if args.command == "rebuild":
        counts = asyncio.run(rebuild(settings))
        print(f"stored {counts['statuses']} status events, {counts['signatures']} signature verdicts and "
              f"{counts['clock']} clock events and {counts['feedback']} PAKN records from {settings.topic_status}"
              + (f"; {counts['undecodable']} records that do not parse left out" if counts["undecodable"] else ""))
        return 0
    if args.command == "migrate":
        moved, rewritten = asyncio.run(migrate(settings))
        if moved:
            print("moved what an earlier version stored into the quarters' logs")
        if rewritten:
            print(f"rewrote {rewritten} statuses an earlier version stored as rows")
        if not (moved or rewritten):
            print("nothing to move")
        return 0
    unit = commune(args.commune)
    if unit is None:
        print(f"no commune-level unit {args.commune} in the official list", file=sys.stderr)
        return 2
    if args.first > args.last or args.as_of.tzinfo is None:
        print("--from must not be after --to, and --as-of needs a UTC offset", file=sys.stderr)
        return 2
    result = asyncio.run(report(settings, args.commune, args.first, args.last, args.as_of))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if args.json
          else as_table(f"{unit.name} ({unit.code}), {unit.province_name}", result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
