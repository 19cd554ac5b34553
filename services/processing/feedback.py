"""A PAKN's events (phản ánh, kiến nghị, docs/domain.md §9) from `dossier-events`: integrated into its
stored history, folded (shared/feedback.py), its status announced on `dossier-status` (`FeedbackChanged`),
the events that cannot apply dead-lettered on `dossier-events.dlq` with their reason.

Storage (`FeedbackStore`): a chain of insert-only links per PAKN, `_id` = its code, `code#1`, ... in
`feedback_links`, with a summary per PAKN in `feedback` (shared/mongo.py's `Chain`): every read is a key
read. Inserting link n is the check between replicas: one that finds it written reloads and integrates
again. A link holds the batch's new events, the keys newly dead-lettered and the outbox; the outbox is
published after the write, so a crash repeats the batch, which finds only duplicates and publishes the
last outbox again (consumers keep the record with the most events).
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from services.processing.history import Outgoing
from shared.calendar import WorkingCalendar
from shared.contracts import Cause, FeedbackChanged, FeedbackData, record_id
from shared.events import FeedbackEvent, parse_feedback_json
from shared.feedback import FOREIGN_SOURCE, Feedback, Folded, fold, owned, step_of
from shared.mongo import Chain
from shared.consumer_app import Record

log = structlog.get_logger()
CommuneOf = Callable[[str], str | None]  # a unit's commune (shared/units.py), None when unknown


@dataclass
class StoredFeedback:
    """A PAKN's history as stored: its events (CloudEvent JSON, arrival order), what was dead-lettered,
    the last outbox, and the record last announced."""

    code: str
    links: int = 0  # links written: the next write is link number `links`
    events: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)  # "source id" of events sent to the DLQ
    outbox: list[Outgoing] = field(default_factory=list)
    announced: str | None = None  # the id of the last status record

    @classmethod
    def of_links(cls, code: str, links: list[dict[str, Any]]) -> "StoredFeedback":
        announced = next((d["announced"] for d in reversed(links) if d.get("announced")), None)
        return cls(code, len(links), [e for d in links for e in d["events"]],
                   [k for d in links for k in d["dead_lettered"]],
                   [Outgoing.from_doc(o) for o in links[-1]["outbox"]] if links else [], announced)


@dataclass(frozen=True)
class Integrated:
    stored: StoredFeedback
    link: dict[str, Any] | None  # what to append; None: nothing new (duplicates only)
    applied: int
    duplicates: int
    dead_lettered: int
    waiting: int  # events of a PAKN whose receipt has not come
    foreign: int = 0  # of those dead-lettered, events from a source that did not receive the PAKN


def _key(event: FeedbackEvent) -> str:
    return f"{event.source} {event.id}"


def integrate(stored: StoredFeedback, new: list[tuple[FeedbackEvent, bytes]], commune_of: CommuneOf,
              calendar: WorkingCalendar, max_events: int = 1000) -> Integrated:
    """Merge new (event, raw JSON) pairs into a PAKN's history (duplicates by source and id left out),
    fold it, and say what to write and publish. A PAKN keeps at most `max_events` events, as a dossier
    does: the others are dead-lettered, never stored."""
    history = [parse_feedback_json(raw, stored=True) for raw in stored.events]
    known, added, over = {_key(e) for e in history}, [], []
    for event, raw in new:
        if _key(event) in known:
            continue
        if len(stored.events) + len(added) >= max_events:
            over.append(Outgoing("dlq", stored.code, raw, f"PAKN over {max_events} events"))
            continue
        known.add(_key(event))
        history.append(event)
        added.append(raw.decode())
    if not added:
        refused = replace(stored, outbox=over) if over else stored
        return Integrated(refused, None, 0, len(new) - len(over), len(over), 0)
    events = stored.events + added
    foreign = owned([(e.type, e.source, (e.model_extra or {}).get("intakecontributor") is True) for e in history])
    mine = [e for e, why in zip(history, foreign, strict=True) if why is None]
    folded = fold([step_of(e, commune_of) for e in mine], stored.code)
    reasons = {_key(e): why for e, why in zip(history, foreign, strict=True) if why is not None}
    reasons |= {step.id: why for step, why in folded.rejected}
    raw_of = dict(zip((_key(e) for e in history), events, strict=True))
    dead = [k for k in reasons if k not in stored.dead_lettered]
    outbox = [*over, *(Outgoing("dlq", stored.code, raw_of[k].encode(), reasons[k]) for k in dead)]
    announced = stored.announced
    if folded.feedback is not None:
        record = status_record(folded.feedback, folded, len(events), calendar, history)
        if record.id != stored.announced:
            outbox.append(Outgoing("status", stored.code, record.to_bytes()))
            announced = record.id
    link = {"events": added, "dead_lettered": dead, "outbox": [o.to_doc() for o in outbox], "announced": announced}
    after = StoredFeedback(stored.code, stored.links, events, stored.dead_lettered + dead, outbox, announced)
    waiting = len(added) if folded.feedback is None else 0
    foreign_now = sum(reasons[k].startswith(FOREIGN_SOURCE) for k in dead)
    return Integrated(after, link, max(0, len(added) - len(dead) - waiting), len(new) - len(added) - len(over),
                      len(dead) + len(over), waiting, foreign_now)


def status_record(f: Feedback, folded: Folded, events: int, calendar: WorkingCalendar,
                  history: list[FeedbackEvent]) -> FeedbackChanged:
    """Where the PAKN stands, caused by its latest applied step. Its id is its steps': the same steps
    are announced once (an event dead-lettered changes nothing to announce)."""
    last = folded.applied[-1]
    due = None if f.state in ("rejected", "published") else f.due("publish" if f.answered_at else "answer", calendar)
    source_id = {_key(e): e.id for e in history}
    data = FeedbackData(feedback_code=f.code, commune_code=f.commune_code, receiving_commune=f.receiving_commune,
                        unit=f.unit, dossier_code=f.dossier_code, state=f.state, received_at=f.received_at,
                        clock_from=f.clock_from, due_at=due, cause=Cause(id=source_id.get(last.id), type=last.type),
                        events=events, steps=list(folded.applied))
    change = record_id(f.code, "feedback", *(s.id for s in folded.applied), f.commune_code)
    return FeedbackChanged(id=change, subject=f.code, time=last.time, data=data)


class FeedbackStore:
    """PAKN histories in MongoDB, by key (see the module's docstring)."""

    def __init__(self, database: Any):
        self.chain = Chain(database["feedback_links"], summaries=database["feedback"])

    async def read(self, code: str) -> StoredFeedback:
        return StoredFeedback.of_links(code, await self.chain.entries(code))

    async def write(self, stored: StoredFeedback, link: dict[str, Any]) -> bool:
        """Append `link` as link number `stored.links`; False when another replica wrote it first."""
        return await self.chain.claim(stored.code, stored.links, link)


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry, foreign: Counter):
        self.events = Counter("processing_feedback_events", "PAKN events consumed, by outcome: applied, duplicate, "
                              "dead_lettered, waiting (for their receipt)", ["outcome"], registry=registry)
        self.foreign = foreign  # the dossiers' `processing_foreign_events` (alerted: ForeignSourceEvents)


Publish = Callable[[list[Outgoing]], Awaitable[None]]


class FeedbackProcessor:
    """One batch of PAKN events: each PAKN read, integrated, written, then its outbox published."""

    def __init__(self, store: FeedbackStore, calendar: WorkingCalendar, commune_of: Callable[[], CommuneOf],
                 publish: Publish, metrics: FeedbackMetrics, concurrency: int = 16, max_events: int = 1000):
        self.store, self.calendar, self.commune_of = store, calendar, commune_of
        self.publish, self.metrics, self.max_events = publish, metrics, max_events
        self._gate = asyncio.Semaphore(concurrency)

    async def handle(self, records: list[Record[FeedbackEvent]]) -> None:
        grouped: dict[str, list[tuple[FeedbackEvent, bytes]]] = {}
        for record in records:
            grouped.setdefault(record.value.subject, []).append((record.value, record.raw))
        outboxes = await asyncio.gather(*(self._one(code, events) for code, events in grouped.items()))
        await self.publish([o for outbox in outboxes for o in outbox])

    async def _one(self, code: str, events: list[tuple[FeedbackEvent, bytes]]) -> list[Outgoing]:
        """The PAKN's outbox once its new events are written (a redelivered batch: the last one again)."""
        async with self._gate:
            while True:
                stored = await self.store.read(code)
                result = integrate(stored, events, self.commune_of(), self.calendar, self.max_events)
                if result.link is None or await self.store.write(stored, result.link):
                    break
                log.debug("PAKN written by another replica meanwhile, reading it again", feedback=code)
        for outcome in ("applied", "duplicates", "dead_lettered", "waiting"):
            self.metrics.events.labels(outcome.removesuffix("s")).inc(getattr(result, outcome))
        if result.foreign:
            self.metrics.foreign.inc(result.foreign)
            log.warning("events from a source that did not receive the PAKN", feedback=code, events=result.foreign)
        for o in result.stored.outbox:
            if o.kind == "dlq":
                log.warning("PAKN event sent to the dead-letter topic", feedback=code, reason=o.reason)
        return result.stored.outbox
