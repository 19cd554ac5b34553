"""What every service's HTTP side shares: /healthz, /readyz, /metrics, reading a body within a limit,
and how it is served."""

import gc
import ipaddress
from collections.abc import Awaitable, Callable

import uvicorn
import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics, generate_latest
from pymongo.errors import PyMongoError

from shared.communes import use_list
from shared.logging import configure_logging
from shared.settings import ServiceSettings

# `_created` series double every counter's output and no dashboard reads them.
disable_created_metrics()

log = structlog.get_logger()

# Says what is missing (e.g. "kafka unreachable"), or None when the service is ready.
NotReady = Callable[[], Awaitable[str | None]]


def add_operational_routes(
    app: FastAPI,
    registry: CollectorRegistry,
    not_ready: NotReady,
    needs: str,
    exposition: Callable[[], bytes] | None = None,
) -> None:
    """/healthz, /readyz and /metrics (the registry's metrics, or what `exposition` gives); a request
    that finds the database away gets 503 with Retry-After, like a service that is not ready."""

    @app.exception_handler(PyMongoError)
    async def database_away(_request: Request, exc: PyMongoError) -> Response:
        log.warning("database unavailable for a request", error=str(exc))
        return JSONResponse({"error": "database unavailable, try again"}, status_code=503,
                            headers={"retry-after": "5"})

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary=f"{needs} reachable", responses={503: {"description": f"{needs} not reachable"}})
    async def readyz() -> Response:
        problem = await not_ready()
        return JSONResponse({"status": problem or "ready"}, status_code=503 if problem else 200)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body = exposition() if exposition else generate_latest(registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_address_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def in_networks(text: str, networks: list[Network]) -> bool:
    """Whether `text` is an address in one of `networks` (a trusted proxy, say); False for anything else."""
    address = ip_address_of(text)
    return address is not None and any(address in network for network in networks)


class BodyTooLarge(HTTPException):
    """A request body past its limit: 413, before more of it is read."""

    def __init__(self, limit: int):
        super().__init__(413, f"body larger than {limit} bytes")


class BodyReader:
    """A request's body read in stages (a head to authenticate on, say, then the rest), in chunks:
    BodyTooLarge as soon as it passes `limit` bytes, or at once when its Content-Length says it would."""

    def __init__(self, request: Request, limit: int):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(limit)
        self._chunks, self.limit = request.stream().__aiter__(), limit
        self.data, self.ended = bytearray(), False

    async def read_to(self, size: int) -> None:
        """Read until `size` bytes are held or the body ends."""
        while not self.ended and len(self.data) < size:
            try:
                self.data += await anext(self._chunks)
            except StopAsyncIteration:
                self.ended = True
            if len(self.data) > self.limit:
                raise BodyTooLarge(self.limit)

    async def read_all(self) -> bytes:
        await self.read_to(self.limit + 1)
        return bytes(self.data)


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, never more than `limit` bytes of it held (BodyReader). Read it only once the
    caller is authenticated."""
    return await BodyReader(request, limit).read_all()


def serve(service: str, app: Callable[[], FastAPI], settings: ServiceSettings, port: int) -> None:
    """Run a service in the foreground, as `python -m services.<name>` does."""
    configure_logging(service, settings.log_level, settings.log_format)
    use_list(settings.communes_file)
    application = app()
    tune_collector(settings.gc_young_threshold)
    uvicorn.run(application, host=settings.bind_host, port=port, log_config=None, access_log=False)


def tune_collector(young: int) -> None:
    """The cyclic garbage collector as a service that parses thousands of records a second wants it.

    With Python's default (a young collection every 700 container objects), every batch of parsed records
    pushes its objects, alive while the batch is handled, into the old generations, and old collections run
    over and over across everything the service holds: at half the metrics consumer's CPU and a fifth of
    processing's (docs/benchmarks.md, "CPU per event"). A young generation of `young` objects (a batch or
    two) lets a batch's records die young. Reference counting frees everything else as before; only
    reference cycles wait for the collector. What exists at start (modules, the app) is frozen out of its
    reach: it lives as long as the process."""
    gc.set_threshold(young, 10, 10)
    gc.freeze()
