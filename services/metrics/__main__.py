"""`python -m services.metrics [serve]`, `... report --commune 14923 --from 2025-07-01 --to 2025-11-11`,
`... rebuild` (with the service stopped: the figures again from `dossier-status`, from its start)."""

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime

import orjson
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from services.metrics.app import create_app
from services.metrics.figures import Figures
from services.metrics.settings import MetricsSettings
from services.metrics.store import FiguresStore
from shared.calendar import WorkingCalendar
from shared.communes import commune
from shared.http import serve
from shared.kafka import partitions_of
from shared.logging import configure_logging
from shared.report import as_table
from shared.status import METRICS_SOURCE


async def report(settings: MetricsSettings, code: str, first: date, last: date, as_of: datetime) -> dict:
    """From the durable figures in MongoDB: works whether the service runs or not."""
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    figures = Figures(WorkingCalendar.load(settings.calendar))
    try:
        async for doc in FiguresStore(mongo, settings.mongo_database).statuses(code):
            figures.apply(doc, as_of)
    finally:
        await mongo.close()
    return {"commune_code": code, "from": first.isoformat(), "to": last.isoformat(), "as_of": as_of.isoformat(),
            **figures.report(code, first, last, as_of)}


async def rebuild(settings: MetricsSettings) -> tuple[int, int]:
    """Drop the stored figures, store every status event of the topic again, and move the service's
    consumer group to the end: the next start loads exactly what the topic says."""
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    store = FiguresStore(mongo, settings.mongo_database)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=settings.metrics_group_id, enable_auto_commit=False)
    partitions = await partitions_of(settings, settings.topic_status)
    if not partitions:
        raise SystemExit(f"no topic {settings.topic_status} on {settings.kafka_bootstrap_servers}")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        await store.drop()
        statuses = clocks = 0
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            events = [orjson.loads(r.value) for records in batch.values() for r in records]
            datas = [e["data"] for e in events if e["source"] != METRICS_SOURCE]
            sent = [e["id"] for e in events if e["source"] == METRICS_SOURCE]
            await store.save(datas)
            await store.mark_sent(sent)
            statuses, clocks = statuses + len(datas), clocks + len(sent)
        await consumer.commit({tp: ends[tp] for tp in partitions})
        return statuses, clocks
    finally:
        await consumer.stop()
        await mongo.close()


def main(argv: list[str]) -> int:
    settings = MetricsSettings()
    parser = argparse.ArgumentParser(prog="python -m services.metrics")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    one = commands.add_parser("report", help="a commune's indicators for a cohort, as a table")
    one.add_argument("--commune", required=True)
    one.add_argument("--from", dest="first", required=True, type=date.fromisoformat)
    one.add_argument("--to", dest="last", required=True, type=date.fromisoformat)
    one.add_argument("--as-of", type=datetime.fromisoformat, default=datetime.now(UTC))
    one.add_argument("--json", action="store_true", help="the report API's JSON instead of a table")
    commands.add_parser("rebuild", help="the stored figures again from dossier-status (service stopped)")
    args = parser.parse_args(argv)

    if args.command in (None, "serve"):
        serve("metrics", lambda: create_app(settings), settings, settings.metrics_port)
        return 0
    configure_logging("metrics", settings.log_level, "console")
    if args.command == "rebuild":
        statuses, clocks = asyncio.run(rebuild(settings))
        print(f"stored {statuses} status events and {clocks} clock events from {settings.topic_status}")
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
