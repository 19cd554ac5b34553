"""The notifications core, without Kafka or HTTP: the decider, the sender, the delivery-report
reader and the purge, wired to one message store, gateway and clock. app.py wires it to the
`dossier-status` subscription and the HTTP routes; tests drive it with a store on dicts
(tests/fixtures/sms.py)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry

from shared.personal import DossierKeys

from services.notifications.decider import Decider
from services.notifications.instruments import NotificationMetrics
from services.notifications.providers import Provider
from services.notifications.purge import Purge
from services.notifications.quiet import QuietHours
from services.notifications.reports import DeliveryReports
from services.notifications.sender import Sender
from services.notifications.settings import NotificationsSettings
from services.notifications.store import MessageStore
from services.notifications.templates import Templates
from shared.calendar import WorkingCalendar
from shared.clock import Clock


@dataclass(frozen=True)
class Core:
    store: MessageStore
    provider: Provider
    quiet: QuietHours
    metrics: NotificationMetrics
    decider: Decider
    sender: Sender
    reports: DeliveryReports
    purge: Purge
    clock: Callable[[], datetime]

    @classmethod
    def build(cls, settings: NotificationsSettings, store: MessageStore, provider: Provider, templates: Templates,
              calendar: WorkingCalendar, registry: CollectorRegistry,
              clock: Callable[[], datetime] = Clock(), keys: DossierKeys | None = None) -> "Core":
        metrics = NotificationMetrics(registry)
        quiet = QuietHours.of(calendar, settings.notifications_quiet_start, settings.notifications_quiet_end)
        decider = Decider(settings, templates, quiet, store, provider.name, metrics, clock, keys)
        sender = Sender(settings, store, provider, templates.brandname, quiet, metrics, clock)
        reports = DeliveryReports(store, sender, metrics, clock)
        purge = Purge(settings.notifications_retention_days, store, sender, clock)
        return cls(store, provider, quiet, metrics, decider, sender, reports, purge, clock)

    @property
    def calendar(self) -> WorkingCalendar:
        return self.quiet.calendar
