"""The demo's reproduction at a reduced size: Thanh Ba's history through the real pipeline gives the
article's figures, and posting it all again changes none of them; and so does the same history synced
in the national portal's format, as `make demo` sends it (bench/portal.py)."""

import json

import httpx
import orjson

from bench.articles import CLAIMS, period
from bench.generate import SEEDS, commune_histories, receiving_unit
from bench.portal import ACCOUNT, portal_dossier
from shared.auth import password_hash
from tests.integration.conftest import OPERATOR, Pipeline, namespace, service, wait_until
from tests.integration.test_metrics import FAST

THANH_BA = "08152"


def duplicates(processing) -> float:
    text = httpx.get(f"{processing.url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('processing_events_total{outcome="duplicate"}'))


def test_thanh_ba_through_the_pipeline_reproduces_its_article(pipeline):
    pipeline.add_processing().start()
    metrics = service("metrics", pipeline.settings, **FAST).start()
    try:
        events = [e for history in commune_histories(SEEDS[THANH_BA]) for e in history]
        claims = [c for c in CLAIMS if c.commune_code == THANH_BA]

        def report() -> dict:
            answer = httpx.get(f"{metrics.url}/v1/reports/communes/{THANH_BA}", params=period(SEEDS[THANH_BA]),
                               headers=OPERATOR)
            assert answer.status_code == 200, answer.text
            return answer.json()

        for attempt in range(2):  # the second time, every event is a duplicate
            pipeline.post(events, batch=500)
            figures = wait_until(lambda: (r := report())["received"] == SEEDS[THANH_BA].received and r,
                                 timeout=120, message="Thanh Ba counted")
            for claim in claims:
                assert claim.holds(claim.value(figures)), (attempt, claim.figure, claim.value(figures))
            if attempt == 0:
                first = figures
        processing = pipeline.processing[0]
        wait_until(lambda: duplicates(processing) >= len(events), timeout=120, message="the repeat consumed")
        assert report() == first
    finally:
        metrics.stop()


def test_thanh_ba_synced_in_the_portals_format_reproduces_its_article(stack):
    password = "Thanh-Ba-2025!"
    settings = namespace(stack)
    intake = service("intake", settings, DOSSIER_INTAKE_DVCQG_ACCOUNTS=json.dumps(
        [ACCOUNT | {"password_hash": password_hash(password)}])).start()
    pipeline = Pipeline(settings, intake, [])
    pipeline.add_processing().start()
    metrics = service("metrics", settings, **FAST).start()
    try:
        unit = receiving_unit(THANH_BA)
        dossiers = [portal_dossier(history, unit) for history in commune_histories(SEEDS[THANH_BA])]
        session = httpx.post(f"{intake.url}/v1/dvcqg/login", json={"username": ACCOUNT["username"],
                                                                    "password": password}, timeout=30).json()["session"]
        for name, records in (("DongBoHoSoMC", [r for d in dossiers for r in d.snapshots]),
                              ("CapNhatTienDoHoSoMC", [r for d in dossiers for r in d.progress])):
            for i in range(0, len(records), 2000):
                body = {"session": session, "madonvi": unit, "service": name, "data": records[i:i + 2000]}
                answer = httpx.post(f"{intake.url}/v1/dvcqg", content=orjson.dumps(body), timeout=120,
                                    headers={"content-type": "application/json"})
                assert answer.status_code == 200 and answer.json()["error_code"] == "00", answer.text[:500]
        pipeline.post([e for d in dossiers for e in d.beside], batch=500)  # the ratings, beside the format

        def report() -> dict:
            answer = httpx.get(f"{metrics.url}/v1/reports/communes/{THANH_BA}", params=period(SEEDS[THANH_BA]),
                               headers=OPERATOR)
            assert answer.status_code == 200, answer.text
            return answer.json()

        figures = wait_until(lambda: (r := report())["received"] == SEEDS[THANH_BA].received and r
                             and r["ratings"] == SEEDS[THANH_BA].ratings and r,
                             timeout=180, message="Thanh Ba counted")
        for claim in (c for c in CLAIMS if c.commune_code == THANH_BA):
            assert claim.holds(claim.value(figures)), (claim.figure, claim.value(figures))
        assert figures["payments"]["online"] == SEEDS[THANH_BA].payments_online
        assert figures["payments"]["offline"] == 0  # a payment at the desk is not in the format
    finally:
        for process in (metrics, intake, *pipeline.processing):
            process.stop()
