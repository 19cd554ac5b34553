"""The official commune list changes (units merge and split): processing restarted with a list that no
longer has a commune still applies the steps of that commune's dossiers received before, and dead-letters
a new receipt there (issue 22, item 2)."""

import asyncio
import json
from datetime import datetime
from pathlib import Path

import httpx

from shared.communes import communes
from shared.contracts import DeadLetter, dead_letter_topic
from tests.fixtures.sample import VN, dossier_code, event
from tests.integration.conftest import OPERATOR, read_topic, wait_until
from tests.integration.test_processing import wait_for_states

COMMUNE = "14923"  # Xã Bá Thước (38), the sample receipt's commune
START = datetime(2025, 7, 7, 9, 0, tzinfo=VN)


def test_a_commune_left_off_the_list_keeps_its_old_dossiers_and_refuses_new_ones(pipeline, tmp_path: Path):
    old, new = dossier_code(START, sequence=3901), dossier_code(START, sequence=3902)
    received = event("dossier.received", old, START, commune_code=COMMUNE)
    processing = pipeline.add_processing().start()
    pipeline.post([received])
    wait_for_states(processing, {old: [received]})
    processing.stop()

    shorter = tmp_path / "communes.json"
    shorter.write_text(json.dumps([vars(c) for code, c in communes().items() if code != COMMUNE]))
    processing = pipeline.add_processing(DOSSIER_COMMUNES_FILE=str(shorter)).start()
    step = event("dossier.digitized", old, START.replace(minute=10))
    pipeline.post([step, event("dossier.received", new, START, commune_code=COMMUNE)])
    # The stored receipt is not checked again, and the province's operators still read the dossier.
    wait_for_states(processing, {old: [received, step]})

    def refused() -> list:
        dead = asyncio.run(read_topic(pipeline.settings, dead_letter_topic(pipeline.settings.topic_events,
                                                                           "processing")))
        return [DeadLetter.from_headers(r.headers).reason for r in dead if new.encode() in r.value]

    [reason] = wait_until(refused, timeout=30, message="the new receipt dead-lettered")
    assert f"{COMMUNE} is not a commune-level unit" in reason
    assert httpx.get(f"{processing.url}/v1/dossiers/{new}", headers=OPERATOR).status_code == 404
