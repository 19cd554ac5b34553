"""Notifications' work apart from HTTP: decide messages from status events, send them, take reports.

A batch's messages are written (status `created`) before the offsets are committed, and a message
is marked `sending` before the gateway gets it: a crash loses no decision and repeats no send
decision. A message left `sending` (the gateway never got it, or its report was lost) is tried
again after the sending timeout, unless its delivery report moved it meanwhile.
"""

import os
import time as clock_time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import orjson
import structlog
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.notifications.providers import Provider, ProviderError
from services.notifications.settings import NotificationsSettings
from services.notifications.sms import normalise_phone
from services.notifications.store import MOVES, MessageStore
from services.notifications.templates import Templates
from services.notifications.triggers import Wanted, wanted
from shared.calendar import WorkingCalendar
from shared.communes import commune
from shared.privacy import mask_phone

log = structlog.get_logger()

# Kannel's delivery-report types (dlr-mask bits) and the status each one means.
DLR_STATUS = {1: "delivered", 2: "failed", 8: "sent", 16: "failed"}


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


class Notifier:
    def __init__(self, settings: NotificationsSettings, store: MessageStore, provider: Provider, templates: Templates,
                 calendar: WorkingCalendar, registry: CollectorRegistry,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.settings = settings
        self.store = store
        self.provider = provider
        self.templates = templates
        self.calendar = calendar
        self.metrics = NotificationMetrics(registry)
        self.clock = clock
        self._quiet = (time.fromisoformat(settings.notifications_quiet_start),
                       time.fromisoformat(settings.notifications_quiet_end))

    # -- deciding -------------------------------------------------------------------------------

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        docs = []
        now = self.clock()
        for record in records:
            try:
                event = orjson.loads(record.value or b"")
                messages = wanted(event, self.settings.notifications_due_soon)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.error("undecodable status event", origin=f"{record.topic}/{record.partition}/{record.offset}",
                          error=str(exc))
                self.metrics.status_events.labels("undecodable").inc()
                continue
            self.metrics.status_events.labels("read").inc()
            step_at = datetime.fromisoformat(event["time"])
            for w in messages:
                docs.append(await self._document(w, step_at, now))
        await self.store.create(docs)

    async def _document(self, w: Wanted, step_at: datetime, now: datetime) -> dict[str, Any]:
        doc: dict[str, Any] = {"_id": w.message_id, "step": w.step, "dossier": w.dossier_code,
                               "commune": w.commune_code, "trigger": w.trigger, "created_at": now,
                               "step_at": step_at, "provider": self.provider.name, "attempts": 0}
        if not w.opted_in or w.trigger not in self.templates.templates:
            return doc | self._status("opted_out", now)
        if self._stale(step_at, now):
            return doc | self._status("expired", now)  # old news (a replay, a long outage): not sent
        phone = w.phone if w.phone is not None else await self.store.recipient_of(w.dossier_code)
        recipient = normalise_phone(phone) if phone else None
        if recipient is None:
            return doc | self._status("invalid_recipient", now)
        unit = commune(w.commune_code)
        date = self.calendar.local(w.date) if w.date else None
        encoded = self.templates.render(w.trigger, w.dossier_code, unit.name if unit else w.commune_code, date,
                                        w.missing)
        return doc | self._status("created", now) | {
            "recipient": recipient, "body": encoded.text, "coding": encoded.coding, "parts": encoded.parts,
            "not_before": not_before(now, self.calendar, *self._quiet),
        }

    def _stale(self, step_at: datetime, now: datetime) -> bool:
        return now - step_at > timedelta(hours=self.settings.notifications_expire_hours)

    def _status(self, status: str, now: datetime) -> dict[str, Any]:
        self.metrics.messages.labels(status, self.provider.name).inc()
        return {"status": status, "history": [{"status": status, "at": now}]}

    # -- sending ----------------------------------------------------------------------------------

    async def send_due(self) -> int:
        now = self.clock()
        sent = 0
        for message in await self.store.due(now):
            sent += await self._send(message, now)
        oldest = await self.store.oldest_pending()
        self.metrics.queue_age.set((now - _utc(oldest)).total_seconds() if oldest else 0)
        return sent

    async def _send(self, message: dict[str, Any], now: datetime) -> bool:
        s = self.settings
        if self._stale(_utc(message["step_at"]), now):
            await self._move(message, "expired", now)
            return False
        local_midnight = datetime.combine(self.calendar.local(now).date(), time(), self.calendar.local(now).tzinfo)
        if await self.store.sent_since(message["recipient"], local_midnight) >= s.notifications_daily_limit:
            await self.store.postpone(message["_id"], next_morning(now, self.calendar, self._quiet[1]))
            return False
        attempts = message.get("attempts", 0) + 1
        retry_at = now + timedelta(seconds=s.notifications_sending_timeout_seconds)
        if await self._move(message, "sending", now, attempts=attempts, not_before=retry_at) is None:
            return False  # another replica, or a report, moved it first
        if s.notifications_fault_exit_before_send:
            log.warning("fault injection: exiting after marking the message sending")
            os._exit(3)
        started = clock_time.perf_counter()
        try:
            provider_id = await self.provider.send(message, self.templates.brandname)
        except ProviderError as exc:
            if attempts >= s.notifications_max_attempts:
                await self._move(message, "failed", now, error=str(exc))
            else:
                backoff = min(s.notifications_backoff_cap_seconds, s.notifications_backoff_seconds * 2 ** (attempts - 1))
                await self.store.postpone(message["_id"], now + timedelta(seconds=backoff), error=str(exc))
            log.warning("gateway refused a message, will retry", message=message["_id"], attempts=attempts,
                        error=str(exc))
            return False
        self.metrics.send_seconds.observe(clock_time.perf_counter() - started)
        await self._move(message, "sent", self.clock(), sent_at=self.clock(), provider_id=provider_id)
        log.info("sms sent", message=message["_id"], dossier=message["dossier"], trigger=message["trigger"],
                 to=mask_phone(message["recipient"]), parts=message["parts"])
        return True

    async def _move(self, message: dict[str, Any], to: str, at: datetime, **fields: Any) -> dict[str, Any] | None:
        before = await self.store.move(message["_id"], to, at, **fields)
        if before is not None:
            self.metrics.messages.labels(to, before.get("provider", self.provider.name)).inc()
        return before

    async def report(self, message_id: str, kind: int) -> bool:
        """A Kannel delivery report; repeating one changes nothing."""
        to = DLR_STATUS.get(kind)
        if to is None:
            return False  # e.g. 4: buffered by the SMSC, nothing to record
        return await self.reached(message_id, to)

    async def reached(self, message_id: str, to: str) -> bool:
        """A gateway says the message reached status `to`; only a move forward is recorded."""
        if to not in MOVES:
            return False
        now = self.clock()
        fields: dict[str, Any] = {"sent_at": now} if to == "sent" else {f"{to}_at": now}
        before = await self._move({"_id": message_id}, to, now, **fields)
        if before is not None and to == "delivered" and before.get("sent_at"):
            self.metrics.dlr_seconds.observe((now - _utc(before["sent_at"])).total_seconds())
        return before is not None

    async def purge(self) -> int:
        return await self.store.purge(self.clock() - timedelta(days=self.settings.notifications_retention_days))


def _utc(t: datetime) -> datetime:
    """BSON dates come back naive, in UTC."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)
