"""The dossier.status_changed event: what processing writes, the metrics service reads back."""

from datetime import timedelta

from tests.unit.test_dossier import CAL, LIFE, at
from shared.dossier import fold
from shared.status import METRICS_SOURCE, PROCESSING_SOURCE, clock_event, processing_event, status_of, \
    timeline_from_json


def test_the_timeline_read_back_is_the_one_written():
    folded = fold(LIFE, CAL)
    event = processing_event(folded.dossier, None, status_of(folded.dossier, CAL), folded.timeline, len(LIFE))
    assert event["source"] == PROCESSING_SOURCE and event["data"]["events"] == len(LIFE)
    assert timeline_from_json(event["data"], CAL) == folded.timeline


def test_the_same_change_has_the_same_id_and_another_change_another():
    folded = fold(LIFE, CAL)
    status = status_of(folded.dossier, CAL)
    first = processing_event(folded.dossier, None, status, folded.timeline, len(LIFE))
    assert first["id"] == processing_event(folded.dossier, None, status, folded.timeline, len(LIFE))["id"]
    assert first["id"] != processing_event(folded.dossier, None, status, folded.timeline[:-1], len(LIFE))["id"]


def test_a_clock_event_says_where_the_dossier_moved_and_carries_no_personal_data():
    status = {"state": "processing", "due_at": "2025-07-08T10:00:00+07:00", "timeliness": None,
              "appointment_at": "2025-07-08T10:00:00+07:00", "open_state": "within_deadline"}
    info = {"commune_code": "14923", "sector": "HT", "procedure_code": "1.001193", "channel": "direct",
            "online_level": None, "received_at": "2025-07-07T10:00:00+07:00"}
    moved = clock_event("X", info, status, at("2025-07-07 10:00"), "due_soon", events=3)
    again = clock_event("X", info, status, at("2025-07-07 10:00") + timedelta(minutes=5), "due_soon", events=4)
    assert moved["source"] == METRICS_SOURCE and moved["id"] == again["id"]  # one change, one id
    assert (moved["data"]["old"]["open_state"], moved["data"]["new"]["open_state"]) == ("within_deadline", "due_soon")
    assert moved["data"]["cause"] == {"id": None, "type": "clock"}
    assert "applicant" not in moved["data"] and "timeline" not in moved["data"]
