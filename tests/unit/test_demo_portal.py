"""The demo's Phú Thọ communes in the national portal's format (bench/portal.py): the records a history
becomes, mapped back by intake's own mapping (shared/dvcqg.py) and folded, give the articles' figures, and
each dossier the facts its CloudEvents give, but for what docs/demo.md says the format cannot carry."""

from collections import Counter
from datetime import datetime

import pytest

from bench.articles import CLAIMS
from bench.generate import CAL, SEEDS, commune_histories, receiving_unit
from bench.portal import ACCOUNT, portal_dossier
from shared.catalogue import load_catalogue
from shared.dossier import fold
from shared.dvcqg import Batch, Reference, record_events
from shared.events import parse_event
from shared.report import commune_report
from shared.units import load_units
from tests.fixtures.sample import VN

REF = Reference(load_units(), load_catalogue(), CAL)
ARRIVED = datetime(2026, 12, 1, 9, 0, tzinfo=VN)  # the replay reaches intake long after the articles


def portal_events(history: list[dict], commune_code: str) -> tuple[list, Counter]:
    """What intake makes of the dossier's portal records, with the ratings sent beside them."""
    unit = receiving_unit(commune_code)
    batch = Batch(ACCOUNT["source"], unit, ARRIVED)
    dossier = portal_dossier(history, unit)
    events = [e for r in dossier.snapshots for _, e in record_events("DongBoHoSoMC", r, batch, REF)]
    events += [e for r in dossier.progress for _, e in record_events("CapNhatTienDoHoSoMC", r, batch, REF)]
    return events + [parse_event(e) for e in dossier.beside], Counter(dossier.left_out)


@pytest.mark.parametrize("commune_code", ["08152", "09076"])
def test_the_portal_records_give_the_articles_figures_and_each_dossiers_facts(commune_code):
    profile = SEEDS[commune_code]
    portal, differ, left_out = [], Counter(), Counter()
    for history in commune_histories(profile):
        events, lost = portal_events(history, commune_code)
        left_out += lost
        folded = fold(events, CAL, as_of=profile.as_of)
        assert folded.rejected == (), history[0]["subject"]
        ours, theirs = folded.dossier, fold([parse_event(e) for e in history], CAL, as_of=profile.as_of).dossier
        portal.append(ours)
        assert (ours.received.channel, ours.received.online_level, ours.state, ours.digitized, ours.rating,
                ours.unit, ours.open_state(profile.as_of, CAL)) == (
            theirs.received.channel, theirs.received.online_level, theirs.state, theirs.digitized, theirs.rating,
            theirs.unit, theirs.open_state(profile.as_of, CAL)), history[0]["subject"]
        assert ours.step_due_at == theirs.step_due_at
        differ.update(name for name in ("timeliness", "payment_method") if getattr(ours, name) != getattr(theirs, name))
    figures = commune_report(portal, profile.start, profile.end, profile.as_of, CAL)
    claims = [c for c in CLAIMS if c.commune_code == commune_code]
    for claim in claims:
        assert claim.holds(claim.value(figures)), (claim.figure, claim.article, claim.value(figures))
    # What the format cannot carry (docs/demo.md): an obligation's end (implied at the resolution, which can
    # only move a dossier from on time to early) and the payments made at the desk.
    offline = profile.payments - profile.payments_online
    assert left_out == Counter({"dossier.obligation_fulfilled": profile.obligations,
                                **({"dossier.payment_completed (offline)": offline} if offline else {})})
    assert differ["payment_method"] == offline and differ["timeliness"] <= profile.obligations


def test_a_history_becomes_a_snapshot_per_step_and_a_progress_record_per_transfer_and_obligation():
    history = next(h for h in commune_histories(SEEDS["08152"])
                   if {"dossier.obligation_requested", "dossier.rated"} <= {e["type"] for e in h})
    dossier = portal_dossier(history, receiving_unit("08152"))
    # received (digitized at the desk), transferred, obligation, paid online, back in processing, resolved, returned
    assert [s["TrangThaiHoSo"] for s in dossier.snapshots] == ["2", "4", "6", "6", "4", "9", "10"]
    assert [s["DuocThanhToanTrucTuyen"] for s in dossier.snapshots] == ["0", "0", "0", "1", "1", "1", "1"]
    first = dossier.snapshots[0]
    assert (first["HoSoCoThanhPhanSoHoa"], first["KenhThucHien"], first["DonViXuLy"]) == ("1", "2", "152.08.00.H25")
    assert [p["TrangThai"] for p in dossier.progress] == ["4", "6"]
    assert dossier.progress[0]["NgayBatDau"] == dossier.progress[1]["NgayBatDau"]  # the same step, dated anew
    assert [e["type"] for e in dossier.beside] == ["dossier.rated"]
    assert "dossier.obligation_fulfilled" in dossier.left_out
