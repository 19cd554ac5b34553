"""The notifications service's settings (`DOSSIER_NOTIFICATIONS_*`): the gateway, quiet hours, limits, retries,
retention, the callbacks' secrets and the officers' numbers."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from services.notifications.messages import MessageStatus
from shared.auth import ApiKey
from shared.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    notifications_port: int = 8004
    notifications_group_id: str = "notifications"
    notifications_templates: Path | None = None  # default: services/notifications/templates.yaml
    notifications_provider: Literal["kannel", "http", "log"] = "log"
    # Kannel's smsbox sendsms interface, and the address at which Kannel reaches our DLR endpoint.
    notifications_kannel_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    notifications_kannel_username: str = "dossier"
    notifications_kannel_password: SecretStr = SecretStr("")
    notifications_dlr_base_url: str = "http://127.0.0.1:8004"
    # Signs each message's delivery-report URL (for that message alone); empty: every report is refused.
    notifications_dlr_secret: SecretStr = SecretStr("")
    # A generic HTTP JSON provider (an aggregator's REST API): where to POST, an auth header, the
    # body with {to} {sender} {text} {id} {coding} {dlr_url} placeholders in its string values (without
    # {dlr_url}, the message's signed report URL, its reports are refused), the field of the answer
    # holding the provider's id, and how its delivery reports name the message and statuses.
    notifications_http_url: str = ""
    notifications_http_auth_header: SecretStr = SecretStr("")  # e.g. "Authorization: Bearer <token>"
    notifications_http_body: dict[str, str] = {"to": "{to}", "from": "{sender}", "text": "{text}", "ref": "{id}"}
    notifications_http_id_field: str = "id"
    notifications_http_dlr_id_field: str = "ref"
    notifications_http_dlr_status_field: str = "status"
    notifications_http_status_map: dict[str, MessageStatus] = {
        "DELIVERED": MessageStatus.DELIVERED, "FAILED": MessageStatus.FAILED, "UNDELIVERABLE": MessageStatus.FAILED,
        "ACCEPTED": MessageStatus.SENT}
    notifications_due_soon: bool = False  # also tell citizens when their dossier is due within 24 h
    notifications_quiet_start: str = "21:00"  # local time; messages wait until quiet_end
    notifications_quiet_end: str = "07:00"
    notifications_daily_limit: int = 10  # messages per number per local day; more wait for the next day
    notifications_retention_days: float = 30  # bodies and numbers are purged after this; counts stay
    notifications_purge_interval_seconds: float = 3600
    notifications_max_attempts: int = 8
    notifications_backoff_seconds: float = 5  # doubled at each attempt, up to the cap
    notifications_backoff_cap_seconds: float = 600
    notifications_sending_timeout_seconds: float = 60  # a send neither confirmed nor reported is retried after this
    # A message about a step older than this is expired, not sent (a replay, a long outage).
    notifications_expire_hours: float = 48
    notifications_send_interval_seconds: float = 1
    # Messages with the gateway at once (one aiohttp session, providers.Gateway); unset, the provider's
    # default (`gateway_concurrency`). A limit on calls in flight, not a rate.
    notifications_gateway_concurrency: int | None = Field(default=None, ge=1)
    # How often the messages still to send are read again from MongoDB (those another replica left).
    notifications_reload_interval_seconds: float = 300
    # The gateway passes the SMS citizens send to the brandname number (MO) to /v1/mo with this token,
    # whatever the provider; empty: every one is refused.
    notifications_mo_secret: SecretStr = SecretStr("")
    notifications_mo_per_hour: int = 5  # replies to one number (as the authenticated gateway names it) per hour
    # The on-duty officers Alertmanager's alerts reach by SMS (docs/alerts.md): {"14923": ["0912345678"]},
    # JSON here or in a file (both are read); a number that is not a Vietnamese mobile is refused at start.
    notifications_officers: dict[str, list[str]] = {}
    notifications_officers_file: Path | None = None
    notifications_alert_secret: SecretStr = SecretStr("")  # Alertmanager's Bearer token on POST /v1/alerts
    # One SMS per alert group and officer within this window: Alertmanager's repeat_interval (deploy/alertmanager).
    notifications_alert_repeat_hours: float = 4
    notifications_api_keys: list[ApiKey] = []
    notifications_api_keys_file: Path | None = None

    def gateway_concurrency(self) -> int:
        """Messages with the gateway at once: the setting, else 100 with Kannel and 40 with an aggregator's HTTP
        API (whose limits on connections are its own). In a morning burst a call to Kannel takes ~35 ms (busy
        with the delivery reports too, it answered an outside call in ~20 ms, against ~2.5 ms idle): 40 at once
        held a burst to ~1,050 SMS/s, 100 let it reach ~1,400-1,500 (docs/benchmarks.md)."""
        if self.notifications_gateway_concurrency is not None:
            return self.notifications_gateway_concurrency
        return 100 if self.notifications_provider == "kannel" else 40

    def secrets_needed(self) -> list[str]:
        needed = ["notifications_dlr_secret", "notifications_mo_secret", "lookup_secret"]
        if self.notifications_provider == "kannel":
            needed.append("notifications_kannel_password")
        if self.notifications_officers or self.notifications_officers_file:
            needed.append("notifications_alert_secret")
        return needed
