"""The decider: from a batch of status records, the SMS they ask for (triggers.py), each rendered
(templates.py) and its status decided: to send (from the end of any quiet hours), opted out,
expired, or without a valid number. Nothing is stored here: the consumer's handler stores what it
decides (sender.py) before the offsets are committed.

No I/O but one read: a clock event's record carries no applicant, so its number is the one the
dossier's earlier messages went to.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from services.notifications.instruments import NotificationMetrics
from services.notifications.messages import Body, Decision, Message, MessageStatus
from services.notifications.quiet import QuietHours
from services.notifications.settings import NotificationsSettings
from services.notifications.sms import Encoded
from shared.phones import normalise_phone
from services.notifications.store import MessageStore
from services.notifications.templates import Templates
from services.notifications.triggers import Wanted, message_id, wanted
from shared.communes import commune
from shared.contracts import FeedbackChanged, SignatureVerified, StatusChanged, StatusRecord
from shared.events import Applicant
from shared.personal import DossierKeys, opened_applicant
from shared.consumer_app import Record


def _sealed(event: StatusRecord) -> bool:
    return isinstance(event, StatusChanged) and event.data.applicant.sealed is not None


def _opened(event: StatusRecord, keys: dict[str, bytes]) -> StatusRecord:
    """A status change with its applicant opened (the number to text) with its dossier's key; an
    applicant whose key is erased has no number, like one who gave none."""
    if not _sealed(event):
        return event
    code = event.data.dossier_code
    opened = opened_applicant(keys.get(code), code, event.data.applicant)
    applicant = opened or Applicant(sms_opt_in=event.data.applicant.sms_opt_in)
    return event.model_copy(update={"data": replace(event.data, applicant=applicant)})


@dataclass(frozen=True)
class Decided:
    """What a batch of status records asks for: its messages, each once, where each dossier stands now (its
    latest status in the batch, for the SMS lookup), and the dossiers whose first status record (a receipt's,
    no status before it) is in the batch: where they stand is usually not stored yet (it is, when the record
    comes again)."""

    messages: list[Decision]
    standing: dict[str, dict[str, Any]]
    firsts: set[str]


class Decider:
    def __init__(self, settings: NotificationsSettings, templates: Templates, quiet: QuietHours, store: MessageStore,
                 provider: str, metrics: NotificationMetrics, clock: Callable[[], datetime],
                 keys: DossierKeys | None = None):
        self.settings = settings
        self.keys = keys  # the dossiers' keys, to open the applicant (shared/personal.py)
        self.templates = templates
        self.quiet = quiet
        self.store = store
        self.provider = provider
        self.metrics = metrics
        self.clock = clock

    async def decide(self, records: list[Record[StatusRecord]]) -> Decided:
        """The messages each status change asks for; signature verdicts and PAKN records ask for none."""
        decided: dict[str, Decision] = {}
        standing: dict[str, dict[str, Any]] = {}
        firsts: set[str] = set()
        now = self.clock()
        keys = await self._keys_of(records)
        for record in records:
            event = _opened(record.value, keys)
            if isinstance(event, SignatureVerified | FeedbackChanged):
                continue  # no SMS
            self.metrics.status_events.labels("read").inc()
            if isinstance(event, StatusChanged):
                standing[event.data.dossier_code] = self._standing(event)
                if event.data.old is None:
                    firsts.add(event.data.dossier_code)
            for w in wanted(event, self.settings.notifications_due_soon):
                decision = await self._decide(w, event.time, now)
                # A status event delivered twice in one batch (published again after a failure) asks
                # for the same messages twice: each is decided once.
                decided.setdefault(decision.message.id, decision)
        return Decided(self._remembered(list(decided.values()), now), standing, firsts)

    async def _keys_of(self, records: list[Record[StatusRecord]]) -> dict[str, bytes]:
        """The keys of the batch's dossiers whose applicant is sealed, read side by side by `_id`."""
        codes = [r.value.data.dossier_code for r in records if _sealed(r.value)]
        return await self.keys.keys_of(codes) if self.keys and codes else {}

    def _remembered(self, decided: list[Decision], now: datetime) -> list[Decision]:
        """Old news beyond the retention (a replay of last year's events) is counted, not stored: its
        record would be purged anyway. Within it (a long outage), `expired` records name whom the
        service failed to tell."""
        retention = timedelta(days=self.settings.notifications_retention_days)
        forgotten = {d.message.id for d in decided
                     if d.message.status is MessageStatus.EXPIRED and d.message.stale(now, retention)}
        self.metrics.messages.labels(MessageStatus.EXPIRED, self.provider).inc(len(forgotten))
        return [d for d in decided if d.message.id not in forgotten]

    async def _decide(self, w: Wanted, step_at: datetime, now: datetime) -> Decision:
        """The message (and its number and text, if it is to be sent) a step asks for."""
        message = self.message(w.step, w.dossier_code, w.commune_code, w.trigger, step_at, now)
        if not w.opted_in or w.trigger not in self.templates.templates:
            return Decision(message.ended(MessageStatus.OPTED_OUT))
        if message.stale(now, timedelta(hours=self.settings.notifications_expire_hours)):
            return Decision(message.ended(MessageStatus.EXPIRED))  # old news (a replay, a long outage): not sent
        phone = w.phone if w.phone is not None else await self.store.recipient_of(w.dossier_code)
        recipient = normalise_phone(phone) if phone else None
        if recipient is None:
            return Decision(message.ended(MessageStatus.INVALID_RECIPIENT))
        unit = commune(w.commune_code)
        date = self.quiet.calendar.local(w.date) if w.date else None
        encoded = self.templates.render(w.trigger, w.dossier_code, unit.name if unit else w.commune_code, date,
                                        w.missing)
        return self.to_send(message, recipient, encoded, now)

    def message(self, step: str, dossier: str, commune_code: str, trigger: str, step_at: datetime,
                now: datetime) -> Message:
        """The message a step asks for, before its status is decided. The citizens' and the officers' (alerts.py)."""
        return Message(message_id(step), step, dossier, commune_code, trigger, now, step_at, self.provider)

    def to_send(self, message: Message, recipient: str, encoded: Encoded, now: datetime) -> Decision:
        """The message, created to be sent from the end of any quiet hours, and its number and text
        (stored apart: purged after the retention days)."""
        return Decision(message.to_send(encoded.coding, encoded.parts, self.quiet.not_before(now)),
                        Body(message.id, recipient, encoded.text, now))

    def _standing(self, event: StatusChanged) -> dict[str, Any]:
        data = event.data
        phone = normalise_phone(data.applicant.phone) if data.applicant.phone else None
        return {"state": data.new.state, "appointment_at": data.new.appointment_at,
                "phone": self.store.number_hash(phone) if phone else None, "events": data.events}
