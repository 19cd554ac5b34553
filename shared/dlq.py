"""Dead-letter topics, for operators (docs/contract.md §2):

    python -m shared.dlq list dossier-status.dlq.notifications
    python -m shared.dlq replay dossier-status.dlq.notifications --offset 0/12 --offset 3/40

`list` prints each record of a dead-letter topic: where it lies (partition/offset), where it came
from, why, and the start of its value. `replay` puts the chosen records back, byte for byte, on
the topic they came from (their `dlq-origin-topic`, or `--to`), once what refused them is fixed:
consumers deduplicate, so a record put back twice changes nothing. No phone number is printed.
Kafka's admin user runs it (DOSSIER_KAFKA_USERNAME and _PASSWORD_FILE: docs/security.md): the services'
users may not read dead-letter topics.
"""

import argparse
import asyncio
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from shared.contracts import DeadLetter
from shared.kafka import client_options, partitions_of
from shared.privacy import scrub
from shared.settings import ServiceSettings


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    why: DeadLetter | None  # None: headers not ours (written by hand?)

    @property
    def place(self) -> str:
        return f"{self.partition}/{self.offset}"


async def letters(settings: ServiceSettings, topic: str) -> list[Letter]:
    """Every record of a dead-letter topic, up to its end now."""
    partitions = await partitions_of(settings, topic)
    if not partitions:
        raise SystemExit(f"no topic {topic} on {settings.kafka_bootstrap_servers}")
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka: let the group-less consumer's task run once before stopping
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, start in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, start)
        found: list[Letter] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    try:
                        why = DeadLetter.from_headers(list(r.headers))
                    except ValidationError:
                        why = None
                    found.append(Letter(r.partition, r.offset, r.key, r.value or b"", list(r.headers), why))
        return sorted(found, key=lambda letter: (letter.partition, letter.offset))
    finally:
        await consumer.stop()


def describe(letter: Letter) -> str:
    why = letter.why
    origin = f"{why.origin_topic}/{why.origin_partition}/{why.origin_offset}" if why and why.origin_topic else "?"
    head = letter.value[:160].decode(errors="replace").replace("\n", " ")
    return scrub(f"{letter.place}  from {origin}  group {why.group if why else '?'}  {why.error if why else '?'}: "
                 f"{why.reason if why else '(no dlq headers)'}\n      {head}")


async def replay(settings: ServiceSettings, topic: str, places: list[str], to: str | None) -> list[str]:
    chosen = {p: letter for letter in await letters(settings, topic) for p in [letter.place] if p in places}
    if missing := [p for p in places if p not in chosen]:
        raise SystemExit(f"no record at {', '.join(missing)} in {topic}")
    producer = AIOKafkaProducer(**client_options(settings), acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        done = []
        for place, letter in chosen.items():
            target = to or (letter.why.origin_topic if letter.why else None)
            if not target:
                raise SystemExit(f"{place} does not say where it came from: give --to")
            headers = [(k, v) for k, v in letter.headers if not k.startswith("dlq-")]
            await producer.send_and_wait(target, letter.value, key=letter.key, headers=headers)
            done.append(f"{place} -> {target}")
        return done
    finally:
        await producer.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.dlq", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the records of a dead-letter topic, with why")
    listing.add_argument("topic")
    again = commands.add_parser("replay", help="put chosen records back where they came from")
    again.add_argument("topic")
    again.add_argument("--offset", action="append", required=True, metavar="PARTITION/OFFSET")
    again.add_argument("--to", help="the topic to put them on (default: where each came from)")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    if args.command == "list":
        found = asyncio.run(letters(settings, args.topic))
        for letter in found:
            print(describe(letter))
        print(f"{len(found)} records in {args.topic}")
    else:
        for line in asyncio.run(replay(settings, args.topic, args.offset, args.to)):
            print(f"put back {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
