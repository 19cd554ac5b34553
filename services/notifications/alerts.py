"""The commune officers' SMS (docs/alerts.md): Alertmanager calls POST /v1/alerts with a group of
alerts about one commune's dossiers at risk (DossiersOverdue, DossiersDueSoon in
deploy/prometheus/rules/dossiers.yml), and the commune's on-duty officers get, unaccented, e.g.
"3 ho so qua han tai Xa Ba Thuoc, 2 sap den han trong 24 gio. Ma: 000.00.38.H56-250701-0001, ...".

The alert carries what the SMS says (its annotations: the counts and the first dossiers' codes), so
nothing else is asked at sending time. The messages go the citizens' way (Sender.queue): stored
before the answer, quiet hours, the daily limit per number, retries, delivery reports, the purge.
A message's id derives from Alertmanager's groupKey, the officer and the repeat window of the
instant it may go: Alertmanager's retries, a second Alertmanager, its repeats within the window and
a night's repeats (all waiting for the morning) give one SMS.
"""

import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from services.notifications.core import Core
from services.notifications.messages import Decision
from services.notifications.settings import NotificationsSettings
from services.notifications.sms import encode
from shared.phones import normalise_phone
from shared.communes import commune
from shared.events import is_dossier_code
from shared.privacy import mask_phone

log = structlog.get_logger()

MAX_BYTES = 1 << 20  # a notification's body; Alertmanager's are a few kilobytes
CODES = 5  # dossier codes an SMS gives
TRIGGER = "officers_alert"


class Alert(BaseModel):
    """What is read of one alert of Alertmanager's webhook payload (version 4)."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}


class Notification(BaseModel):
    """Alertmanager's webhook payload (version 4): one alert group."""

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=10_000)  # noqa: N815 (Alertmanager's name)
    status: Literal["firing", "resolved"]
    groupLabels: dict[str, str]  # noqa: N815
    alerts: list[Alert] = Field(min_length=1, max_length=1_000)


@dataclass(frozen=True)
class AtRisk:
    """A commune's dossiers at risk, as its officers are told."""

    commune_code: str
    overdue: int
    due_soon: int
    codes: list[str]  # the first CODES, overdue ones first, by due


def count(annotations: dict[str, str], name: str) -> int:
    """A count an alert's annotation gives as Prometheus printed it ("3", "1e+06")."""
    try:
        value = float(annotations.get(name, "0"))
    except ValueError:
        raise ValueError(f"annotation {name}: not a number") from None
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(f"annotation {name}: not a count")
    return int(value)


def at_risk(notification: Notification) -> AtRisk | None:
    """What the officers are told of a group of alerts, or None when none of them fires. ValueError
    for a group that is not one commune's dossiers at risk."""
    code = notification.groupLabels.get("commune", "")
    if commune(code) is None:
        raise ValueError("groupLabels.commune: not a commune of the official list")
    if any(a.labels.get("commune") != code for a in notification.alerts):
        raise ValueError("alerts: of another commune than the group's")
    firing = [a for a in notification.alerts if a.status == "firing"]
    if not firing:
        return None
    codes: list[str] = []
    for alert in firing:
        for found in alert.annotations.get("dossiers", "").split():
            if not is_dossier_code(found):
                raise ValueError("annotation dossiers: not dossier codes")
            if found not in codes:
                codes.append(found)
    overdue = max(count(a.annotations, "overdue") for a in firing)
    due_soon = max(count(a.annotations, "due_soon") for a in firing)
    if not overdue and not due_soon:
        raise ValueError("annotations overdue, due_soon: no dossier at risk")
    return AtRisk(code, overdue, due_soon, codes[:CODES])


def text(unit_name: str, risk: AtRisk) -> str:
    """The SMS in Vietnamese, sent without diacritics (sms.encode)."""
    if risk.overdue:
        head = f"{risk.overdue} hồ sơ quá hạn tại {unit_name}"
        if risk.due_soon:
            head += f", {risk.due_soon} sắp đến hạn trong 24 giờ"
    else:
        head = f"{risk.due_soon} hồ sơ sắp đến hạn trong 24 giờ tại {unit_name}"
    return f"{head}. Mã: {', '.join(risk.codes)}." if risk.codes else f"{head}."


def load_officers(settings: NotificationsSettings) -> dict[str, list[str]]:
    """The officers' numbers (E.164) per commune, from the setting and its file. A commune outside
    the official list or a number that is not a Vietnamese mobile stops the service at start."""
    raw = {code: list(numbers) for code, numbers in settings.notifications_officers.items()}
    if settings.notifications_officers_file is not None:
        listed = TypeAdapter(dict[str, list[str]]).validate_json(settings.notifications_officers_file.read_bytes())
        for code, numbers in listed.items():
            raw.setdefault(code, []).extend(numbers)
    officers = {}
    for code, numbers in raw.items():
        if commune(code) is None:
            raise ValueError(f"officers: {code} is not a commune of the official list")
        normalised = []
        for number in numbers:
            phone = normalise_phone(number)
            if phone is None:
                raise ValueError(f"officers of {code}: {mask_phone(number)} is not a Vietnamese mobile number")
            if phone not in normalised:
                normalised.append(phone)
        officers[code] = normalised
    return officers


class OfficerAlerts:
    """Alertmanager's notifications, received as SMS to the commune's officers."""

    def __init__(self, settings: NotificationsSettings, core: Core, registry: CollectorRegistry):
        self.officers = load_officers(settings)
        self.core = core
        self._secret = settings.notifications_alert_secret.get_secret_value().encode()
        self._repeat = timedelta(hours=settings.notifications_alert_repeat_hours)
        self.outcomes = Counter("notifications_alerts", "Alertmanager's notifications, by outcome: queued, "
                                "repeated (within the window), resolved, unconfigured (no officers), malformed, "
                                "unauthorized", ["outcome"], registry=registry)

    def authorized(self, authorization: str | None) -> bool:
        """`Authorization: Bearer <DOSSIER_NOTIFICATIONS_ALERT_SECRET>`; never without a secret."""
        scheme, _, token = (authorization or "").partition(" ")
        ok = bool(self._secret) and scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                                       self._secret)
        if not ok:
            self.outcomes.labels("unauthorized").inc()
        return ok

    async def receive(self, body: bytes) -> dict[str, Any]:
        """Queue the SMS a notification asks for; ValueError if it is not one commune's dossiers at risk."""
        try:
            notification = Notification.model_validate_json(body)
            risk = at_risk(notification)
        except ValidationError as exc:
            self.outcomes.labels("malformed").inc()
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                       for e in exc.errors(include_url=False, include_input=False)[:3])) from None
        except ValueError:
            self.outcomes.labels("malformed").inc()
            raise
        if risk is None:
            self.outcomes.labels("resolved").inc()
            return {"queued": 0, "repeated": 0, "to": []}
        numbers = self.officers.get(risk.commune_code, [])
        if not numbers:
            self.outcomes.labels("unconfigured").inc()
            log.warning("no officers for the commune of an alert", commune=risk.commune_code)
            return {"commune": risk.commune_code, "queued": 0, "repeated": 0, "to": []}
        decided = self._messages(notification.groupKey, risk, numbers, self.core.clock())
        created = await self.core.sender.queue(decided)
        self.outcomes.labels("queued" if created else "repeated").inc()
        to = [mask_phone(n) for n in numbers]
        log.info("officers alerted", commune=risk.commune_code, overdue=risk.overdue, due_soon=risk.due_soon,
                 to=to, queued=len(created))
        return {"commune": risk.commune_code, "queued": len(created), "repeated": len(decided) - len(created),
                "to": to}

    def _messages(self, group: str, risk: AtRisk, numbers: list[str], now: datetime) -> list[Decision]:
        decider = self.core.decider
        window = int(self.core.quiet.not_before(now).timestamp() // self._repeat.total_seconds())
        encoded = encode(text(commune(risk.commune_code).name, risk))
        out = []
        for number in numbers:
            step = f"alert|{group}|{window}|{self.core.store.number_hash(number)}"
            message = decider.message(step, f"alerts/{risk.commune_code}/{window}", risk.commune_code, TRIGGER,
                                      now, now)
            out.append(decider.to_send(message, number, encoded, now))
        return out
