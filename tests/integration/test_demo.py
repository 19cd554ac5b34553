"""The demo's reproduction at a reduced size: Thanh Ba's history through the real pipeline gives the
article's figures, and posting it all again changes none of them."""

import httpx

from bench.articles import CLAIMS, period
from bench.generate import SEEDS, commune_histories
from tests.integration.conftest import OPERATOR, service, wait_until
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
