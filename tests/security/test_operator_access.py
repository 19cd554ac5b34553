"""Finding 7: the report API and the operators' page answered anyone, and listed dossier codes; nobody
knew who read a citizen's name. Now they take operators' keys scoped to provinces (optionally
communes), the page a login (a session cookie) or a trusted proxy's user, and processing writes every
operator's read of personal data to an audit log (docs/security.md). The metrics service is built in
process: what is refused is refused before any figure is read."""

import asyncio
import ipaddress
from datetime import datetime, timedelta

import httpx
import pytest
from pymongo import MongoClient

from services.metrics.access import SESSION_COOKIE, SESSION_SECONDS, Access
from services.metrics.app import create_app
from services.metrics.settings import MetricsSettings
from shared.auth import ApiKey, ApiKeys, key_hash
from tests.fixtures.sample import VN, dossier_code, event
from tests.integration.conftest import OPERATOR, wait_until

KEYS = [ApiKey(name="thanh-hoa", key_sha256=key_hash("key-38"), sources=["*"], provinces=["38"]),
        ApiKey(name="ba-thuoc", key_sha256=key_hash("key-14923"), sources=["*"], provinces=["38"],
               communes=["14923"])]
PERIOD = {"from": "2025-07-01", "to": "2025-07-31"}


def metrics_app(cookies: dict[str, str] | None = None, **values) -> httpx.AsyncClient:
    settings = MetricsSettings(environment="local", kafka_bootstrap_servers="127.0.0.1:9", mongo_url="mongodb://127.0.0.1:9",
                               metrics_operator_keys=KEYS, metrics_session_secret="session-key-for-tests", **values)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings), client=("203.0.113.7", 5000)),
                             base_url="http://metrics", cookies=cookies)


def call(method: str, path: str, app_values: dict | None = None, cookies: dict[str, str] | None = None,
         **kwargs) -> httpx.Response:
    async def run() -> httpx.Response:
        async with metrics_app(cookies, **(app_values or {})) as client:
            return await client.request(method, path, **kwargs)
    return asyncio.run(run())


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", ["/v1/reports/communes/14923", "/v1/reports/communes/14923/at-risk",
                                  "/v1/reports/communes/14923/units", "/v1/reports/provinces/38/scorecard"])
def test_the_report_api_answers_no_one_without_an_operators_key(path):
    for headers in ({}, bearer("wrong"), {"authorization": "key-38"}):
        answer = call("GET", path, params=PERIOD, headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer", (path, headers)


@pytest.mark.parametrize("key, path", [
    ("key-38", "/v1/reports/communes/08152"),  # Thanh Ba, Phú Thọ: another province
    ("key-38", "/v1/reports/provinces/25/scorecard"),
    ("key-14923", "/v1/reports/communes/14797/at-risk"),  # a commune of its province it was not given
    ("key-14923", "/v1/reports/communes/08152/units"),
])
def test_a_key_reads_only_its_provinces_and_communes(key, path):
    assert call("GET", path, params=PERIOD, headers=bearer(key)).status_code == 403


@pytest.mark.parametrize("path", ["/", "/xep-hang?tinh=38", "/bao-cao?ma=14923", "/nguy-co?ma=14923", "/don-vi?ma=14923"])
def test_the_page_sends_anyone_not_signed_in_to_the_sign_in_form(path):
    answer = call("GET", path)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/dang-nhap?tiep=")


def sign_in(key: str, next_path: str = "/") -> httpx.Response:
    return call("POST", "/dang-nhap", content=f"khoa={key}&tiep={next_path}",
                headers={"content-type": "application/x-www-form-urlencoded"})


def test_signing_in_with_a_key_gives_an_http_only_strict_session_and_a_wrong_key_nothing():
    assert sign_in("wrong").status_code == 401 and "set-cookie" not in sign_in("wrong").headers
    answer = sign_in("key-38", "/xep-hang?tinh=38")
    assert answer.status_code == 303 and answer.headers["location"] == "/xep-hang?tinh=38"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    session = answer.cookies[SESSION_COOKIE]
    assert call("GET", "/", cookies={SESSION_COOKIE: session}).status_code == 200
    # The session reads what its key may: another province's report is refused.
    assert call("GET", "/v1/reports/communes/08152", params=PERIOD, cookies={SESSION_COOKIE: session}).status_code == 403


@pytest.mark.parametrize("next_path", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_signing_in_never_sends_the_operator_to_another_site(next_path):
    assert sign_in("key-38", next_path).headers["location"] == "/"


def test_a_forged_tampered_or_expired_session_is_no_session():
    real = Access(ApiKeys(KEYS), "session-key-for-tests", []).login("key-38")
    claim = real.partition(".")[0]
    expired = Access(ApiKeys(KEYS), "session-key-for-tests", [],
                     clock=lambda: (datetime.now(VN) - timedelta(seconds=SESSION_SECONDS + 60)).timestamp()).login("key-38")
    forged = [Access(ApiKeys(KEYS), "another-secret", []).login("key-38"), f"{claim}.{'0' * 64}", claim, "x.y", "",
              expired]
    assert call("GET", "/", cookies={SESSION_COOKIE: real}).status_code == 200
    for cookie in forged:
        assert call("GET", "/", cookies={SESSION_COOKIE: cookie}).status_code == 303, cookie


def test_a_proxys_user_is_believed_only_from_a_trusted_proxy():
    user = {"x-auth-request-user": "nguyen.van.a@thanhhoa.gov.vn"}
    assert call("GET", "/", headers=user).status_code == 303  # from 203.0.113.7, not a trusted proxy
    trusted = {"metrics_trusted_proxies": [ipaddress.ip_network("203.0.113.0/24")]}
    assert call("GET", "/", app_values=trusted, headers=user).status_code == 200
    assert call("GET", "/", app_values=trusted).status_code == 303  # the proxy named no user


def test_every_operator_read_of_a_dossiers_personal_data_is_in_the_audit_log(pipeline):
    processing = pipeline.add_processing().start()
    code = dossier_code(datetime(2025, 7, 7, tzinfo=VN), sequence=4343)
    pipeline.post([event("dossier.received", code, datetime(2025, 7, 7, 9, tzinfo=VN))])
    wait_until(lambda: httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 200,
               message="the dossier processed")
    assert httpx.get(f"{processing.url}/v1/dossiers/{code}", headers=OPERATOR).json()["applicant"]["name"]
    with MongoClient(pipeline.settings.mongo_url) as client:
        reads = list(client[pipeline.settings.mongo_database]["audit_log"].find({"dossier": code}))
    assert len(reads) >= 2 and {r["operator"] for r in reads} == {"any"}
    assert all(set(r) == {"_id", "operator", "dossier", "read", "at"} for r in reads)  # no personal data in it
    assert all("Nguyễn" not in str(r) and "0912" not in str(r) for r in reads)


def test_the_urgent_dossiers_codes_are_served_to_prometheus_scrape_token_only():
    token = {"metrics_scrape_token": "scrape-token-for-tests"}
    for headers in ({}, bearer("wrong"), bearer("key-38"), {"authorization": "scrape-token-for-tests"}):
        assert call("GET", "/metrics/dossiers", app_values=token, headers=headers).status_code == 401, headers
    assert call("GET", "/metrics/dossiers", headers=bearer("")).status_code == 401  # no token configured: no one
    answer = call("GET", "/metrics/dossiers", app_values=token, headers=bearer("scrape-token-for-tests"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
