"""What processing's store writes for a dossier (services/processing/store.py): a link per batch, a summary
of where it stands, and its whole history only at checkpoints, so that the bytes written for an event
follow the change, not the dossier's history (issue 26, item 5)."""

import gc
import tracemalloc
from dataclasses import replace
from datetime import datetime, timedelta

import bson
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from services.processing.history import StoredDossier, integrate
from services.processing.store import (
    DossierStore, cached_bytes, from_history, history_doc, is_checkpoint, link_to, summary_doc,
)
from shared.calendar import WorkingCalendar
from shared.dvcqg_lookup import held_of
from shared.events import parse_event_json
from shared.mongo import unpack
from tests.fixtures.sample import VN, dossier_code, dossier_history, event

CAL = WorkingCalendar.load()
START = datetime(2025, 7, 7, 9, tzinfo=VN)
CODE = dossier_code(START, sequence=1)


def digitized(events: int) -> list[dict]:
    """A dossier received, then digitized again and again."""
    sent = [event("dossier.received", CODE, START)]
    return sent + [event("dossier.digitized", CODE, START + timedelta(minutes=10 * n), id_=f"d{n}")
                   for n in range(1, events)]


def lived(events: int) -> list[StoredDossier]:
    """`digitized`, each event its own batch, published."""
    stored, kept = StoredDossier(CODE), []
    for one in digitized(events):
        raw = orjson.dumps(one)
        after = integrate(stored, [(parse_event_json(raw), raw)], CAL, START + timedelta(days=1)).stored
        kept.append(replace(after, version=stored.version + 1))
        stored = replace(kept[-1], outbox=[])
    return kept


def written(before: StoredDossier, after: StoredDossier) -> int:
    """Bytes (BSON) the store writes when `after` is saved and published."""
    history = len(bson.encode(history_doc(after))) if is_checkpoint(after.version) else 0
    return len(bson.encode(link_to(before, after).to_doc())) + len(bson.encode(summary_doc(after))) + history


def test_histories_are_written_at_the_first_version_then_at_doubling_ones_from_eight():
    assert [v for v in range(0, 200) if is_checkpoint(v)] == [1, 8, 16, 32, 64, 128]


@given(st.integers(min_value=1, max_value=1 << 14))
def test_a_reader_follows_at_most_half_a_dossiers_links_and_six_below_eight(version):
    last = next(v for v in range(version, 0, -1) if is_checkpoint(v))
    assert version - last <= max(6, version // 2)


def test_the_summary_holds_no_event_but_the_receipt():
    last = lived(12)[-1]
    summary = unpack(summary_doc(last)["blob"])
    assert "events" not in summary and orjson.loads(summary["receipt"])["type"] == "dossier.received"
    assert summary["sources"] == ["urn:motcua:38"] and summary["version"] == 12


def test_the_bytes_written_for_an_event_follow_the_change_not_the_history():
    kept = lived(96)
    each = [written(b, a) for b, a in zip([StoredDossier(CODE), *kept], kept)]
    assert not is_checkpoint(13) and not is_checkpoint(81)  # each[n - 1]: the n-th event's
    per_event = (each[80] - each[12]) / 68  # how much more the 81st event costs than the 13th, by event between
    history_per_event = (len(bson.encode(history_doc(kept[80]))) - len(bson.encode(history_doc(kept[12])))) / 68
    assert per_event <= 100  # the lookup's list of steps (id, type, time) grows, nothing else
    assert per_event < history_per_event / 4  # what the summary grew by when it held the whole history
    amortized = sum(each[32:64]) / 32  # events 33 to 64, the history written once (at 64) among them
    assert amortized < 1.25 * each[50]


def test_the_lookup_reads_the_same_from_a_summary_and_from_one_written_before_histories():
    last = lived(5)[-1]
    assert held_of(CODE, unpack(summary_doc(last)["blob"])) == held_of(CODE, unpack(history_doc(last)["blob"]))


def test_a_history_reads_back_as_the_dossier_it_was_written_from():
    last = replace(lived(7)[-1], outbox=[])
    assert from_history(CODE, history_doc(last)) == last


# -- the replica's cache of dossiers ------------------------------------------------------------------


def cached(lives: list[list[bytes]]) -> list[StoredDossier]:
    """Dossiers as a replica caches them after integrating their events one by one."""
    kept = []
    for raws in lives:
        stored = StoredDossier(parse_event_json(raws[0]).subject)
        for raw in raws:
            stored = replace(integrate(stored, [(parse_event_json(raw), raw)], CAL, START).stored, outbox=[])
        kept.append(stored)
    return kept


def sample_lives(dossiers: int) -> list[list[bytes]]:
    """Whole seven-step lives (as bench-e2e sends them)."""
    return [[orjson.dumps(e) for e in dossier_history(dossier_code(START, sequence=n + 1), START)]
            for n in range(dossiers)]


@pytest.mark.parametrize("lives", [sample_lives(300), [[orjson.dumps(e) for e in digitized(12)]] * 300],
                         ids=["seven-step lives", "twelve small steps"])
def test_the_caches_estimate_of_a_dossier_is_within_half_of_what_it_holds(lives):
    gc.collect()
    tracemalloc.start()
    kept = cached(lives)
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    estimated = sum(map(cached_bytes, kept))
    assert 2 / 3 < estimated / held < 3 / 2


def test_the_cache_keeps_the_dossiers_last_used_within_its_budget():
    store = DossierStore(AsyncMongoClient("mongodb://127.0.0.1:1", connect=False), "unused", cache_mib=1)
    kept = cached(sample_lives(200))
    for stored in kept:
        store._remember(stored)
    assert sum(map(cached_bytes, store._cache.values())) <= 1 << 20
    assert list(store._cache) == [s.code for s in kept[-len(store._cache):]]  # the last used, in order
    assert 10 < len(store._cache) < 200
