"""Metrics' wiring: the `dossier-status` subscription, the clock, /metrics, the report API (docs/contract.md §4-§5)."""

import hmac
from collections.abc import Callable
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.metrics import export, feedback_views, handlers, operators
from services.metrics.access import Access, Operator, require_commune, require_province
from services.metrics.figures import figures_of
from services.metrics.core import FiguresLoading, MetricsCore
from services.metrics.settings import MetricsSettings
from services.metrics.store import FiguresStore
from shared.auth import ApiKeys
from shared.communes import Commune, commune, communes_of_province
from shared.contracts import ClockChanged, StatusRecord
from shared.report import COMPONENTS
from shared.scorecard import GROUPS, MEASURED, NOT_MEASURED, NOT_MEASURED_NOTE
from shared.consumer_app import ConsumerApp

log = structlog.get_logger()

# `from` is a Python keyword: the query parameters keep docs/contract.md §5's names through aliases.
From = Annotated[str | None, Query(alias="from", description="First receipt date, YYYY-MM-DD")]
To = Annotated[str | None, Query(alias="to", description="Last receipt date, YYYY-MM-DD")]


def parse_period(start: str | None, end: str | None, as_of: str | None,
                 now: Callable[[], datetime]) -> tuple[date, date, datetime]:
    """The report's query (docs/contract.md §5), as of `now()` unless told, or 400 saying what is wrong."""
    try:
        first, last = date.fromisoformat(start or ""), date.fromisoformat(end or "")
    except ValueError:
        raise HTTPException(400, "from and to are required dates, YYYY-MM-DD") from None
    if first > last:
        raise HTTPException(400, f"from {first} is after to {last}")
    if last >= date.max:
        raise HTTPException(400, f"to must be before {date.max}: a period ends where the day after `to` starts")
    return first, last, parse_instant(as_of, "as_of") if as_of is not None else now()


def parse_instant(value: str, name: str) -> datetime:
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{name} must be an RFC 3339 instant, e.g. 2025-11-11T17:00:00+07:00") from None
    if instant.tzinfo is None:
        raise HTTPException(400, f"{name} needs a UTC offset, e.g. 2025-11-11T17:00:00+07:00")
    return instant


TITLE = "Dossier metrics"
DESCRIPTION = "On-time, overdue, online, payment, digitization and satisfaction figures (docs/domain.md §5-§6)."


def build(settings: MetricsSettings) -> tuple[ConsumerApp, MetricsCore]:
    runtime = ConsumerApp("metrics", settings, CollectorRegistry())
    core = MetricsCore(settings, figures_of(settings),
                       FiguresStore(runtime.mongo, runtime.database, settings.metrics_replica), runtime.registry,
                       settings.clock)
    runtime.consume(settings.topic_status, settings.metrics_group_id, StatusRecord,
                    partial(handlers.on_status, core=core), max_batch=settings.metrics_max_batch)
    runtime.publishes(settings.topic_status, ClockChanged, "Time alone moved an open dossier to due soon or overdue")

    async def publish(events: list[ClockChanged]) -> None:
        await runtime.publish(settings.topic_status, [(e.subject, e.to_bytes(), {}) for e in events])

    runtime.before_consuming("loading the figures", core.start)
    runtime.once_consuming("settling the figures loaded", core.settle_loaded)
    runtime.every(settings.metrics_clock_interval_seconds, "clock", lambda: core.move_clock(publish))
    # `core.start` did each of these once before consuming: the next, one interval later.
    runtime.every(settings.metrics_snapshot_interval_seconds, "snapshot", core.snapshot.refresh, wait_first=True)
    runtime.every(settings.metrics_compact_interval_seconds, "compaction", core.compact, wait_first=True)
    # Once consuming, as the snapshot's loop: at once if the start served them as stored, else one interval later. (From
    # the start on, its first turn held the start's joining Kafka: ready 2.5 s later on a province-year.)
    runtime.every(settings.metrics_at_risk_interval_seconds, "points at risk", core.refresh_at_risk)
    return runtime, core


def asyncapi() -> Any:
    """`faststream docs gen services.metrics.app:asyncapi --factory`"""
    return build(MetricsSettings.model_construct())[0].asyncapi(TITLE, DESCRIPTION)  # defaults, not the environment


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    runtime, core = build(settings)
    # Served from memory once loaded: readiness does not ask MongoDB again; the business figures come
    # from the background snapshot, the service's own metrics are live.
    app = runtime.app(TITLE, DESCRIPTION, not_ready=lambda: None if core.loaded else "loading the figures",
                      exposition=lambda: core.snapshot.text + generate_latest(runtime.registry))
    access = Access(ApiKeys.load(settings.metrics_operator_keys, settings.metrics_operator_keys_file),
                    settings.metrics_session_secret.get_secret_value(), list(settings.metrics_trusted_proxies))
    add_urgent_route(app, settings, core)
    api = add_report_api(app, settings, core, Scope(core, Annotated[Operator, Depends(access.required)]))
    operators.install(app, api, settings.clock, access)
    app.add_exception_handler(FiguresLoading, loading)
    return app


async def loading(request: Request, error: Exception) -> JSONResponse:
    """A report asked while the figures load (a restart of a province-year takes about half a minute)."""
    return JSONResponse({"detail": "the figures are loading: try again in a few seconds"}, status_code=503,
                        headers={"Retry-After": "5"})


class Scope:
    """Who may read what: an operator's provinces and communes, and this replica's shard."""

    def __init__(self, core: MetricsCore, reader: Any):
        self.core = core
        self.Reader = reader  # the route parameter that requires a signed-in operator

    def province(self, province_code: str, operator: Operator) -> None:
        """403 for a province the operator may not read, 421 for one another replica owns."""
        require_province(operator, province_code)
        if (why := self.core.shard.misdirected(province_code)) is not None:
            raise HTTPException(421, why)

    def commune(self, commune_code: str, operator: Operator) -> None:
        """404 for a code not in the official list, 403 for a commune the operator may not read, 421 for a
        commune of a province another replica owns."""
        unit = commune(commune_code)
        if unit is None:
            raise HTTPException(404, f"no commune-level unit {commune_code} in the official list")
        require_commune(operator, commune_code)
        self.province(unit.province_code, operator)


def add_urgent_route(app: FastAPI, settings: MetricsSettings, core: MetricsCore) -> None:
    @app.get("/metrics/dossiers", summary="The urgent dossiers' codes, for Prometheus' scrape token only",
             include_in_schema=False)
    async def urgent_dossiers(authorization: Annotated[str | None, Header()] = None) -> Response:
        scheme, _, token = (authorization or "").partition(" ")
        expected = settings.metrics_scrape_token.get_secret_value()
        if scheme.lower() != "bearer" or not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise HTTPException(401, "Prometheus' scrape token is required", headers={"WWW-Authenticate": "Bearer"})
        return Response(core.snapshot.urgent, media_type=CONTENT_TYPE_LATEST)


def scorecard_answer(province_code: str, province: list[Commune], first: date, last: date, instant: datetime,
                     not_applicable: frozenset[str], ranked: list[dict[str, Any]]) -> dict[str, Any]:
    """The scorecard's JSON (docs/contract.md §5, §8): the decision's groups and sub-indicators, then the rows."""
    return {
        "version": "1.2",
        "province_code": province_code, "province_name": province[0].province_name,
        "from": first.isoformat(), "to": last.isoformat(), "as_of": instant.isoformat(),
        "approximation": "QĐ 766/QĐ-TTg as the national portal computes it, over what dossier and feedback "
                         "events can measure (docs/domain.md §6)",
        "groups": [{"key": key, "name": name, "max": maximum} for key, (name, maximum) in GROUPS.items()],
        "sub_indicators": [{"key": s.key, "code": s.code, "name": s.name, "group": s.group, "max": s.max_points,
                            "full_marks_at": s.full_marks_at, "scope": s.scope} for s in MEASURED],
        "not_measured": [{"key": n.key, "code": n.code, "name": n.name, "group": n.group, "points": n.max_points}
                         for n in NOT_MEASURED],
        "not_measured_note": NOT_MEASURED_NOTE,
        "not_applicable": sorted(not_applicable),
        # v1: the first approximation's components, still given on each row as `points`
        "components": [{"key": c.key, "name": c.name, "max_points": c.max_points, "rate": c.rate,
                        "full_marks_at": c.full_marks_at} for c in COMPONENTS],
        "communes": ranked,
    }


def add_report_api(app: FastAPI, settings: MetricsSettings, core: MetricsCore, scope: Scope
                   ) -> operators.ReportApi:
    """The report API (docs/contract.md §5): a commune's report, the province's scorecard; returns its
    endpoints for the operators' page, which calls them in-process."""
    Reader, not_applicable = scope.Reader, frozenset(settings.metrics_not_applicable)

    @app.get("/v1/reports/communes/{commune_code}", summary="A commune's indicators for a cohort (docs/contract.md §5)",
             responses=export.RESPONSES)
    async def commune_report(commune_code: str, operator: Reader, start: From = None, end: To = None,
                             as_of: str | None = None, output: export.Format = "json") -> Any:
        first, last, instant = parse_period(start, end, as_of, settings.clock)
        scope.commune(commune_code, operator)
        figures = await core.figures_for([commune_code], first, last)
        report = core.timed("commune", lambda: figures.report(commune_code, first, last, instant)
                               | {"on_time_views": figures.on_time_views(commune_code, first, last, instant)})
        return export.respond({"commune_code": commune_code, "from": first.isoformat(), "to": last.isoformat(),
                               "as_of": instant.isoformat(), **report}, output, export.commune_table)

    @app.get("/v1/reports/provinces/{province_code}/scorecard", summary="The QĐ 766 scorecard, ranked",
             responses=export.RESPONSES)
    async def scorecard(province_code: str, operator: Reader, start: From = None, end: To = None,
                        as_of: str | None = None, output: export.Format = "json") -> Any:
        first, last, instant = parse_period(start, end, as_of, settings.clock)
        province = communes_of_province(province_code)
        if not province:
            raise HTTPException(404, f"no province {province_code} in the official list")
        scope.province(province_code, operator)
        figures = await core.figures_for([c.code for c in province], first, last)
        ranked = core.timed("scorecard", lambda: figures.scorecard(province, first, last, instant, not_applicable))
        return export.respond(scorecard_answer(province_code, province, first, last, instant, not_applicable, ranked),
                              output, export.scorecard_table)

    points_at_risk, units = add_commune_views(app, settings, core, scope)
    feedback = feedback_views.install(app, settings, core, scope, parse_period, From, To)
    return operators.ReportApi(commune_report, scorecard, points_at_risk, units, feedback)


def add_commune_views(app: FastAPI, settings: MetricsSettings, core: MetricsCore, scope: Scope
                      ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """A commune's points at risk and where its dossiers wait (docs/contract.md §8)."""
    Reader, not_applicable = scope.Reader, frozenset(settings.metrics_not_applicable)

    @app.get("/v1/reports/communes/{commune_code}/at-risk", summary="The points a commune is about to lose",
             responses=export.RESPONSES)
    async def points_at_risk(commune_code: str, operator: Reader, start: From = None, end: To = None,
                             as_of: str | None = None, horizon: str | None = None,
                             output: export.Format = "json") -> Any:
        first, last, instant = parse_period(start, end, as_of, settings.clock)
        scope.commune(commune_code, operator)
        until = parse_instant(horizon, "horizon") if horizon else core.figures.calendar.end_of_day(last)
        figures = await core.figures_for([commune_code], first, last)
        found = core.timed("at_risk", lambda: figures.at_risk(commune_code, first, last, instant, until,
                                                                  not_applicable))
        return export.respond({"commune_code": commune_code, "from": first.isoformat(), "to": last.isoformat(),
                               "as_of": instant.isoformat(), "horizon": until.isoformat(), **found},
                              output, export.at_risk_table)

    @app.get("/v1/reports/communes/{commune_code}/units", summary="Where the commune's dossiers wait, by unit",
             responses=export.RESPONSES)
    async def units(commune_code: str, operator: Reader, start: From = None, end: To = None,
                    as_of: str | None = None, output: export.Format = "json") -> Any:
        first, last, instant = parse_period(start, end, as_of, settings.clock)
        scope.commune(commune_code, operator)
        figures = await core.figures_for([commune_code], first, last)
        rows, steps = core.timed("units", lambda: (figures.units(commune_code, first, last, instant),
                                                      figures.overdue_steps(commune_code, first, last, instant)))
        return export.respond({"commune_code": commune_code, "from": first.isoformat(), "to": last.isoformat(),
                               "as_of": instant.isoformat(), "units": rows, "overdue_steps": steps},
                              output, export.units_table)

    return points_at_risk, units
