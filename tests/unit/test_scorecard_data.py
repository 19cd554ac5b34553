"""The demo's made-up v1.2 facts and feedback (bench/scorecard_data.py): valid events that move no article
figure, ordered as the ranking the articles quote needs."""

from dataclasses import replace

from bench.generate import PROVINCE, SEEDS, histories, leaders
from bench.scorecard_data import BA_THUOC, enriched, feedback, shares_of
from shared.calendar import WorkingCalendar
from shared.communes import communes_of_province
from shared.dossier import fold
from shared.events import _feedback_adapter, parse_event

CAL = WorkingCalendar.load()
COMMUNE = "14797"  # a Thanh Hóa commune of the demo's province


def test_the_v12_facts_move_no_state_due_or_timeliness():
    lives = histories([COMMUNE])[COMMUNE]
    added = 0
    for events in lives[:300]:
        plain, rich = (fold([parse_event(e) for e in evs], CAL) for evs in (events, enriched(events)))
        assert not rich.rejected
        facts = [replace(f, result_issued=False, result_sent_to_personal_store=False, payment_gateway=None)
                 for f in rich.timeline]
        assert facts == list(plain.timeline)  # the same life, the v1.2 facts aside
        added += any(e["type"] == "dossier.result_issued" for e in enriched(events))
    assert added > 0


def test_the_feedback_events_are_valid_with_unique_ids_and_name_the_communes_dossiers():
    codes = [events[0]["subject"] for events in histories([COMMUNE])[COMMUNE]]
    period = SEEDS[BA_THUOC]
    events = feedback(COMMUNE, period.start, period.end, codes)
    parsed = [_feedback_adapter.validate_python(e) for e in events]
    assert len({e.id for e in parsed}) == len(parsed) and {e.source for e in parsed} == {"urn:motcua:38"}
    received = [e for e in parsed if e.type == "feedback.received"]
    assert len(received) == max(2, len(codes) // 150)
    assert all(e.data.dossier_code in codes for e in received if e.data.dossier_code)
    assert feedback(COMMUNE, period.start, period.end, codes) == events  # the same for the same seed


def test_the_leaders_shares_are_above_ba_thuocs_and_ba_thuocs_above_the_others():
    top = leaders()
    others = [c.code for c in communes_of_province(PROVINCE) if c.code not in top and c.code != BA_THUOC]
    ours = shares_of(BA_THUOC)
    for field in ("reused", "personal_store", "feedback_on_time", "feedback_liked"):
        assert min(getattr(shares_of(c), field) for c in top) >= getattr(ours, field), field
        assert max(getattr(shares_of(c), field) for c in others) <= getattr(ours, field), field
