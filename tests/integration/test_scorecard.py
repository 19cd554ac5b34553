"""The QĐ 766 scorecard through the running services: a signed result moves the electronic-result
points; the points at risk and where dossiers wait, from the report API."""

from datetime import UTC, datetime, timedelta

import httpx

from tests.fixtures.pki import blank_pdf, sign
from tests.fixtures.sample import VN, dossier_code, event
from tests.integration.conftest import OPERATOR, service, wait_until
from tests.integration.test_metrics import FAST, sub_indicator
from tests.integration.test_signature import AUTH, OFFICIAL, caught_up, start_signature

START = datetime(2026, 3, 2, 9, 0, tzinfo=VN)  # a Monday
PERIOD = {"from": "2026-03-02", "to": "2026-03-02"}


def test_a_signed_result_moves_the_electronic_result_points_and_the_at_risk_reading_names_the_dossiers(
        pipeline, tmp_path):
    pipeline.add_processing().start()
    metrics = service("metrics", pipeline.settings, **FAST).start()
    signature = start_signature(pipeline, tmp_path)
    try:
        done, waiting = dossier_code(START, sequence=801), dossier_code(START, sequence=802)
        pipeline.post([
            event("dossier.received", done, START, processing_time={"value": 1, "unit": "working_days"}),
            event("dossier.resolved", done, START + timedelta(hours=3)),
            event("dossier.received", waiting, START, processing_time={"value": 1, "unit": "working_days"}),
            event("dossier.transferred", waiting, START + timedelta(hours=1), from_unit="Một cửa", to_unit="Tư pháp"),
        ])

        def card() -> dict:
            rows = httpx.get(f"{metrics.url}/v1/reports/provinces/38/scorecard", params=PERIOD,
                             headers=OPERATOR).json()["communes"]
            return next(r for r in rows if r["commune_code"] == "14923")

        before = wait_until(lambda: (c := card())["received"] == 2 and c, message="both dossiers counted")
        assert (sub_indicator(before, "electronic_result")["ratio"], sub_indicator(before, "electronic_result")["points"]) \
            == (0.0, 0.0)
        # A verdict counts in the commune of the receipt the signature service has seen (figures.verdict_of):
        # sent before it read the receipt, it counted nowhere and the test failed (fresh-clone CI, 2026-12-05).
        wait_until(lambda: caught_up(pipeline.settings, "signature", pipeline.settings.topic_events), timeout=60,
                   message="the receipts read by the signature service")
        answer = httpx.post(f"{signature.url}/v1/dossiers/{done}/documents/KQ-1", content=sign(blank_pdf(), OFFICIAL),
                            headers=AUTH | {"content-type": "application/pdf"})
        assert answer.status_code == 200 and answer.json()["verdict"] == "valid"
        after = wait_until(lambda: (c := card()) and sub_indicator(c, "electronic_result")["points"] == 6.0 and c,
                           timeout=90, message="the valid signature counted")
        assert after["score"] > before["score"]
        # Both arrived through intake just now, their times in March: out of sync (the proxy's 15 minutes).
        sync = sub_indicator(after, "dossier_sync")
        assert (sync["numerator"], sync["denominator"], sync["ratio"]) == (0, 2, 0.0)

        # As of Monday 17:00, the waiting one is due Tuesday 09:00: by Tuesday's end it would turn late.
        risk = httpx.get(f"{metrics.url}/v1/reports/communes/14923/at-risk",
                         params={"from": "2026-03-02", "to": "2026-03-03", "as_of": "2026-03-02T17:00:00+07:00"},
                         headers=OPERATOR).json()
        assert risk["horizon"].startswith("2026-03-03T23:59:59")
        assert [d["dossier_code"] for d in risk["dossiers"]] == [waiting]
        assert risk["dossiers"][0]["hours_left"] == 1.0 and risk["points_at_risk"] > 0
        assert risk["score_if_all_in_time"] >= risk["score"] >= risk["score_if_due_turn_late"]
        early = httpx.get(f"{metrics.url}/v1/reports/communes/14923/at-risk",
                          params={"from": "2026-03-02", "to": "2026-03-03", "as_of": "2026-03-02T17:00:00+07:00",
                                  "horizon": "2026-03-02T18:00:00+07:00"}, headers=OPERATOR).json()
        assert early["dossiers"] == [] and early["points_at_risk"] == 0

        units = httpx.get(f"{metrics.url}/v1/reports/communes/14923/units",
                          params=PERIOD | {"as_of": "2026-03-02T17:00:00+07:00"}, headers=OPERATOR).json()["units"]
        held = {u["unit"]: u for u in units}
        assert held["Tư pháp"]["open"] == {"due_soon": 1} and held["Tư pháp"]["working_hours_held"] == 6.0
        gauge = wait_until(lambda: [line for line in httpx.get(f"{metrics.url}/metrics").text.splitlines()
                                    if line.startswith('dossier_points_at_risk{commune="14923"}')],
                           message="the points-at-risk gauge")
        assert gauge
    finally:
        metrics.stop()
        signature.stop()
