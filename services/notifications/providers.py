"""SMS gateways behind one interface: Kannel (smsbox's HTTP sendsms), an aggregator's HTTP JSON API and a
log for development; each message's delivery-report URL signed for that message alone. Each provider
owns what its answers mean: which refusals are temporary (tried again) and which permanent (the
message fails at once), and which status each of its delivery reports gives (GOV.UK Notify's way)."""

import asyncio
import hashlib
import hmac
from collections.abc import Container
from typing import Any, Protocol

import aiohttp
import orjson
import structlog

from services.notifications.messages import Body, Message, MessageStatus
from services.notifications.settings import NotificationsSettings
from shared.privacy import mask_phone

log = structlog.get_logger()


class ProviderError(Exception):
    """The gateway did not take the message: tried again later, unless `permanent` (the message itself
    is refused: another try would be refused the same)."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


class Gateway:
    """One aiohttp session to a gateway, its connections kept alive, as many as the sender's calls at once
    (`NotificationsSettings.gateway_concurrency`). Not httpx: its calls took more than half the service's CPU in a
    burst (a py-spy profile of bench-notifications, 2026-12-06), and httpx's CPU per call grows with the calls
    in flight on one client (docs/benchmarks.md). Made at the first call: an aiohttp session belongs to the
    event loop it was made in. Redirects are not followed (a gateway's redirect would take the message, and
    Kannel's password in its URL, elsewhere: `call`), and nothing comes from the environment: no proxy, no
    netrc credentials (as the signature service's fetch). A kept-alive connection the gateway closed is tried
    once more at once by aiohttp (RFC 9112 lets a client retry a GET): like any call that fails after the
    gateway took the message, and is tried again later, it may then send that message twice."""

    def __init__(self, concurrency: int, headers: dict[str, str] | None = None):
        self._concurrency, self._headers = concurrency, headers or {}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._concurrency), headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def exchange(self, gateway: str, method: str, url: str, taken: Container[int], **options: Any) -> bytes:
        """A request to `gateway` whose answer's status is in `taken` (a redirect never is: not followed): the
        answer's body. Any other answer is `refused`, no answer unreachable (said by its `failure`)."""
        try:
            async with self.session().request(method, url, allow_redirects=False, **options) as answer:
                if answer.status not in taken:
                    raise refused(gateway, answer.status, await answer.text(errors="replace"))
                return await answer.read()  # read whole: the connection is kept for the next call
        except UNREACHABLE as exc:
            raise ProviderError(f"{gateway} unreachable: {failure(exc)}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# What a gateway's call may fail with before any answer: refused, reset, timed out, an answer that is no HTTP.
UNREACHABLE = (aiohttp.ClientError, asyncio.TimeoutError)


def failure(exc: BaseException) -> str:
    """What went wrong with a call, as a message's error says it (stored, logged, shown by /v1/messages): the
    error's kind, and an answer's status, never the error's text: aiohttp's holds the request's URL and headers
    (Kannel's password, the citizen's number, the aggregator's token)."""
    status = f" {exc.status}" if isinstance(exc, aiohttp.ClientResponseError) else ""
    return f"{type(exc).__name__}{status}"


# HTTP answers that refuse the message itself, not the moment or our credentials: 400 a malformed
# request or number, 404/410 a recipient unknown or gone, 413 too long, 422 refused content.
PERMANENT = frozenset({400, 404, 410, 413, 422})


def refused(gateway: str, status: int, text: str) -> ProviderError:
    return ProviderError(f"{gateway} answered {status}: {text.strip()[:200]}", permanent=status in PERMANENT)


class Provider(Protocol):
    name: str

    async def send(self, message: Message, body: Body, brandname: str) -> str | None:
        """Hand the message (to its number, with its text) over; returns the gateway's id if it gives one.
        ProviderError if the gateway does not take it."""

    async def close(self) -> None: ...


def dlr_token(secret: str, message_id: str) -> str:
    """The signature of one message's delivery-report URL: HMAC-SHA256 of its id, 96 bits. A report
    signed for one message reports no other, and message ids (derived from dossier steps) can be guessed."""
    return hmac.new(secret.encode(), message_id.encode(), hashlib.sha256).hexdigest()[:24]


def dlr_token_ok(secret: str, message_id: str, token: str) -> bool:
    """Whether `token` signs `message_id`, compared in constant time (as bytes: any text may come in).
    Never with an empty key, with which anyone could sign."""
    return bool(secret) and hmac.compare_digest(token.encode(), dlr_token(secret, message_id).encode())


def dlr_url(settings: NotificationsSettings, path: str, message_id: str) -> str:
    """Where the gateway reports on one message: our id and its signature (ids are hex, safe in a URL)."""
    token = dlr_token(settings.notifications_dlr_secret.get_secret_value(), message_id)
    return f"{settings.notifications_dlr_base_url}{path}?id={message_id}&token={token}"


class Kannel:
    """smsbox's sendsms: the brandname as sender, UCS-2 with coding=2, a signed delivery-report URL
    carrying our message id (`%d` is Kannel's report type)."""

    name = "kannel"
    # Its delivery-report types (dlr-mask bits) and the status each one means; 4 (buffered by the SMSC)
    # means nothing to record.
    REPORTS = {1: MessageStatus.DELIVERED, 2: MessageStatus.FAILED, 8: MessageStatus.SENT, 16: MessageStatus.FAILED}
    # The reports asked for: those that move a message (delivered, failed, refused by the SMSC). Not 8
    # (the SMSC took it: our `sent`, recorded when Kannel took it) nor 4: each report is a request to us,
    # and with all five a burst made three per message (issue 26, item 3).
    MASK = 1 | 2 | 16

    def __init__(self, settings: NotificationsSettings):
        self._settings = settings
        self._http = Gateway(settings.gateway_concurrency())

    async def send(self, message: Message, body: Body, brandname: str) -> str | None:
        s = self._settings
        params = {
            "username": s.notifications_kannel_username,
            "password": s.notifications_kannel_password.get_secret_value(),
            "from": brandname,
            "to": body.recipient,
            "text": body.text,
            "charset": "UTF-8",
            "coding": "2" if message.coding == "ucs2" else "0",
            "dlr-mask": str(self.MASK),
            "dlr-url": dlr_url(s, "/v1/dlr", message.id) + "&type=%d",
        }
        await self._http.exchange("kannel", "GET", s.notifications_kannel_url, (200, 202), params=params)
        return None

    @classmethod
    def report_status(cls, kind: int) -> MessageStatus | None:
        return cls.REPORTS.get(kind)

    async def close(self) -> None:
        await self._http.close()


class HttpJson:
    """An aggregator's REST API: a JSON POST built from the configured body, its id read back. The
    body's `{dlr_url}` is the message's own signed report URL: a webhook fixed in the aggregator's
    console carries no signature, and its reports are refused."""

    name = "http"

    def __init__(self, settings: NotificationsSettings):
        self._settings = settings
        if not any("{dlr_url}" in template for template in settings.notifications_http_body.values()):
            log.warning("the HTTP provider's body has no {dlr_url}: its delivery reports cannot be verified "
                        "and will be refused; messages stay 'sent'")
        headers = {}
        if header := settings.notifications_http_auth_header.get_secret_value():
            name, _, value = header.partition(":")
            headers[name.strip()] = value.strip()
        self._http = Gateway(settings.gateway_concurrency(), headers)

    async def send(self, message: Message, body: Body, brandname: str) -> str | None:
        s = self._settings
        values = {"to": body.recipient, "sender": brandname, "text": body.text, "id": message.id,
                  "coding": message.coding, "dlr_url": dlr_url(s, "/v1/dlr/http", message.id)}
        body = {field: template.format(**values) for field, template in s.notifications_http_body.items()}
        content = await self._http.exchange("provider", "POST", s.notifications_http_url, range(300), json=body)
        try:
            found = orjson.loads(content)
        except orjson.JSONDecodeError:
            found = None
        named = found.get(s.notifications_http_id_field) if isinstance(found, dict) else None
        return str(named) if named else None

    @staticmethod
    def report_status(settings: NotificationsSettings, value: Any) -> MessageStatus | None:
        """The status a delivery report's value means, by the deployment's mapping of its aggregator."""
        return settings.notifications_http_status_map.get(str(value))

    async def close(self) -> None:
        await self._http.close()


class Log:
    """Development: the message goes to the log, number masked."""

    name = "log"

    async def send(self, message: Message, body: Body, brandname: str) -> str | None:
        log.info("sms", to=mask_phone(body.recipient), sender=brandname, text=body.text, parts=message.parts)
        return None

    async def close(self) -> None:
        return None


def provider(settings: NotificationsSettings) -> Provider:
    chosen = settings.notifications_provider
    return Kannel(settings) if chosen == "kannel" else HttpJson(settings) if chosen == "http" else Log()
