"""Notifications' work apart from HTTP: decide messages from status events, send them, take reports.

A batch's messages are written (status `created`) before the offsets are committed, and each
sending attempt is recorded before the gateway gets the message: a crash loses no decision and
repeats no send decision. A message left `sending` (the gateway never got it, or its report was
lost) is tried again after the sending timeout, unless its delivery report moved it meanwhile.
The messages still to send wait in memory, ordered by when they may go; the service reloads them
from MongoDB at start and every reload interval (messages another replica left behind).
"""

import asyncio
import heapq
import time as clock_time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo.errors import PyMongoError

from services.notifications.providers import Kannel, Provider, ProviderError
from services.notifications.settings import NotificationsSettings
from services.notifications.sms import Encoded, normalise_phone
from services.notifications.store import PENDING, RANK, MessageStore, status
from services.notifications.templates import Templates
from services.notifications.triggers import Wanted, message_id, wanted
from shared.clock import Clock
from shared.calendar import WorkingCalendar
from shared.communes import commune
from shared.contracts import SignatureVerified, StatusChanged, StatusRecord
from shared.events import Applicant
from shared.mongo import as_utc
from shared.personal import DossierKeys, opened_applicant
from shared.service import Record, until_done
from shared.privacy import mask_phone

log = structlog.get_logger()



def not_before(now: datetime, calendar: WorkingCalendar, quiet_start: time, quiet_end: time) -> datetime:
    """`now`, or the end of the quiet hours if `now` falls in them (e.g. 21:00–07:00 local)."""
    local = calendar.local(now)
    at = local.time()
    quiet = (quiet_start <= at or at < quiet_end) if quiet_start > quiet_end else quiet_start <= at < quiet_end
    if not quiet:
        return now
    day = local.date() if at < quiet_end else local.date() + timedelta(days=1)
    return datetime.combine(day, quiet_end, local.tzinfo)


def next_morning(now: datetime, calendar: WorkingCalendar, quiet_end: time) -> datetime:
    local = calendar.local(now)
    return datetime.combine(local.date() + timedelta(days=1), quiet_end, local.tzinfo)


class NotificationMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.messages = Counter("notifications_messages", "Messages by status reached, and provider",
                                ["status", "provider"], registry=registry)
        self.send_seconds = Histogram("notifications_send_duration_seconds", "Time the gateway took to take a message",
                                      registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.dlr_seconds = Histogram("notifications_dlr_latency_seconds", "From sending to the delivery report",
                                     registry=registry, buckets=(0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600))
        self.queue_age = Gauge("notifications_queue_age_seconds", "Age of the oldest message not sent yet",
                               registry=registry)
        self.status_events = Counter("notifications_status_events", "Status events consumed, by outcome",
                                     ["outcome"], registry=registry)
        self.reports_ignored = Counter("notifications_reports_ignored", "Delivery reports ignored: a bad "
                                       "signature, or a message no gateway was given", ["reason"], registry=registry)


@dataclass
class Pending:
    """A message still to send, as this replica keeps it."""

    message: dict[str, Any]
    recipient: str
    body: str
    attempts: int
    not_before: datetime


class Notifier:
    def __init__(self, settings: NotificationsSettings, store: MessageStore, provider: Provider, templates: Templates,
                 calendar: WorkingCalendar, registry: CollectorRegistry,
                 clock: Callable[[], datetime] = Clock(), keys: DossierKeys | None = None):
        self.settings = settings
        self.keys = keys  # the dossiers' keys, to open the applicant (shared/personal.py)
        self.store = store
        self.provider = provider
        self.templates = templates
        self.calendar = calendar
        self.metrics = NotificationMetrics(registry)
        self.clock = clock
        self._quiet = (time.fromisoformat(settings.notifications_quiet_start),
                       time.fromisoformat(settings.notifications_quiet_end))
        self._pending: dict[str, Pending] = {}
        # (not before, the step's time, message id): a dossier's messages go in the order of its steps.
        self._queue: list[tuple[datetime, datetime, str]] = []  # stale entries are skipped
        self._slots: dict[tuple[str, str], int] = {}  # (recipient, local date) -> the next free daily slot
        self.loaded = False

    # -- loading ----------------------------------------------------------------------------------

    async def load(self) -> int:
        """The messages still to send, from MongoDB's pending list."""
        for message, body, mine in await self.store.pending():
            if status(message, mine) not in PENDING or body is None or message["_id"] in self._pending:
                continue
            # The last attempt's number (an attempt whose record failed left a gap), from the move's id.
            attempts = max((int(m["_id"].rsplit("/", 1)[1]) for m in mine if m["status"] == "sending"), default=0)
            last = max((as_utc(m["at"]) for m in mine if m["status"] == "sending"), default=None)
            wait_until = last + timedelta(seconds=self.settings.notifications_sending_timeout_seconds) if last \
                else as_utc(message["not_before"])
            self._queue_up(Pending(message, body["recipient"], body["body"], attempts, wait_until))
        self.loaded = True
        return len(self._pending)

    def _queue_up(self, pending: Pending) -> None:
        self._pending[pending.message["_id"]] = pending
        heapq.heappush(self._queue, (pending.not_before, as_utc(pending.message["step_at"]), pending.message["_id"]))

    # -- deciding -------------------------------------------------------------------------------

    async def handle(self, records: list[Record[StatusRecord]]) -> None:
        """Decides the SMS each status change asks for and stores them before the offsets are committed."""
        decided = []
        standing: dict[str, dict[str, Any]] = {}
        now = self.clock()
        for record in records:
            event = await self._opened(record.value)
            if isinstance(event, SignatureVerified):
                continue  # no SMS
            self.metrics.status_events.labels("read").inc()
            if isinstance(event, StatusChanged):
                standing[event.data.dossier_code] = self._standing(event)
            for w in wanted(event, self.settings.notifications_due_soon):
                decided.append(await self._decide(w, event.time, now))
        # A status event delivered twice in one batch (published again after a failure) asks for
        # the same messages twice: each is decided once.
        first: dict[str, tuple[dict[str, Any], dict | None]] = {}
        for message, body in decided:
            first.setdefault(message["_id"], (message, body))
        decided = list(first.values())
        # Old news beyond the retention (a replay of last year's events) is counted, not stored: its
        # record would be purged anyway. Within it (a long outage), `expired` records name whom
        # the service failed to tell.
        retention = timedelta(days=self.settings.notifications_retention_days)
        forgotten = {m["_id"] for m, _ in decided if m["status"] == "expired" and now - as_utc(m["step_at"]) > retention}
        self.metrics.messages.labels("expired", self.provider.name).inc(len(forgotten))
        decided = [(m, b) for m, b in decided if m["_id"] not in forgotten]
        await self.store.keep_citizens(standing)
        await self.queue(decided)

    async def queue(self, decided: list[tuple[dict[str, Any], dict | None]]) -> set[str]:
        """Store the messages (with their number and text if they are to be sent) not stored yet and
        queue those to send; returns the ids stored now. The citizens' and the officers' (alerts.py)."""
        created = await self.store.create([m for m, _ in decided], [b for _, b in decided if b])
        for message, body in decided:
            # Only a message stored just now is counted and queued: one stored before (a redelivered
            # status event) is pending here already, or done, or left by another process, which a
            # reload picks up.
            if message["_id"] not in created:
                continue
            self.metrics.messages.labels(message["status"], self.provider.name).inc()
            if body:
                self._queue_up(Pending(message, body["recipient"], body["body"], 0, message["not_before"]))
        return created

    async def _opened(self, event: StatusRecord) -> StatusRecord:
        """A status change with its applicant opened (the number to text), by a key read; an applicant
        whose key is erased has no number, like one who gave none."""
        if not isinstance(event, StatusChanged) or event.data.applicant.sealed is None:
            return event
        code = event.data.dossier_code
        key = await self.keys.key_of(code) if self.keys else None
        opened = opened_applicant(key, code, event.data.applicant)
        applicant = opened or Applicant(sms_opt_in=event.data.applicant.sms_opt_in)
        return event.model_copy(update={"data": replace(event.data, applicant=applicant)})

    def _standing(self, event: StatusChanged) -> dict[str, Any]:
        data = event.data
        phone = normalise_phone(data.applicant.phone) if data.applicant.phone else None
        return {"state": data.new.state, "appointment_at": data.new.appointment_at,
                "phone": self.store.number_hash(phone) if phone else None, "events": data.events}

    def message(self, step: str, dossier: str, commune_code: str, trigger: str, step_at: datetime,
                now: datetime) -> dict[str, Any]:
        """The record of the message a step asks for, before its status is decided."""
        return {"_id": message_id(step), "step": step, "dossier": dossier, "commune": commune_code,
                "trigger": trigger, "created_at": now, "step_at": step_at, "provider": self.provider.name}

    def to_send(self, message: dict[str, Any], recipient: str, encoded: Encoded, now: datetime
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The message, created to be sent from the end of any quiet hours, and its number and text
        (stored apart: purged after the retention days)."""
        return (message | {"status": "created", "coding": encoded.coding, "parts": encoded.parts,
                           "not_before": self.not_before(now)},
                {"_id": message["_id"], "recipient": recipient, "body": encoded.text, "created_at": now})

    def not_before(self, now: datetime) -> datetime:
        return not_before(now, self.calendar, *self._quiet)

    async def _decide(self, w: Wanted, step_at: datetime, now: datetime) -> tuple[dict[str, Any], dict | None]:
        """The message (and its number and text, if it is to be sent) a step asks for."""
        message = self.message(w.step, w.dossier_code, w.commune_code, w.trigger, step_at, now)
        if not w.opted_in or w.trigger not in self.templates.templates:
            return message | {"status": "opted_out"}, None
        if self._stale(step_at, now):
            return message | {"status": "expired"}, None  # old news (a replay, a long outage): not sent
        phone = w.phone if w.phone is not None else await self.store.recipient_of(w.dossier_code)
        recipient = normalise_phone(phone) if phone else None
        if recipient is None:
            return message | {"status": "invalid_recipient"}, None
        unit = commune(w.commune_code)
        date = self.calendar.local(w.date) if w.date else None
        encoded = self.templates.render(w.trigger, w.dossier_code, unit.name if unit else w.commune_code, date,
                                        w.missing)
        return self.to_send(message, recipient, encoded, now)

    def _stale(self, step_at: datetime, now: datetime) -> bool:
        return now - step_at > timedelta(hours=self.settings.notifications_expire_hours)

    # -- sending ----------------------------------------------------------------------------------

    async def send_due(self, concurrency: int = 20) -> int:
        """Hand the messages due by now to the gateway, up to `concurrency` at once; a dossier's
        messages one after the other, in the order of its steps."""
        now = self.clock()
        due: dict[str, list[Pending]] = {}
        while self._queue and self._queue[0][0] <= now:
            at, _, message_id = heapq.heappop(self._queue)
            pending = self._pending.get(message_id)
            if pending is None or pending.not_before != at:
                continue  # done, or queued again for later
            due.setdefault(pending.message["dossier"], []).append(pending)
        gate = asyncio.Semaphore(concurrency)

        async def in_order(messages: list[Pending]) -> int:
            async with gate:
                sent = 0
                for n, pending in enumerate(messages):
                    try:
                        sent += await self._send(pending, now)
                    except PyMongoError as exc:
                        # The database went away: this message and the dossier's next ones are tried
                        # again shortly (one the gateway may already have waits for the sending timeout).
                        for later in messages[n:]:
                            if later.not_before <= now:
                                self._later(later, now + timedelta(seconds=1))
                        log.warning("database unavailable, messages will be sent later", error=str(exc))
                        break
                return sent

        sent = sum(await asyncio.gather(*(in_order(m) for m in due.values())))
        oldest = min((as_utc(p.message["created_at"]) for p in self._pending.values()), default=None)
        self.metrics.queue_age.set((now - oldest).total_seconds() if oldest else 0)
        return sent

    def _later(self, pending: Pending, until: datetime) -> None:
        pending.not_before = until
        heapq.heappush(self._queue, (until, as_utc(pending.message["step_at"]), pending.message["_id"]))

    def _done(self, message_id: str) -> None:
        self._pending.pop(message_id, None)

    async def _send(self, pending: Pending, now: datetime) -> bool:
        s, message = self.settings, pending.message
        if self._stale(as_utc(message["step_at"]), now):
            await self._record(message, "expired", now)
            self._done(message["_id"])
            return False
        day = (pending.recipient, self.calendar.local(now).date().isoformat())
        slot = await self.store.take_slot(*day, s.notifications_daily_limit, now, self._slots.get(day, 0))
        if slot is None:  # the number's daily limit, counted across replicas
            self._slots[day] = s.notifications_daily_limit
            self._later(pending, next_morning(now, self.calendar, self._quiet[1]))
            return False
        self._slots[day] = slot + 1
        # Counted once recorded: a write the database refused leaves no gap in the attempts, which
        # the store reads up to the first missing one (a delivery report is taken only for a message
        # with a recorded attempt).
        if not await self.store.record(message, "sending", now, attempt=pending.attempts + 1):
            await self._give_back(day, slot)
            self._done(message["_id"])  # another replica claimed this attempt
            return False
        pending.attempts += 1
        self._later(pending, now + timedelta(seconds=s.notifications_sending_timeout_seconds))
        started = clock_time.perf_counter()
        try:
            provider_id = await self.provider.send(message | {"recipient": pending.recipient, "body": pending.body},
                                                   self.templates.brandname)
        except ProviderError as exc:
            await self._give_back(day, slot)
            await self.store.record(message, "refused", now, attempt=pending.attempts, error=str(exc))
            if exc.permanent or pending.attempts >= s.notifications_max_attempts:
                await self._record(message, "failed", now, error=str(exc))
                self._done(message["_id"])
            else:
                backoff = s.notifications_backoff_seconds * 2 ** (pending.attempts - 1)
                self._later(pending, now + timedelta(seconds=min(s.notifications_backoff_cap_seconds, backoff)))
            log.warning("gateway refused a message" if exc.permanent else "gateway refused a message, will retry",
                        message=message["_id"], attempts=pending.attempts, permanent=exc.permanent, error=str(exc))
            return False
        self.metrics.send_seconds.observe(clock_time.perf_counter() - started)
        self._done(message["_id"])  # the gateway has it: never handed over again, even if the record waits
        at = self.clock()
        await until_done(lambda: self._record(message, "sent", at, provider_id=provider_id), "recording a sent SMS")
        log.info("sms sent", message=message["_id"], dossier=message["dossier"], trigger=message["trigger"],
                 to=mask_phone(pending.recipient), parts=message["parts"])
        return True

    async def _give_back(self, day: tuple[str, str], slot: int) -> None:
        await self.store.give_back_slot(*day, slot)
        self._slots[day] = min(self._slots.get(day, 0), slot)

    async def _record(self, message: dict[str, Any], to: str, at: datetime, **fields: Any) -> bool:
        recorded = await self.store.record(message, to, at, **fields)
        if recorded:
            self.metrics.messages.labels(to, message.get("provider", self.provider.name)).inc()
        return recorded

    async def report(self, message_id: str, kind: int) -> bool:
        """A Kannel delivery report; repeating one changes nothing."""
        to = Kannel.report_status(kind)
        if to is None:
            return False  # e.g. 4: buffered by the SMSC, nothing to record
        return await self.reached(message_id, to)

    async def reached(self, message_id: str, to: str) -> bool:
        """A gateway says the message reached status `to`; recorded once, and its status only moves forward.
        A report on a message no gateway was given (still to send, or refused) is ignored: it must
        not keep the citizen's SMS from being sent."""
        if RANK.get(to, -1) < RANK["sent"]:
            return False
        message = await self.store.message(message_id)
        if message is None:
            return False  # not ours (a report for a message of another deployment, or a forged id)
        if not await self.store.handed_over(message_id):
            self.metrics.reports_ignored.labels("not_sent").inc()
            log.warning("delivery report for a message not sent, ignored", message=message_id, status=to)
            return False
        self._done(message_id)  # the gateway has it: never sent again
        return await self._record(message, to, self.clock())

    async def purge(self) -> int:
        before = self.clock() - timedelta(days=self.settings.notifications_retention_days)
        return await self.store.purge(before, set(self._pending))


