"""The national portal's sync format on intake (docs/dvcqg.md): the transport a one-stop-shop system already
speaks to Cổng DVCQG, so that a province points (or tees) its sync at us and changes nothing else.

`POST /v1/dvcqg/login` `{username, password}` → `{session, error_code: 0}`; `POST /v1/dvcqg`
`{session, madonvi, service, isUpdating?, data: [...]}` (or a Bearer intake key instead of the session) →
`{error_code: "00", results: [...]}`, one result per record, so that a sender re-sends only what failed.
shared/dvcqg.py turns each record into the steps it proves; they go to Kafka as the CloudEvents path's do.
`TraCuuHoSo` on the same route answers what we hold of each MaHoSo the caller may see (shared/dvcqg_lookup.py).
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from pymongo.errors import PyMongoError

from services.intake.held import HeldDossiers
from services.intake.publisher import EventPublisher, KafkaUnavailable
from services.intake.sealing import KeysUnavailable, sealed_records
from services.intake.settings import IntakeSettings
from shared.auth import ApiKey, ApiKeys, PortalAccount, password_matches
from shared.calendar import WorkingCalendar
from shared.catalogue import load_catalogue
from shared.dvcqg import SERVICES, Batch, Problem, RecordError, Reference, record_events
from shared.dvcqg_lookup import Caller, dossier_answer, visible
from shared.events import ReceivedEvent, is_dossier_code
from shared.http import BodyReader, BodyTooLarge, read_body
from shared.personal import DossierKeys
from shared.ratelimit import Windows
from shared.reloading import Reloading
from shared.units import Units

log = structlog.get_logger()

ALL_IN, SOME_FAILED, BAD_REQUEST, TOO_LARGE, UNAVAILABLE, NOT_LOGGED_IN = "00", "01", "02", "03", "99", "-1"
TOO_MANY = "04"
LOOKUP = "TraCuuHoSo"
PUBLISH_CHUNK = 2000
# Where a body carries its session (docs/dvcqg.md): found in its head before more is read (docs/security.md).
SESSION_FIELD = re.compile(rb'"session"\s*:\s*"([A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{1,128})"')
HEAD_BYTES = 64 * 1024
SESSIONS_TRIED = 4  # of those the body names (a record may quote one): each costs an HMAC
MESSAGES = {
    ALL_IN: "Đồng bộ thành công / all records went in",
    SOME_FAILED: "Có bản ghi không đồng bộ được, xem results / some records failed, see results",
}
LOOKUP_MESSAGES = {
    ALL_IN: "Tra cứu thành công / every dossier found",
    SOME_FAILED: "Có hồ sơ không tìm thấy, xem results / some dossiers not found, see results",
}
# One answer for an unknown code and for another system's dossier: the lookup cannot tell which exists.
NOT_FOUND = Problem("MaHoSo", "không tìm thấy hồ sơ", "no such dossier for this account")
NOT_A_CODE = Problem("MaHoSo", "không phải mã hồ sơ theo TT 01/2018 (000.00.00.H00-YYMMDD-0000)",
                     "not a dossier code of TT 01/2018 (000.00.00.H00-YYMMDD-0000)")


@dataclass(frozen=True)
class Sender:
    """Who sends the records, by a portal account's session or an intake key: its system is the `source`."""

    name: str
    source: str
    serves: Callable[[str], bool]
    contributes: tuple[str, ...]
    sources: tuple[str, ...]  # every source it sends as ("*": any): whose dossiers it may look up

    @classmethod
    def of_key(cls, key: ApiKey) -> "Sender":
        source = next((s for s in key.sources if s != "*"), f"urn:dvcqg:{key.name}")
        return cls(key.name, source, key.serves, tuple(key.contributes), (source, *key.sources))

    @classmethod
    def of_account(cls, account: PortalAccount) -> "Sender":
        return cls(account.name, account.source, account.serves, tuple(account.contributes), (account.source,))

    @property
    def caller(self) -> Caller:
        return Caller(self.sources, self.serves)


class Sessions:
    """Signed sessions (any replica checks them): the account, its password's hash and the expiry, HMAC-signed."""

    def __init__(self, secret: bytes, seconds: int, now: Callable[[], float] = time.time):
        self._secret, self._seconds, self._now = secret, seconds, now

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._secret, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def issue(self, account: PortalAccount) -> str:
        payload = json.dumps([account.name, int(self._now()) + self._seconds,
                              hashlib.sha256(account.password_hash.encode()).hexdigest()[:16]]).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)

    def account(self, session: Any, accounts: list[PortalAccount]) -> PortalAccount | None:
        """The account of a valid, unexpired session; None otherwise (a changed password ends its sessions)."""
        if not isinstance(session, str) or session.count(".") != 1 or len(session) > 1024:
            return None
        encoded, signature = session.split(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            name, expires, pinned = json.loads(payload)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(self._sign(payload), signature) or expires < self._now():
            return None
        found = next((a for a in accounts if a.name == name), None)
        return found if found and hashlib.sha256(found.password_hash.encode()).hexdigest()[:16] == pinned else None


def _answer(status: int, code: str, message: str, **more: Any) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message, **more}, status_code=status)


def _accounts(settings: IntakeSettings) -> list[PortalAccount]:
    accounts = list(settings.intake_dvcqg_accounts)
    if settings.intake_dvcqg_accounts_file is not None:
        accounts += [PortalAccount.model_validate(a) for a in json.loads(settings.intake_dvcqg_accounts_file.read_text())]
    return accounts


def _session_secret(settings: IntakeSettings) -> bytes:
    """The configured secret; on the local stack without one, a random one (sessions then live in this process)."""
    secret = settings.intake_dvcqg_session_secret.get_secret_value()
    return secret.encode() if secret else os.urandom(32)


def _out_of_scope(events: list[Any], sender: Sender) -> Problem | None:
    for _obj, event in events:
        if isinstance(event, ReceivedEvent) and not sender.serves(event.data.commune_code):
            return Problem("DonViXuLy", f"tài khoản '{sender.name}' không được gửi hồ sơ của xã {event.data.commune_code}",
                           f"account '{sender.name}' may not send dossiers of commune {event.data.commune_code}")
    return None


def _contract(settings: IntakeSettings, units: Reloading[Units]) -> Callable[[], Reference]:
    """The deployment's units, catalogue (both read again when their file changes), calendar and SMS setting."""
    catalogue = Reloading(settings.intake_dvcqg_catalogue_file, load_catalogue)
    calendar = WorkingCalendar.load(settings.calendar)
    provinces = frozenset(settings.intake_dvcqg_sms_provinces)
    return lambda: Reference(units.current(), catalogue.current(), calendar, provinces)


def map_batch(body: dict[str, Any], sender: Sender, ref: Reference, arrived: str,
              max_record_bytes: int) -> tuple[list[dict[str, Any]], list[tuple[str, bytes]]]:
    """Each record's result, and the Kafka records of those that went in: a record that fails adds nothing, the
    others go in; a step two records of the batch prove is written once."""
    service, madonvi = body["service"], body.get("madonvi")
    batch = Batch(sender.source, madonvi if isinstance(madonvi, str) else None, datetime.fromisoformat(arrived))
    results, records, seen = [], [], set()
    for index, record in enumerate(body["data"]):
        code = record.get("MaHoSo") if isinstance(record, dict) else None
        result: dict[str, Any] = {"index": index, "MaHoSo": code[:64] if isinstance(code, str) else None}
        try:
            events = record_events(service, record, batch, ref)
            if problem := _out_of_scope(events, sender):
                raise RecordError([problem])
            written = [(event.subject, orjson.dumps(_recorded(obj, event.type in sender.contributes, arrived)))
                       for obj, event in events if obj["id"] not in seen]
            if any(len(value) > max_record_bytes for _, value in written):
                raise RecordError([Problem("(record)", f"một bước vượt quá {max_record_bytes} byte",
                                           f"a step is larger than {max_record_bytes} bytes")])
        except RecordError as error:
            results.append(result | {"error_code": SOME_FAILED, "errors": [p.as_json() for p in error.problems]})
            continue
        seen.update(obj["id"] for obj, _ in events)
        records += written
        results.append(result | {"error_code": ALL_IN, "steps": len(events)})
    return results, records


def _recorded(obj: dict[str, Any], contributed: bool, arrived: str) -> dict[str, Any]:
    """The step as written to Kafka, with intake's attributes (as services/intake/app.py:_as_recorded)."""
    return obj | {"intaketime": arrived} | ({"intakecontributor": True} if contributed else {})


def _request_problem(body: Any, max_records: int, max_lookups: int) -> tuple[int, str, str] | None:
    """What is wrong with the request itself (status, error code, message), or None."""
    if not isinstance(body, dict):
        return 400, BAD_REQUEST, "phải là một đối tượng JSON / the body must be a JSON object"
    if body.get("service") not in (*SERVICES, LOOKUP):
        return 400, BAD_REQUEST, (f"service phải là một trong {', '.join((*SERVICES, LOOKUP))} / service must be "
                                  f"one of {', '.join((*SERVICES, LOOKUP))}")
    if not isinstance(body.get("data"), list):
        return 400, BAD_REQUEST, "data phải là danh sách / data must be a list of records"
    if body["service"] == LOOKUP and not body["data"]:
        return 400, BAD_REQUEST, "data phải có ít nhất một MaHoSo / data must list at least one MaHoSo"
    most = max_lookups if body["service"] == LOOKUP else max_records
    if len(body["data"]) > most:
        return 413, TOO_LARGE, f"tối đa {most} bản ghi một lần / at most {most} records a request"
    return None


def _asked(item: Any) -> str | None:
    """A lookup's MaHoSo: the item itself, or its `MaHoSo` field."""
    code = item.get("MaHoSo") if isinstance(item, dict) else item
    return code if isinstance(code, str) else None


async def look_up(body: dict[str, Any], sender: Sender, held: HeldDossiers, ref: Reference) -> JSONResponse:
    """`TraCuuHoSo`: per MaHoSo, the dossier as we hold it and what of it did not apply, if the caller may see
    it; "not found" alike for an unknown code and another's dossier. One key read a code."""
    codes = [_asked(item) for item in body["data"]]
    readable = [code for code in codes if code is not None and is_dossier_code(code)]
    try:
        found = await held.read(readable)
    except PyMongoError as exc:
        log.warning("mongodb unreachable, answering 503 to a lookup", error=str(exc), codes=len(codes))
        return _answer(503, UNAVAILABLE, "Hệ thống tạm thời không tra cứu được, thử lại sau / MongoDB is "
                       "unavailable; retry", results=[])
    results = []
    for index, code in enumerate(codes):
        result: dict[str, Any] = {"index": index, "MaHoSo": code[:64] if code else None}
        shown = visible(found.get(code), sender.caller) if code in readable else None
        if shown is None:
            problem = NOT_FOUND if code in readable else NOT_A_CODE
            results.append(result | {"error_code": SOME_FAILED, "errors": [problem.as_json()]})
        else:
            results.append(result | {"error_code": ALL_IN, "HoSo": dossier_answer(shown, ref.units)})
    missing = sum(r["error_code"] != ALL_IN for r in results)
    log.info("portal lookup", sender=sender.name, codes=len(codes), not_found=missing)
    code = SOME_FAILED if missing else ALL_IN
    return _answer(200, code, LOOKUP_MESSAGES[code], found=len(results) - missing, failed=missing, results=results)


def _throttled(lookups: Windows, body: dict[str, Any], sender: Sender) -> JSONResponse | None:
    """429 once a system has looked up its share of dossiers in the last minute (each MaHoSo counts)."""
    if body["service"] != LOOKUP:
        return None
    if (wait := lookups.wait(sender.source)) is not None:
        return JSONResponse({"error_code": TOO_MANY, "message": f"Tra cứu quá nhiều, thử lại sau {wait:.0f} giây / "
                             f"too many lookups, retry in {wait:.0f} s"}, status_code=429,
                            headers={"Retry-After": str(max(1, round(wait)))})
    for _ in body["data"]:
        lookups.add(sender.source)
    return None


async def _json_body(request: Request, limit: int) -> Any:
    """The decoded body; BodyTooLarge or orjson.JSONDecodeError."""
    return orjson.loads(await read_body(request, limit))


def _not_logged_in() -> JSONResponse:
    return _answer(401, NOT_LOGGED_IN, "Phiên không hợp lệ hoặc đã hết hạn, đăng nhập lại / no valid session (log "
                   "in again) or Bearer key")


@dataclass
class Doorman:
    """Who sends a `/v1/dvcqg` body, known before the body is read further than needed (docs/security.md):
    a Bearer key before any byte; a session in the body's head (HEAD_BYTES) before the rest. A body whose head
    names no session is read whole by at most `late` requests at once; the others get 503 unread."""

    keys: ApiKeys
    sessions: Sessions
    accounts: list[PortalAccount]
    limit: int
    late: asyncio.Semaphore

    async def admit(self, request: Request) -> tuple[bytes, Sender, PortalAccount | None] | JSONResponse:
        """The raw body, its sender and, for a session, its account; or the refusal. BodyTooLarge."""
        authorization = request.headers.get("authorization")
        if authorization is not None:
            key = self.keys.identify(authorization)
            return _not_logged_in() if key is None else (await read_body(request, self.limit), Sender.of_key(key), None)
        reader = BodyReader(request, self.limit)
        await reader.read_to(HEAD_BYTES)
        named = SESSION_FIELD.findall(reader.data)
        if not named and not reader.ended:
            if self.late.locked():
                return JSONResponse({"error_code": UNAVAILABLE, "message": "Bận, gửi lại sau, phiên ở đầu thân / "
                                     "busy: retry, with the session first in the body"}, status_code=503,
                                    headers={"Retry-After": "5"})
            async with self.late:
                await reader.read_all()
            named = SESSION_FIELD.findall(reader.data)
        account = next((a for s in named[:SESSIONS_TRIED] if (a := self.sessions.account(s.decode(), self.accounts))),
                       None)
        if account is None:
            return _not_logged_in()
        return await reader.read_all(), Sender.of_account(account), account

    def owns(self, body: Any, account: PortalAccount | None) -> bool:
        """Whether the decoded body's own session is the one admitted (not one a record quotes)."""
        return account is None or (isinstance(body, dict) and self.sessions.account(body.get("session"),
                                                                                    self.accounts) == account)


def _add_login(app: FastAPI, settings: IntakeSettings, accounts: list[PortalAccount], sessions: Sessions) -> None:
    """`POST /v1/dvcqg/login`: an account's username and password for a session (docs/dvcqg.md)."""

    @app.post("/v1/dvcqg/login", summary="The portal format's login: a session for /v1/dvcqg (docs/dvcqg.md)")
    async def login(request: Request) -> JSONResponse:
        try:
            body = await _json_body(request, 64 * 1024)
        except (BodyTooLarge, orjson.JSONDecodeError):
            body = None
        username, password = (body.get("username"), body.get("password")) if isinstance(body, dict) else (None, None)
        found = next((a for a in accounts if isinstance(username, str) and hmac.compare_digest(
            a.username.encode(), username.encode())), None)
        if found is None or not isinstance(password, str) or not password_matches(password, found.password_hash):
            return JSONResponse({"error_code": -1, "message": "Sai tên đăng nhập hoặc mật khẩu / wrong username or "
                                 "password"}, status_code=401)
        log.info("portal session opened", account=found.name)
        return JSONResponse({"session": sessions.issue(found), "error_code": 0,
                             "expires_in": settings.intake_dvcqg_session_seconds})


def install(app: FastAPI, settings: IntakeSettings, keys: ApiKeys, publisher: EventPublisher,
            registry: CollectorRegistry, personal: DossierKeys, held: HeldDossiers, units: Reloading[Units]) -> None:
    """The portal format's two routes on intake's app; `units`: the units file as the CloudEvents door reads it."""
    accounts = _accounts(settings)
    sessions = Sessions(_session_secret(settings), settings.intake_dvcqg_session_seconds,
                        lambda: settings.clock().timestamp())
    reference = _contract(settings, units)
    counted = Counter("intake_dvcqg_records", "Portal-format records by service and outcome", ["service", "outcome"],
                      registry=registry)
    lookups = Windows(settings.intake_dvcqg_lookups_per_minute, 60)  # per replica, on the monotonic clock
    doorman = Doorman(keys, sessions, accounts, settings.intake_dvcqg_max_body_bytes,
                      asyncio.Semaphore(settings.intake_dvcqg_late_sessions))

    _add_login(app, settings, accounts, sessions)

    @app.post("/v1/dvcqg", summary="DongBoHoSoMC and CapNhatTienDoHoSoMC records, as to the portal (docs/dvcqg.md)")
    async def sync(request: Request) -> JSONResponse:
        try:
            admitted = await doorman.admit(request)
            if isinstance(admitted, JSONResponse):
                return admitted
            raw, sender, account = admitted
            body = orjson.loads(raw)
        except BodyTooLarge as exc:
            return _answer(413, TOO_LARGE, exc.detail)
        except orjson.JSONDecodeError as exc:
            return _answer(400, BAD_REQUEST, f"JSON không hợp lệ / malformed JSON: {exc}")
        if not doorman.owns(body, account):
            return _not_logged_in()
        if problem := _request_problem(body, settings.intake_dvcqg_max_records, settings.intake_dvcqg_max_lookups):
            return _answer(*problem)
        if throttled := _throttled(lookups, body, sender):
            return throttled
        if body["service"] == LOOKUP:
            return await look_up(body, sender, held, reference())
        results, records = map_batch(body, sender, reference(), settings.clock().isoformat(),
                                     settings.max_record_bytes)
        try:
            records = await sealed_records(personal, records)  # docs/security.md, finding 6
            for start in range(0, len(records), PUBLISH_CHUNK):  # each chunk within the publisher's timeout
                await publisher.publish(records[start:start + PUBLISH_CHUNK])
        except (KafkaUnavailable, KeysUnavailable) as exc:
            log.warning("kafka or the dossiers' keys unreachable, answering 503", error=str(exc), records=len(results))
            return _answer(503, UNAVAILABLE, "Hệ thống tạm thời không nhận được, gửi lại sau / Kafka or MongoDB is "
                           "unavailable; retry (retries are harmless)", results=[])
        failed = sum(r["error_code"] != ALL_IN for r in results)
        counted.labels(body["service"], "accepted").inc(len(results) - failed)
        counted.labels(body["service"], "rejected").inc(failed)
        log.info("portal records", sender=sender.name, service=body["service"], records=len(results), failed=failed,
                 steps=len(records))
        code = SOME_FAILED if failed else ALL_IN
        return _answer(200, code, MESSAGES[code], accepted=len(results) - failed, failed=failed, results=results)
