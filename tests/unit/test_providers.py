"""What the SMS gateways' answers mean to the providers (services/notifications/providers.py), over real HTTP
to a local gateway that answers as told: taken, refused for now (tried again), refused for good."""

import asyncio
import socket
from datetime import datetime
from typing import Any

import pytest

from services.notifications.messages import Body, Message
from services.notifications.providers import Provider, ProviderError, provider
from services.notifications.settings import NotificationsSettings
from tests.fixtures.gateway import recording_gateway
from tests.fixtures.sample import VN

AT = datetime(2026, 3, 2, 12, tzinfo=VN)
MESSAGE = Message("a" * 32, "step", "000.00.38.H56-250701-0001", "14923", "received", AT, AT, "kannel")
BODY = Body(MESSAGE.id, "+84912345678", "Hồ sơ 000.00.38.H56-250701-0001 đã được tiếp nhận. Tra cứu: a&b=c", AT)


def provider_at(name: str, url: str, **values: Any) -> Provider:
    """The provider `name` of the local settings (and these), its gateway at `url`."""
    return provider(NotificationsSettings(environment="local", notifications_provider=name,
                                          notifications_kannel_url=url, notifications_http_url=url, **values))


def send(name: str, status: int, answer: Any = None) -> tuple[str | None, list]:
    """The provider's send to a gateway answering `status` (and `answer`): what it returned, what it asked."""
    async def go() -> tuple[str | None, list]:
        async with recording_gateway(status, answer) as gateway:
            sender = provider_at(name, gateway.url)
            try:
                return await sender.send(MESSAGE, BODY, "UBND-XA"), gateway.asked
            finally:
                await sender.close()

    return asyncio.run(go())


@pytest.mark.parametrize("name", ["kannel", "http"])
@pytest.mark.parametrize("status, permanent", [(404, True), (422, True), (401, False), (503, False)])
def test_a_refusal_is_permanent_only_for_the_message_itself(name, status, permanent):
    """As `refused` tells them apart (tests/unit/test_sms.py), over HTTP."""
    with pytest.raises(ProviderError) as refused:
        send(name, status, {"error": "no"})
    assert refused.value.permanent is permanent
    assert str(status) in str(refused.value)


@pytest.mark.parametrize("name", ["kannel", "http"])
def test_a_gateway_away_is_tried_again(name):
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/"

    async def go() -> None:
        sender = provider_at(name, url)
        try:
            await sender.send(MESSAGE, BODY, "UBND-XA")
        finally:
            await sender.close()

    with pytest.raises(ProviderError) as away:
        asyncio.run(go())
    assert not away.value.permanent and "unreachable" in str(away.value)


@pytest.mark.parametrize("name", ["kannel", "http"])
def test_a_gateways_redirect_is_not_followed(name):
    """Followed, it would take the message, and Kannel's password in its URL, wherever the answer says: it is
    refused for now instead, as httpx refused it."""
    async def go() -> tuple[ProviderError, list]:
        async with recording_gateway(202) as elsewhere:
            async with recording_gateway(302, headers={"Location": f"{elsewhere.url}/taken"}) as gateway:
                sender = provider_at(name, gateway.url)
                try:
                    with pytest.raises(ProviderError) as refused:
                        await sender.send(MESSAGE, BODY, "UBND-XA")
                finally:
                    await sender.close()
                return refused.value, elsewhere.asked

    refused, asked = asyncio.run(go())
    assert asked == [] and "302" in str(refused) and not refused.permanent


@pytest.mark.parametrize("name", ["kannel", "http"])
@pytest.mark.parametrize("answer", [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", b""])
def test_a_gateway_answering_no_http_gets_an_error_that_tells_no_secret(name, answer):
    """aiohttp's errors hold the request's URL and headers: the message's error (stored, logged, shown by
    /v1/messages) names the error's kind, without Kannel's password, the number or the aggregator's token."""
    async def go() -> ProviderError:
        async def answer_so(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer_so, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/cgi-bin/sendsms"
        sender = provider_at(name, url, notifications_kannel_password="kannel-secret-password",
                             notifications_http_auth_header="Authorization: Bearer aggregator-secret-token")
        try:
            with pytest.raises(ProviderError) as refused:
                await sender.send(MESSAGE, BODY, "UBND-XA")
            return refused.value
        finally:
            await sender.close()
            server.close()

    said = str(asyncio.run(go()))
    assert "unreachable" in said
    for secret in ("kannel-secret-password", "aggregator-secret-token", "84912345678", "912345678", "127.0.0.1"):
        assert secret not in said


def test_kannel_gets_the_number_text_and_report_url_whole():
    """`+`, `&`, `=` and `%d` in the values arrive as written: a `+` read as a space would change the number."""
    returned, [asked] = send("kannel", 202)
    assert returned is None
    assert asked.query["to"] == "+84912345678" and asked.query["text"] == BODY.text
    assert asked.query["from"] == "UBND-XA" and asked.query["coding"] == "0"
    assert asked.query["dlr-url"].endswith("&type=%d") and f"id={MESSAGE.id}&" in asked.query["dlr-url"]


@pytest.mark.parametrize("answer, returned", [({"id": "agg-1"}, "agg-1"), ({"id": 7}, "7"), ({"id": ""}, None),
                                              ({}, None), (["agg-1"], None), ("agg-1", None),
                                              (None, None)])
def test_the_aggregators_id_is_read_from_its_json_answer(answer, returned):  # None: an empty body
    assert send("http", 200, answer)[0] == returned
