"""Processing's wiring: the `dossier-events` subscription, the operators' dossier lookup (docs/contract.md
§6), the citizens' lookup and its page (§8), health, metrics."""

import asyncio
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from prometheus_client import CollectorRegistry

from services.processing import handlers
from services.processing.feedback import FeedbackMetrics, FeedbackProcessor, FeedbackStore
from services.processing.history import Outgoing
from services.processing.audit import AuditLog
from services.processing.lookup import (Attempts, LookupRefused, Slots, Window, citizen_view, client_of,
                                        factor_matches, well_formed_factor)
from services.processing.page import render
from services.processing.processor import ProcessingMetrics, Processor
from services.processing.settings import ProcessingSettings
from services.processing.store import DossierStore
from shared.auth import ApiKeys, require_dossier_code, require_key
from shared.calendar import WorkingCalendar
from shared.contracts import DeadLetter, FeedbackChanged, StatusChanged
from shared.facts import open_state
from shared.events import AnyEvent, Applicant, is_dossier_code
from shared.lookup import last4
from shared.personal import DossierKeys, Retention, opened_applicant
from shared.reloading import Reloading
from shared.units import load_units
from shared.privacy import mask_phone
from shared.consumer_app import ConsumerApp

log = structlog.get_logger()
TITLE = "Dossier processing"
DESCRIPTION = "One dossier's state, due date and timeliness, folded from its events."


def with_open_state(view: dict[str, Any], now: datetime, calendar: WorkingCalendar) -> dict[str, Any]:
    """A stored view (services.processing.history.view) with the dossier's open state at `now`."""
    due = datetime.fromisoformat(view["due_at"]) if view["due_at"] else None
    return {**view, "open_state": open_state(view["state"], due, now, calendar)}


def opened_view(view: dict[str, Any], key: bytes | None) -> Applicant | None:
    """The applicant of a stored view in clear (services.processing.history.stored_applicant), None once
    its key is erased."""
    stored = view["applicant"]
    if "sealed" not in stored:
        return Applicant(name=stored["name"])  # a receipt from before sealing: its phone was kept masked
    return opened_applicant(key, view["dossier_code"], Applicant.model_validate(stored))


def shown_applicant(view: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """The applicant as an operator sees it: name and masked phone, or nothing once erased."""
    if "sealed" not in view["applicant"]:
        return view["applicant"]
    opened = opened_view(view, key)
    phone = opened.phone if opened else None
    return {"name": opened.name if opened else None, "phone": mask_phone(phone) if phone else None}


def build(settings: ProcessingSettings) -> tuple[ConsumerApp, Processor]:
    runtime = ConsumerApp("processing", settings, CollectorRegistry())
    store = DossierStore(runtime.mongo, runtime.database, cache_mib=settings.processing_cache_mib,
                         records_as_json=settings.processing_link_records_as_json)
    metrics = ProcessingMetrics(runtime.registry)
    database = runtime.mongo[runtime.database]
    retention = Retention(database, DossierKeys(database), settings.personal_retention_days, settings.clock,
                          settings.personal_idle_days, store.open_steps)

    async def publish(outgoing: list[Outgoing]) -> None:
        await runtime.publish(settings.topic_status, [(o.key, o.value, {}) for o in outgoing if o.kind == "status"])
        rejected = [(o.key, o.value, DeadLetter(reason=o.reason or "", error="inapplicable").headers())
                    for o in outgoing if o.kind == "dlq"]
        await runtime.publish(settings.topic_dlq, rejected)

    calendar = WorkingCalendar.load(settings.calendar)
    processor = Processor(settings, store, calendar, publish, metrics, settings.clock, retention)
    units = Reloading(settings.processing_units_file, load_units)
    feedback = FeedbackProcessor(FeedbackStore(database), calendar,
                                 lambda: lambda unit: (found.commune if (found := units.current().find(unit)) else None),
                                 publish, FeedbackMetrics(runtime.registry, metrics.foreign),
                                 max_events=settings.processing_max_events_per_dossier)
    subscriber = runtime.consume(settings.topic_events, settings.processing_group_id, AnyEvent,
                                 partial(handlers.on_dossier_events, processor=processor, feedback=feedback),
                                 max_batch=settings.processing_max_batch)
    runtime.publishes(settings.topic_status, StatusChanged | FeedbackChanged,
                      "A dossier's state, due, timeliness or counted facts changed; a PAKN's steps changed")
    metrics.assigned.set_function(lambda: len(subscriber.consumer.assignment()) if subscriber.consumer else 0)

    async def sweep() -> None:
        if given_up := await processor.sweep_waiting():
            log.warning("dossiers without a receipt dead-lettered", count=given_up)

    runtime.every(settings.processing_sweep_interval_seconds, "sweep", sweep, wait_first=True, start="now")

    async def erase_personal() -> None:
        if erased := await retention.sweep():
            log.info("dossiers' personal data erased at retention", keys=erased)

    runtime.every(settings.processing_retention_sweep_interval_seconds, "retention", erase_personal, start="now")
    return runtime, processor


def asyncapi() -> Any:
    """`faststream docs gen services.processing.app:asyncapi --factory`"""
    return build(ProcessingSettings.model_construct())[0].asyncapi(TITLE, DESCRIPTION)  # defaults, not the environment


NOT_FOUND = "no dossier with this code and this factor"
PAGE_ERRORS = {
    400: "Mã hồ sơ hoặc 4 số cuối điện thoại chưa đúng. Mã hồ sơ có dạng 000.00.38.H56-250701-0001.",
    404: "Không tìm thấy hồ sơ với mã và số điện thoại này. Xin ông/bà kiểm tra lại giấy tiếp nhận.",
    429: "Ông/bà đã tra cứu quá nhiều lần. Xin thử lại sau ít phút.",
}


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    calendar = WorkingCalendar.load(settings.calendar)
    runtime, processor = build(settings)
    database = runtime.mongo[settings.mongo_database]
    slots = Slots(database["lookup_attempts"])
    runtime.every(600, "lookup purge", slots.purge, start="now")
    app = runtime.app(TITLE, DESCRIPTION)
    keys = DossierKeys(database)
    add_operator_view(app, settings, processor.store, keys, AuditLog(database["audit_log"], settings.clock), calendar)
    attempts = Attempts(slots, settings.processing_lookup_per_client_per_minute,
                        settings.processing_lookup_failures_per_code_per_hour,
                        settings.processing_lookup_failures_per_client_code_per_hour)
    runtime.on_close(attempts.close)
    add_citizen_routes(app, settings, CitizenLookup(processor.store, keys, attempts, settings, calendar), calendar)
    return app


def add_operator_view(app: FastAPI, settings: ProcessingSettings, store: DossierStore, keys: DossierKeys,
                      audit: AuditLog, calendar: WorkingCalendar) -> None:
    """`GET /v1/dossiers/{code}` (docs/contract.md §6): operator keys, scoped, every read audited."""
    operators = ApiKeys.load(settings.processing_operator_keys, settings.processing_operator_keys_file)

    @app.get("/v1/dossiers/{dossier_code}", summary="One dossier as of now, for operators",
             responses={400: {}, 401: {}, 404: {}})
    async def get_dossier(dossier_code: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        key = require_key(operators, authorization)
        require_dossier_code(dossier_code)
        found = await store.view(dossier_code)
        if found is None:
            raise HTTPException(404, f"no dossier {dossier_code}")
        if not key.serves(found[0]["commune_code"]):
            raise HTTPException(403, f"key {key.name!r} may not read dossiers of commune {found[0]['commune_code']}")
        await audit.read(key.name, dossier_code, "applicant's name and masked phone")
        shown = found[0] | {"applicant": shown_applicant(found[0], await keys.key_of(dossier_code))}
        return with_open_state(shown, settings.clock(), calendar)


def too_many(refused: LookupRefused) -> HTTPException:
    return HTTPException(429, str(refused), headers={"Retry-After": str(refused.retry_after)})


class CitizenLookup:
    """The citizens' lookup (docs/contract.md §8): 400 for what is not a code and a factor, 429 over
    the limits, the same 404 for an unknown code and a wrong factor."""

    def __init__(self, store: DossierStore, keys: DossierKeys, attempts: Attempts, settings: ProcessingSettings,
                 calendar: WorkingCalendar):
        self.store, self.keys, self.attempts, self.settings, self.calendar = store, keys, attempts, settings, calendar

    async def answer(self, client: str, code: str, phone4: str | None, token: str | None) -> dict[str, Any]:
        if not is_dossier_code(code) or not well_formed_factor(phone4, token):
            raise HTTPException(400, "a dossier code and either phone4 (4 digits) or token")
        secret = self.settings.lookup_secret.get_secret_value()
        try:
            self.attempts.check(client)
            # A valid token is checked without the database: others' failures never lock it out.
            token_right = token is not None and factor_matches(code, None, token, None, secret)
            windows = [] if token_right else self.attempts.windows(client, code, code_wide=token is None)
            if token is not None and not token_right:  # counted for its client; says nothing of the dossier
                await self.attempts.take(windows)
        except LookupRefused as refused:
            raise too_many(refused) from None
        if token is not None:
            found = await self.store.view(code) if token_right else None
        else:
            found = await self._guessed(code, phone4 or "", windows, secret)
        if not found:
            raise HTTPException(404, NOT_FOUND)
        return citizen_view(found[0], self.settings.clock(), self.calendar)

    async def _guessed(self, code: str, phone4: str, windows: list[Window],
                       secret: str) -> tuple[dict[str, Any], str | None] | None:
        """The dossier if these are its phone's last 4 digits. The guess is counted and the dossier read
        side by side; nothing is compared before it is counted. The key is read whether the code is known
        or not: the same work for both (lookup.py)."""
        guess, found, key = await asyncio.gather(self.attempts.take(windows), self.store.view(code),
                                                 self.keys.key_of(code), return_exceptions=True)
        if failed := [o for o in (guess, found, key) if isinstance(o, BaseException)]:
            if isinstance(guess, list):
                self.attempts.right_later(guess)  # not evaluated
            raise too_many(failed[0]) if isinstance(failed[0], LookupRefused) else failed[0]
        view, stored4 = found if found else (None, None)
        if view and stored4 is None:  # the phone is sealed: its digits are compared opened, never stored
            stored4 = last4(opened.phone) if (opened := opened_view(view, key)) else None
        if not view or not factor_matches(code, phone4, None, stored4, secret):
            return None
        self.attempts.right_later(guess)
        return found


def add_citizen_routes(app: FastAPI, settings: ProcessingSettings, lookup: CitizenLookup,
                       calendar: WorkingCalendar) -> None:
    """The citizens' lookup as JSON and as its Vietnamese page (`/tra-cuu`)."""
    proxies = list(settings.processing_trusted_proxies)

    @app.get("/v1/lookup/{dossier_code}", summary="A citizen's own dossier: state, appointment, steps",
             responses={400: {}, 404: {}, 429: {}})
    async def citizen_lookup(request: Request, dossier_code: str, phone4: Annotated[str | None, Query(max_length=4)] = None,
                             token: Annotated[str | None, Query(max_length=16)] = None) -> dict[str, Any]:
        return await lookup.answer(client_of(request, proxies), dossier_code, phone4, token)

    @app.get("/tra-cuu", summary="The citizens' lookup page (Vietnamese)", response_class=HTMLResponse)
    async def lookup_page(request: Request, ma: Annotated[str, Query(max_length=40)] = "",
                          so: Annotated[str, Query(max_length=4)] = "",
                          t: Annotated[str | None, Query(max_length=16)] = None) -> HTMLResponse:
        code = ma.strip()
        if not code:
            return HTMLResponse(render(calendar))
        try:
            found = await lookup.answer(client_of(request, proxies), code, None if t else so.strip(), t)
        except HTTPException as refused:
            page = render(calendar, code, so, t, error=PAGE_ERRORS.get(refused.status_code, PAGE_ERRORS[404]))
            return HTMLResponse(page, status_code=refused.status_code, headers=refused.headers)
        return HTMLResponse(render(calendar, code, so, t, found=found))
