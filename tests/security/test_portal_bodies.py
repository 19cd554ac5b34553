"""Issue 23, finding 11 (review of 2026-12-04): the portal format's route (`POST /v1/dvcqg`) read a whole
body, up to 64 MiB, and decoded it before it knew who sent it (the format carries its session in the
body). Now a Bearer key is checked before anything is read; a body that carries a session is read as far as
its head (64 KiB) and authenticated on the session found there before the rest is read or anything decoded;
a body whose head names no session (a client that writes it last) is read whole by at most
`intake_dvcqg_late_sessions` requests at once, the others answered 503 unread (docs/security.md).

In-process: intake on httpx's ASGI transport (no lifespan: no Kafka), a body that hands out its bytes as
they are asked for and says how many were.
"""

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from pydantic import SecretStr

import services.intake.app as intake_app
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.auth import ApiKey, PortalAccount, key_hash, password_hash
from tests.security.test_intake_limits import Recorder

KEY = "portal-bodies-test-key"
PASSWORD = "Mật-khẩu-38"
ACCOUNT = PortalAccount(name="thanh-hoa", username="motcua38", password_hash=password_hash(PASSWORD, iterations=1000),
                        source="urn:motcua:38", provinces=["38"])
CHUNK = 64 * 1024
HEAD = 64 * 1024  # what is read of a body before its session is found
HUGE = 32 * 1024 * 1024  # within the route's 64 MiB, far past what an unknown caller may make it read
JSON = {"content-type": "application/json"}
UNKNOWN_SERVICE = {"service": "KhongCo", "data": []}


def past_authentication(answer: httpx.Response) -> bool:
    """The request was authenticated: what it is refused for is its unknown service."""
    return answer.status_code == 400 and "service" in answer.json()["message"]


class Drip:
    """A request body of `total` bytes after `head`, handed out a chunk at a time; it waits for `go` (when
    given) before its second chunk."""

    def __init__(self, total: int, head: bytes = b"", go: asyncio.Event | None = None):
        self.total, self.head, self.go, self.read = total, head, go, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read += len(self.head)
        yield self.head
        if self.go is not None:
            await self.go.wait()
        while self.read < self.total:
            chunk = b" " * min(CHUNK, self.total - self.read)
            self.read += len(chunk)
            yield chunk


class Intake:
    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(intake_app, "EventPublisher", Recorder)
        key = ApiKey(name="any", key_sha256=key_hash(KEY), sources=["*"])
        self.app = create_app(IntakeSettings(environment="local", intake_api_keys=[key],
                                             intake_dvcqg_accounts=[ACCOUNT],
                                             intake_dvcqg_session_secret=SecretStr("s" * 32)))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://intake")

    async def session(self) -> str:
        answer = await self.client.post("/v1/dvcqg/login", json={"username": ACCOUNT.username, "password": PASSWORD})
        return answer.json()["session"]

    async def post(self, body: Drip | bytes, **headers: str) -> httpx.Response:
        return await self.client.post("/v1/dvcqg", content=body, headers=JSON | headers)


@pytest.fixture
def intake(monkeypatch) -> Intake:
    return Intake(monkeypatch)


@pytest.mark.parametrize("authorization", ["Bearer wrong", "Basic " + KEY, "Bearer"])
async def test_an_unknown_key_is_refused_before_the_body_is_read(intake, authorization):
    body = Drip(HUGE, head=b'{"service": "DongBoHoSoMC", "data": [')
    answer = await intake.post(body, authorization=authorization)
    assert answer.status_code == 401
    assert body.read <= CHUNK


@pytest.mark.parametrize("session", ["forged.c2lnbmF0dXJl", "eyJ4IjoxfQ.AAAA", "a" * 900 + ".b"])
async def test_a_forged_session_in_the_head_is_refused_without_reading_further(intake, session):
    body = Drip(HUGE, head=orjson.dumps({"session": session})[:-1] + b', "service": "DongBoHoSoMC", "data": [')
    answer = await intake.post(body)
    assert answer.status_code == 401 and answer.json()["error_code"] == "-1"
    assert body.read <= HEAD + CHUNK


async def test_a_session_found_in_the_head_must_be_the_bodys_own(intake):
    """A valid session quoted inside a record does not stand for a body whose own session is forged."""
    valid = await intake.session()
    body = orjson.dumps({"data": [{"session": valid}], "service": "DongBoHoSoMC", "session": "forged.AAAA"})
    answer = await intake.post(body)
    assert answer.status_code == 401


async def test_a_valid_session_first_or_last_is_authenticated(intake):
    valid = await intake.session()
    first = await intake.post(orjson.dumps({"session": valid} | UNKNOWN_SERVICE))
    padding = "x" * (2 * HEAD)  # the session past the head
    last = await intake.post(orjson.dumps(UNKNOWN_SERVICE | {"madonvi": padding, "session": valid}))
    assert past_authentication(first) and past_authentication(last)


async def test_bodies_naming_no_session_in_their_head_are_read_by_two_at_once_the_others_refused_unread(intake):
    go = asyncio.Event()
    held = [Drip(HEAD + 4 * CHUNK, head=b'{"data": [' + b" " * HEAD, go=go) for _ in range(2)]
    pending = [asyncio.create_task(intake.post(body)) for body in held]
    await asyncio.sleep(0.2)  # both are reading their bodies, waiting for their bytes
    assert not any(p.done() for p in pending)
    third = Drip(HUGE, head=b'{"data": [' + b" " * HEAD)
    answer = await intake.post(third)
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert third.read <= HEAD + 2 * CHUNK
    keyed = await intake.post(orjson.dumps(UNKNOWN_SERVICE), authorization=f"Bearer {KEY}")
    assert past_authentication(keyed)  # a key's request never waits on them
    go.set()
    assert [p.status_code for p in await asyncio.gather(*pending)] == [401, 401]
    valid = await intake.session()
    after = await intake.post(orjson.dumps(UNKNOWN_SERVICE | {"x": "y" * 2 * HEAD, "session": valid}))
    assert past_authentication(after)  # the slots were given back
