"""`python -m services.processing reseal`: once, after upgrading from a version before v1.3, every applicant
written in clear sealed under its dossier's key, on the topics and in processing's store (docs/security.md,
"Retention of personal data"). Run it with every consumer stopped (intake may go on), as Kafka's admin user.

Before v1.3 intake published a receipt's applicant (name, phone) as it came, and processing copied it into its
status records, its stored history and the view operators read; Kafka keeps them forever. This command:
- gives each such dossier its key, as intake would have at its receipt (listed in the citizen's index), and puts
  it up for erasure as processing would have, from its stored summary: when it left the open states (end or
  withdrawal) + the retention days, or, still open, at its review (`DOSSIER_PERSONAL_IDLE_DAYS` after its last
  step). A dossier whose retention is over gets no key: its applicant keeps `sms_opt_in` alone, and a receipt
  sent again gets no key either (`DossierKeys.erase`);
- seals every clear applicant in processing's store (`dossiers`, `dossier_histories`, `dossier_links`; the view
  takes its receipt's, with the phone whole, and no longer keeps its 4 digits apart);
- copies each partition of the topics that holds one (the events', the status records' and their dead-letter
  topics) after its end, the applicants sealed and everything else byte for byte (key, headers, timestamp);
  moves every consumer group's committed offset to the copy of the record it was at; then deletes the records
  it copied (the copies began a segment of their own, so that the broker deletes the originals' files). No
  consumer misses a record, nor reads one twice (but where intake published between the copies: a group then
  reads again the copies after intake's first record, rather than skip it).

Safe to run again: what is sealed is left as it is. A run stopped between a partition's copies and its deletion
leaves records twice on it, which consumers skip (they deduplicate by event id); the next run copies and deletes
them. A partition of a group with members running is refused before anything is written to it.
"""

import asyncio
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.processing.history import left_open_at
from services.processing.settings import ProcessingSettings
from shared.kafka import MAX_MESSAGE_BYTES, client_options
from shared.mongo import get_many, pack, replace_all, unpack
from shared.personal import CLEAR, DossierKeys, Retention, sealed_applicant
from shared.privacy import mask_phone

STORE = ("dossiers", "dossier_histories", "dossier_links")
BATCH = 500
RECEIVED = "dossier.received"
TOPIC_CONFIG = 1  # a setting's source in DescribeConfigs: the topic's own

Seal = Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]]  # (code, applicant, its holder) → sealed


class ConsumersRunning(Exception):
    """A consumer group has a member on one of the topics: nothing is written."""


def is_clear(applicant: Any) -> bool:
    """Whether an applicant holds anything personal readable: a field but `sealed` and CLEAR's, not null."""
    return (isinstance(applicant, dict) and applicant.get("sealed") is None
            and any(value is not None for name, value in applicant.items() if name not in CLEAR))


def _walk(value: Any, code: str | None, visit: Seal) -> Any:
    """`value` with each clear applicant replaced by what `visit` gives for it (the same object when nothing
    changed). An applicant's dossier is its holder's `dossier_code`, else the enclosing event's `subject`; JSON
    held as text (stored events, records) is read and written back as text."""
    if isinstance(value, dict):
        code = value.get("dossier_code") if isinstance(value.get("dossier_code"), str) else (
            value["subject"] if isinstance(value.get("subject"), str) and "data" in value else code)
        new = {}
        for name, item in value.items():
            new[name] = (visit(code, item, value) if name == "applicant" and code and is_clear(item)
                         else _walk(item, code, visit))
        return new if any(new[name] is not value[name] for name in value) else value
    if isinstance(value, list):
        items = [_walk(item, code, visit) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, str) and value.startswith("{") and '"applicant"' in value:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        changed = _walk(parsed, code, visit)
        return value if changed is parsed else orjson.dumps(changed).decode()
    return value


def clear_applicants(value: Any) -> dict[str, dict[str, Any]]:
    """The dossiers with an applicant in clear in `value`: code → one of them (the first)."""
    found: dict[str, dict[str, Any]] = {}

    def note(code: str, applicant: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
        found.setdefault(code, applicant)
        return applicant

    _walk(value, None, note)
    return found


def resealed(value: Any, keys: dict[str, bytes | None], whole: dict[str, dict[str, Any]] | None = None) -> Any:
    """`value` with every clear applicant sealed under its dossier's key (only CLEAR's fields kept where the key
    is None). `whole`: code → the applicant as its receipt gave it, sealed in place of a view's (whose phone is
    masked)."""
    def seal(code: str, applicant: dict[str, Any], holder: dict[str, Any]) -> dict[str, Any]:
        if "history" in holder and "state" in holder:  # a view (docs/contract.md §6)
            if keys[code] is None:  # as processing keeps an applicant with nothing personal (history.py)
                return {"name": None, "phone": None}
            applicant = (whole or {}).get(code, applicant)
        return sealed_applicant(keys[code], code, {k: v for k, v in applicant.items() if v is not None})

    return _walk(value, None, seal)


def receipt_applicant(blob: Any) -> dict[str, Any] | None:
    """The applicant of the receipt a stored summary or history holds (the one processing accepted)."""
    if not isinstance(blob, dict):
        return None
    for raw in [blob.get("receipt"), *(blob.get("events") or [])]:
        event = orjson.loads(raw) if isinstance(raw, str) else raw
        if isinstance(event, dict) and event.get("type") == RECEIVED and isinstance(event.get("data"), dict):
            return event["data"].get("applicant")
    return None


def resealed_blob(blob: Any, keys: dict[str, bytes | None]) -> Any:
    """A stored document's blob resealed; its view's applicant becomes its receipt's, sealed (`whole_applicant`),
    and the phone's 4 digits kept beside the view (`phone4`) go: the lookup opens the view to compare them."""
    view = blob.get("view") if isinstance(blob, dict) else None
    code = view.get("dossier_code") if isinstance(view, dict) else None
    whole = whole_applicant(blob)
    new = resealed(blob, keys, {code: whole} if code and whole else None)
    if new is not blob and isinstance(view, dict) and is_clear(view.get("applicant")) and new.get("phone4"):
        new["phone4"] = None
    return new


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def whole_applicant(blob: Any) -> dict[str, Any] | None:
    """The applicant a stored summary's view shows, as its receipt gave it (the phone whole), if that receipt is
    the view's: the summary keeps the first receipt that came, the view the earliest of its owner's (a back-dated
    correction sent after it), so they are compared (the name, the masked phone)."""
    receipt = receipt_applicant(blob)
    view = blob.get("view") if isinstance(blob, dict) else None
    shown = view.get("applicant") if isinstance(view, dict) else None
    if not is_clear(receipt) or not isinstance(shown, dict) or "sealed" in shown:
        return None
    phone = receipt.get("phone")
    return receipt if receipt.get("name") == shown.get("name") and (
        mask_phone(phone) if phone else None) == shown.get("phone") else None


@dataclass
class Keys:
    """The key each dossier's applicant is sealed under, decided once from the dossier's stored summary: its
    own, made as intake makes it (listed for its citizen) and put up for erasure as processing would have, or
    None for a dossier past its retention (marked erased)."""

    keys: DossierKeys
    retention: Retention
    summaries: AsyncCollection  # processing's `dossiers`
    days: float
    idle_days: float
    clock: Callable[[], datetime]
    of: dict[str, bytes | None] = field(default_factory=dict)

    async def decide(self, found: dict[str, dict[str, Any]]) -> None:
        """Decide the dossiers found with an applicant in clear (code → one of them) that are not decided yet."""
        codes = [code for code in found if code not in self.of]
        if not codes:
            return
        stored = {code: unpack(doc["blob"]) for code, doc in (await get_many(self.summaries, codes)).items()}
        ended, opened, since, owners = {}, {}, {}, {}
        for code in codes:
            view = (stored.get(code) or {}).get("view")
            whole = whole_applicant(stored.get(code)) or {}
            owners[code] = whole.get("phone") if view else found[code].get("phone")
            if not view:  # not stored: its receipt never accepted (dead-lettered) or not consumed yet
                opened[code] = None  # erased at its review unless processing holds it open by then
            elif left := left_open_at(view):
                ended[code] = left
            else:
                opened[code] = len(view["history"])
                if steps := [_instant(step["time"]) for step in view["history"]]:
                    since[code] = max(s for s in steps if s)
        now = self.clock()
        expired = [code for code, left in ended.items() if left + timedelta(days=self.days) <= now] + [
            code for code, last in since.items() if last + timedelta(days=self.idle_days + self.days) <= now]
        if expired:
            await self.keys.erase(expired)
            self.of |= dict.fromkeys(expired)
        self.of |= await self.keys.keys_for({code: phone for code, phone in owners.items() if code not in expired})
        await self.retention.schedule({code: left for code, left in ended.items() if code not in expired})
        await self.retention.review({code: n for code, n in opened.items() if code not in expired},
                                    {code: last for code, last in since.items() if code not in expired})


def _batches(items: list[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def reseal_store(database: AsyncDatabase, keys: Keys) -> dict[str, int]:
    """Every document of processing's store with an applicant in clear, written again sealed: how many."""
    rewritten = {}
    for name in STORE:
        collection = database[name]
        ids = [doc["_id"] async for doc in collection.find({}, {"_id": 1})]  # once: a one-off scan
        rewritten[name] = 0
        for batch in _batches(ids):
            blobs = {_id: unpack(doc["blob"]) for _id, doc in (await get_many(collection, batch)).items()}
            found = {_id: applicants for _id, blob in blobs.items() if (applicants := clear_applicants(blob))}
            clear = {_id: blobs[_id] for _id in found}
            await keys.decide({code: a for applicants in found.values() for code, a in applicants.items()})
            docs = [{"_id": _id, "blob": pack(resealed_blob(blob, keys.of))} for _id, blob in clear.items()]
            await replace_all(collection, docs)
            rewritten[name] += len(docs)
    return rewritten


@dataclass
class Partition:
    """One partition's copy: where each group stood, and where the copies went. Intake may go on publishing
    meanwhile: its records land at the end too, between or after the copies."""

    tp: TopicPartition
    end: int  # the partition's end before the copy: every record before it is copied, then deleted
    committed: dict[str, int]  # group → its committed offset, before the copy
    moved: dict[int, int] = field(default_factory=dict)  # an old offset a group stood at → its copy's
    copies: list[int] = field(default_factory=list)  # the copies' offsets, in order

    def copied(self, old: int, new: int) -> None:
        """Record a copy: the groups that stood at or before `old` (and after the record before) move to `new`."""
        self.copies.append(new)
        for at in self.committed.values():
            if at <= old and at not in self.moved:
                self.moved[at] = new

    def offsets(self, new_end: int) -> dict[str, int]:
        """Each group's offset on the copies (the new end for those that had read everything), but never past a
        record someone else published after the old end: a group reads some copies twice, rather than skip one."""
        first_other = next((at for at, copy in zip(range(self.end, new_end), self.copies) if at != copy),
                           self.end + len(self.copies))
        return {group: min(self.moved.get(at, new_end), first_other) for group, at in self.committed.items()}


@asynccontextmanager
async def _reader(settings: ProcessingSettings, tp: TopicPartition) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer of one partition, for one pass. (One consumer assigned each partition in turn
    hung in aiokafka 0.14's `stop`, its fetcher never done cancelling: twice in ten runs of the test.)"""
    # A start deleted meanwhile (the topic's retention): on from the first record left, never from the end.
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka: a group-less consumer's task runs once before it may stop
    try:
        consumer.assign([tp])
        yield consumer
    finally:
        await consumer.stop()


async def _bounds(settings: ProcessingSettings, tp: TopicPartition) -> tuple[int, int]:
    """The partition's first offset and its end."""
    async with _reader(settings, tp) as consumer:
        return (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]


async def _records(settings: ProcessingSettings, tp: TopicPartition, start: int, end: int) -> AsyncIterator[list[Any]]:
    """The partition's records from `start` to `end`, in chunks as fetched."""
    async with _reader(settings, tp) as consumer:
        consumer.seek(tp, start)
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000, max_records=BATCH)).values():
                yield [r for r in records if r.offset < end]


def _parsed(value: bytes | None) -> Any:
    """A record's value as JSON when it may hold an applicant; None else (or not JSON: a dead letter's bytes)."""
    if not value or b'"applicant"' not in value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _value_resealed(value: bytes | None, parsed: Any, keys: dict[str, bytes | None]) -> bytes | None:
    """A record's value (`parsed`: as `_parsed` read it) with its applicants sealed; the same bytes if none was clear."""
    new = resealed(parsed, keys)
    return value if new is parsed else orjson.dumps(new)


def _clear_in(parsed: list[Any]) -> dict[str, dict[str, Any]]:
    """The dossiers with an applicant in clear in these records (as `_parsed` read them): code → the first."""
    found: dict[str, dict[str, Any]] = {}
    for value in parsed:
        for code, applicant in clear_applicants(value).items():
            found.setdefault(code, applicant)
    return found


@dataclass
class Topics:
    """Kafka's side: each partition holding a clear applicant copied after its end, sealed (module docstring)."""

    settings: ProcessingSettings
    keys: Keys
    admin: AIOKafkaAdminClient
    producer: AIOKafkaProducer

    async def names(self) -> list[str]:
        """The topics that may hold an applicant: the events', the status records' and their dead-letter topics."""
        prefixes = (self.settings.topic_events, self.settings.topic_status)
        return sorted(t for t in await self.admin.list_topics() if t.startswith(prefixes))

    async def reseal(self, topic: str) -> int:
        """Every partition of `topic` resealed; how many records were copied."""
        copied = 0
        [described] = await self.admin.describe_topics([topic])
        for p in sorted(p["partition"] for p in described.get("partitions", [])):
            copied += await self._partition(TopicPartition(topic, p))
        return copied

    async def _partition(self, tp: TopicPartition) -> int:
        start, end = await _bounds(self.settings, tp)
        if not await self._holds_clear(tp, start, end):
            return 0
        start, end = await _bounds(self.settings, tp)  # again after the scan: intake may have published meanwhile
        copy = Partition(tp, end, await self._committed(tp))
        copied = 0
        async with AsyncExitStack() as rolling:
            await rolling.enter_async_context(self._rolling(tp.topic))
            async for records in _records(self.settings, tp, start, end):
                parsed = [_parsed(r.value) for r in records]
                await self.keys.decide(_clear_in(parsed))
                # The first copy stamped now (the broker rolls on a record later than the segment's first).
                sent = [await self.producer.send(tp.topic, _value_resealed(r.value, p, self.keys.of), key=r.key,
                                                 partition=tp.partition, timestamp_ms=r.timestamp if copy.copies or n
                                                 else None, headers=list(r.headers))
                        for n, (r, p) in enumerate(zip(records, parsed, strict=True))]
                for r, metadata in zip(records, await asyncio.gather(*sent), strict=True):
                    copy.copied(r.offset, metadata.offset)
                copied += len(records)
                await rolling.aclose()  # the first copies began a segment: the topic's own settings again
        _, new_end = await _bounds(self.settings, tp)
        for group, offset in copy.offsets(new_end).items():
            await self._commit(group, tp, offset)
        await self.admin.delete_records({tp: RecordsToDelete(end)})
        return copied

    @asynccontextmanager
    async def _rolling(self, topic: str) -> AsyncIterator[None]:
        """The topic's segment rolled at its next record (`segment.ms` 1 meanwhile, and that record stamped later than
        the segment's first): Kafka deletes a log's files by whole segments, so the copies start one of their own,
        and the originals' go once they are deleted (at the broker's next retention check). A 1 found there was
        left by a run stopped midway: dropped."""
        kept = {name: value for name, value in (await self._overrides(topic)).items()
                if (name, value) != ("segment.ms", "1")}
        await self._configure(topic, kept | {"segment.ms": "1"})
        try:
            yield
        finally:
            await self._configure(topic, kept)

    async def _overrides(self, topic: str) -> dict[str, str]:
        """The topic's own settings (not the broker's defaults)."""
        [response] = await self.admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        return {name: value for *_, entries in response.resources for name, value, _, source, *_ in entries
                if source == TOPIC_CONFIG}

    async def _configure(self, topic: str, configs: dict[str, str]) -> None:
        """Set the topic's own settings (all of them: AlterConfigs replaces them), once the broker serves them."""
        await self.admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
        for _ in range(100):
            if await self._overrides(topic) == configs:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{topic}: the broker did not take {configs}")

    async def _holds_clear(self, tp: TopicPartition, start: int, end: int) -> bool:
        async with aclosing(_records(self.settings, tp, start, end)) as chunks:
            async for records in chunks:
                if _clear_in([_parsed(r.value) for r in records]):
                    return True
        return False

    async def _committed(self, tp: TopicPartition) -> dict[str, int]:
        """The groups with an offset on this partition, and where."""
        committed = {}
        for group, *_ in await self.admin.list_consumer_groups():
            found = (await self.admin.list_consumer_group_offsets(group, partitions=[tp])).get(tp)
            if found is not None and found.offset >= 0:
                committed[group] = found.offset
        return committed

    async def consuming(self, topics: list[str]) -> list[str]:
        """The groups with a member subscribed to one of these topics (they must be stopped first)."""
        busy = []
        for group, protocol, *_ in await self.admin.list_consumer_groups():
            # One group at a time: aiokafka 0.14 misreads DescribeGroups' answer for several.
            for response in await self.admin.describe_consumer_groups([group]):
                for _, _, _, _, _, members, *_ in response.groups:
                    if members and (protocol != "consumer" or any(set(topics) & _subscribed(m[3]) for m in members)):
                        busy.append(group)  # a running group of another kind (Kafka Connect...): refused too
        return busy

    async def _commit(self, group: str, tp: TopicPartition, offset: int) -> None:
        consumer = AIOKafkaConsumer(**client_options(self.settings), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.commit({tp: offset})
        finally:
            await consumer.stop()


def _subscribed(metadata: bytes) -> set[str]:
    """The topics a consumer group member subscribes to (known before its partitions are assigned)."""
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

    return set(ConsumerProtocolMemberMetadata.decode(metadata).subscription) if metadata else set()


async def reseal(settings: ProcessingSettings) -> dict[str, Any]:
    """The store, then the topics (the store tells each dossier's end): what was written again. Refused before
    anything is written while a consumer group has a member on one of the topics."""
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    database = mongo[settings.mongo_database]
    personal = DossierKeys(database, settings.personal_index_secret.get_secret_value())
    retention = Retention(database, personal, settings.personal_retention_days, settings.clock,
                          settings.personal_idle_days)
    keys = Keys(personal, retention, database["dossiers"], settings.personal_retention_days,
                settings.personal_idle_days, settings.clock)
    topics = Topics(settings, keys, AIOKafkaAdminClient(**client_options(settings)),
                    AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True,
                                     max_request_size=MAX_MESSAGE_BYTES))
    await asyncio.gather(topics.admin.start(), topics.producer.start())
    try:
        names = await topics.names()
        if busy := await topics.consuming(names):
            raise ConsumersRunning(f"consumer groups {', '.join(busy)} are running: stop every consumer, then run this again")
        out: dict[str, Any] = {"store": await reseal_store(database, keys)}
        out["topics"] = {topic: await topics.reseal(topic) for topic in names}
        out["dossiers"] = {"sealed": sum(1 for k in keys.of.values() if k),
                           "past retention": sum(1 for k in keys.of.values() if k is None)}
        return out
    finally:
        await asyncio.gather(topics.producer.stop(), topics.admin.close(), mongo.close())
