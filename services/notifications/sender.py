"""The sender: the messages still to send, queued in memory by when they may go, handed to the gateway
in batches: for up to BATCH messages due, one write of their daily slots (and one purge note), one
of their sending attempts, the gateway's calls side by side, one write of their `sent`; a few
batches at once, so that the database and the gateway both keep busy.

Each sending attempt is recorded before the gateway gets the message (inserting the attempt is the
claim: a replica that loses the race does not send), so a crash repeats no send. A message left
`sending` (the gateway never got it, or its report was lost) is tried again after the sending
timeout, unless its delivery report moved it meanwhile. Quiet hours, the daily limit per number
(slots counted in MongoDB, across replicas), the gateway's refusals (temporary ones with a doubling
backoff) and expiry all decide here when a message goes. The queue is reloaded from MongoDB at start
and every reload interval (messages another replica left behind; those held here are not read again).
"""

import asyncio
import heapq
from collections import OrderedDict
import time as clock_time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from pymongo.errors import PyMongoError

from services.notifications.instruments import NotificationMetrics
from services.notifications.messages import Body, Decision, Message, MessageStatus, Move, furthest
from services.notifications.providers import Provider, ProviderError
from services.notifications.quiet import QuietHours
from services.notifications.settings import NotificationsSettings
from services.notifications.store import MessageStore, Moved
from shared.privacy import mask_phone
from shared.consumer_app import until_done

log = structlog.get_logger()

Day = tuple[str, str]  # (recipient, local date): what the daily limit counts
HANDED_KEPT = 50_000  # messages handed over remembered for their delivery reports (a burst's worth)
BATCH = 100  # messages due claimed and handed over together
BATCHES_AT_ONCE = 4


@dataclass
class Pending:
    """A message still to send, as this replica keeps it."""

    message: Message
    body: Body
    attempts: int
    not_before: datetime


class Sender:
    def __init__(self, settings: NotificationsSettings, store: MessageStore, provider: Provider, brandname: str,
                 quiet: QuietHours, metrics: NotificationMetrics, clock: Callable[[], datetime]):
        self.settings = settings
        self.store = store
        self.provider = provider
        self.brandname = brandname
        self.quiet = quiet
        self.metrics = metrics
        self.clock = clock
        self._pending: dict[str, Pending] = {}
        # (not before, the step's time, message id): a dossier's messages go in the order of its steps.
        self._queue: list[tuple[datetime, datetime, str]] = []  # stale entries are skipped
        self._slots: dict[Day, int] = {}  # the next free daily slot of each number's day
        # The messages this replica claimed an attempt of and the gateway did not refuse, lately: a
        # delivery report on one needs no read to know a gateway may have it (reports.py).
        self._handed: OrderedDict[str, Message] = OrderedDict()
        self.loaded = False

    @property
    def pending(self) -> set[str]:
        """The ids of the messages this replica still has to send (the purge leaves their numbers)."""
        return set(self._pending)

    async def load(self) -> int:
        """The messages still to send, from MongoDB's pending list."""
        timeout = timedelta(seconds=self.settings.notifications_sending_timeout_seconds)
        # Those held here (to send, or lately handed over) are not read again.
        for message, body, moves in await self.store.pending(lambda i: i in self._pending or i in self._handed):
            if not furthest(message.status, moves).still_to_send or body is None or message.id in self._pending:
                continue
            # The last attempt's number (an attempt whose record failed left a gap), from the move's id.
            tried = [m for m in moves if m.status is MessageStatus.SENDING]
            attempts = max((m.attempt or 0 for m in tried), default=0)
            last = max((m.at for m in tried), default=None)
            self._queue_up(Pending(message, body, attempts,
                                   last + timeout if last else message.not_before or message.created_at))
        self.loaded = True
        return len(self._pending)

    async def queue(self, decided: list[Decision]) -> set[str]:
        """Store the messages (with their number and text if they are to be sent) not stored yet and
        queue those to send; returns the ids stored now. The citizens' and the officers' (alerts.py)."""
        created = await self.store.create(decided)
        for d in decided:
            # Only a message stored just now is counted and queued: one stored before (a redelivered
            # status event) is pending here already, or done, or left by another process, which a
            # reload picks up.
            if d.message.id not in created:
                continue
            self.metrics.messages.labels(d.message.status, self.provider.name).inc()
            if d.body:
                self._queue_up(Pending(d.message, d.body, 0, d.message.not_before or d.message.created_at))
        return created

    def handed(self, message_id: str) -> Message | None:
        """The message, if this replica lately handed it to the gateway (its attempt recorded, not refused)."""
        return self._handed.get(message_id)

    def _handing(self, message: Message) -> None:
        self._handed[message.id] = message
        self._handed.move_to_end(message.id)
        while len(self._handed) > HANDED_KEPT:
            self._handed.popitem(last=False)

    def forget(self, message_id: str) -> None:
        """Never hand this message over again: the gateway has it, or it ended."""
        self._pending.pop(message_id, None)

    async def record(self, message: Message, move: Move) -> bool:
        """Record a status the message reached, and count it once recorded."""
        return move.id in await self.record_many([(message, move)])

    async def record_many(self, moved: list[Moved]) -> set[str]:
        """Record statuses messages reached, each counted once recorded."""
        recorded = await self.store.record_many(moved)
        for message, move in {move.id: (message, move) for message, move in moved}.values():
            if move.id in recorded:
                self.metrics.messages.labels(move.status, message.provider or self.provider.name).inc()
        return recorded

    def _queue_up(self, pending: Pending) -> None:
        self._pending[pending.message.id] = pending
        heapq.heappush(self._queue, (pending.not_before, pending.message.step_at, pending.message.id))

    def _later(self, pending: Pending, until: datetime) -> None:
        pending.not_before = until
        heapq.heappush(self._queue, (until, pending.message.step_at, pending.message.id))

    # -- the sending loop --------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Hand the messages due by now to the gateway in batches, BATCHES_AT_ONCE side by side (while one
        waits for the gateway, the next writes its claims); a dossier's messages one batch after the
        other, in the order of its steps."""
        now = self.clock()
        due: dict[str, list[Pending]] = {}
        while self._queue and self._queue[0][0] <= now:
            at, _, message_id = heapq.heappop(self._queue)
            pending = self._pending.get(message_id)
            if pending is None or pending.not_before != at:
                continue  # done, or queued again for later
            due.setdefault(pending.message.dossier, []).append(pending)
        # Wave k: each dossier's k-th message due.
        waves = [[mine[k] for mine in due.values() if k < len(mine)]
                 for k in range(max(map(len, due.values()), default=0))]
        gates = asyncio.Semaphore(BATCHES_AT_ONCE), asyncio.Semaphore(self.settings.gateway_concurrency())
        sent = 0
        for k, wave in enumerate(waves):
            done = await asyncio.gather(*(self._try_batch(wave[n:n + BATCH], now, *gates)
                                          for n in range(0, len(wave), BATCH)))
            sent += sum(d or 0 for d in done)
            if None in done:  # the database went away: the dossiers' next messages wait too
                self._again_soon([p for later in waves[k + 1:] for p in later], now)
                break
        oldest = min((p.message.created_at for p in self._pending.values()), default=None)
        self.metrics.queue_age.set((now - oldest).total_seconds() if oldest else 0)
        return sent

    def _again_soon(self, messages: list[Pending], now: datetime) -> None:
        """Messages due, tried again shortly (one the gateway may already have waits for the sending timeout)."""
        for pending in messages:
            if pending.not_before <= now:
                self._later(pending, now + timedelta(seconds=1))

    async def _try_batch(self, batch: list[Pending], now: datetime, turn: asyncio.Semaphore,
                         gate: asyncio.Semaphore) -> int | None:
        """`_send_batch` in its turn; None if the database went away (the batch is tried again shortly)."""
        async with turn:
            try:
                return await self._send_batch(batch, now, gate)
            except PyMongoError as exc:
                self._again_soon(batch, now)
                log.warning("database unavailable, messages will be sent later", error=str(exc))
                return None

    async def _send_batch(self, batch: list[Pending], now: datetime, gate: asyncio.Semaphore) -> int:
        """Messages due, of distinct dossiers: expired, or waiting for the number's next day, or claimed
        and handed over (`gate` bounds the calls to the gateway at once); how many the gateway took."""
        expire = timedelta(hours=self.settings.notifications_expire_hours)
        stale = [p for p in batch if p.message.stale(now, expire)]
        if stale:
            await self.record_many([(p.message, Move(p.message.id, MessageStatus.EXPIRED, now)) for p in stale])
            for p in stale:
                self.forget(p.message.id)
        slotted = await self._take_slots([p for p in batch if not p.message.stale(now, expire)], now)
        claimed = await self._claim(slotted, now)

        async def hand_over(pending: Pending, day: Day, slot: int) -> Moved | None:
            async with gate:
                return await self._hand_over(pending, day, slot, now)

        outcomes = await asyncio.gather(*(hand_over(*c) for c in claimed), return_exceptions=True)
        handed = [o for o in outcomes if isinstance(o, tuple)]
        # What the gateway took is recorded `sent` before any failure (a refusal's record) goes up.
        await until_done(lambda: self.record_many(handed), "recording sent SMS")
        for failure in (o for o in outcomes if isinstance(o, BaseException)):
            raise failure
        return len(handed)

    async def _take_slots(self, batch: list[Pending], now: datetime) -> list[tuple[Pending, Day, int]]:
        """A daily slot for each message (slots counted in MongoDB, across replicas); one whose number's
        day is full waits for the next morning."""
        limit = self.settings.notifications_daily_limit
        local_day = self.quiet.calendar.local(now).date().isoformat()
        days = [(p.body.recipient, local_day) for p in batch]
        expected: dict[Day, int] = {}
        wanted = []
        for day in days:  # one number's messages in the batch: the next slots after each other
            expected[day] = expected.get(day, self._slots.get(day, 0))
            wanted.append((*day, expected[day]))
            expected[day] += 1
        slotted = []
        for pending, day, slot in zip(batch, days, await self.store.take_slots(wanted, limit, now), strict=True):
            self._slots[day] = limit if slot is None else max(self._slots.get(day, 0), slot + 1)
            if slot is None:  # the number's daily limit
                self._later(pending, self.quiet.next_morning(now))
            else:
                slotted.append((pending, day, slot))
        return slotted

    async def _give_back(self, day: Day, slot: int) -> None:
        await self.store.give_back_slot(*day, slot)
        self._slots[day] = min(self._slots.get(day, 0), slot)

    async def _claim(self, slotted: list[tuple[Pending, Day, int]], now: datetime) -> list[tuple[Pending, Day, int]]:
        """Record each message's next sending attempt; those another replica claimed give their slot back.
        A write the database refused leaves no gap in the attempts, which the store reads up to the
        first missing one (a delivery report is taken only for a message with a recorded attempt)."""
        claims = [(p.message, Move(p.message.id, MessageStatus.SENDING, now, p.attempts + 1)) for p, _, _ in slotted]
        recorded = await self.store.record_many(claims)
        claimed = []
        for (pending, day, slot), (_, move) in zip(slotted, claims, strict=True):
            if move.id not in recorded:
                await self._give_back(day, slot)
                self.forget(pending.message.id)
                continue
            pending.attempts += 1
            self._handing(pending.message)
            self._later(pending, now + timedelta(seconds=self.settings.notifications_sending_timeout_seconds))
            claimed.append((pending, day, slot))
        return claimed

    async def _hand_over(self, pending: Pending, day: Day, slot: int, now: datetime) -> Moved | None:
        """The message to the gateway; its `sent`, to record, if the gateway took it."""
        message = pending.message
        started = clock_time.perf_counter()
        try:
            provider_id = await self.provider.send(message, pending.body, self.brandname)
        except ProviderError as exc:
            await self._give_back(day, slot)
            await self._refused(pending, exc, now)
            return None
        self.metrics.send_seconds.observe(clock_time.perf_counter() - started)
        self.forget(message.id)  # the gateway has it: never handed over again, even if the record waits
        log.info("sms sent", message=message.id, dossier=message.dossier, trigger=message.trigger,
                 to=mask_phone(pending.body.recipient), parts=message.parts)
        return message, Move(message.id, MessageStatus.SENT, self.clock(), provider_id=provider_id)

    async def _refused(self, pending: Pending, exc: ProviderError, now: datetime) -> None:
        """The gateway did not take the message: it fails if the refusal is permanent (the provider
        says so) or its attempts are spent, and is tried again after a doubling backoff otherwise."""
        s, message = self.settings, pending.message
        self._handed.pop(message.id, None)
        await self.store.record(message, Move(message.id, MessageStatus.REFUSED, now, pending.attempts, str(exc)))
        if exc.permanent or pending.attempts >= s.notifications_max_attempts:
            await self.record(message, Move(message.id, MessageStatus.FAILED, now, error=str(exc)))
            self.forget(message.id)
        else:
            backoff = s.notifications_backoff_seconds * 2 ** (pending.attempts - 1)
            self._later(pending, now + timedelta(seconds=min(s.notifications_backoff_cap_seconds, backoff)))
        log.warning("gateway refused a message" if exc.permanent else "gateway refused a message, will retry",
                    message=message.id, attempts=pending.attempts, permanent=exc.permanent, error=str(exc))
