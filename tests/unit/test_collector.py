"""The garbage collector as every service tunes it at start (shared/http.py:tune_collector)."""

import gc
import time

import orjson
import pytest
from pydantic import ValidationError

from shared.http import tune_collector
from shared.settings import ServiceSettings


@pytest.fixture
def collector():
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_the_young_generation_is_the_settings_and_what_exists_at_start_is_frozen(collector, monkeypatch):
    monkeypatch.setenv("DOSSIER_GC_YOUNG_THRESHOLD", "20000")
    tune_collector(ServiceSettings(_env_file=None).gc_young_threshold)
    assert gc.get_threshold()[0] == 20_000 and gc.get_freeze_count() > 0


def test_a_young_generation_below_pythons_default_is_refused(monkeypatch):
    monkeypatch.setenv("DOSSIER_GC_YOUNG_THRESHOLD", "10")
    with pytest.raises(ValidationError):
        ServiceSettings(_env_file=None)


def parsing_cpu() -> float:
    """CPU seconds to parse 100 batches of 1,000 records, each batch alive until it is handled, a small part
    of each record kept for good (as the metrics service keeps what it counts)."""
    records = [orjson.dumps({"timeline": [{"since": n, "state": "processing", "units": [n]} for n in range(6)],
                             "n": k}) for k in range(1_000)]
    held: list = []
    started = time.process_time()
    for _ in range(100):
        batch = [orjson.loads(r) for r in records]
        held.extend((record["n"], [record["n"]]) for record in batch)
        del batch
    return time.process_time() - started


def test_parsing_while_the_heap_grows_costs_less_with_the_tuned_collector(collector):
    """What the tuning is for: with Python's default, the batches' records reach the old generations, and the
    old collections scan again and again everything held."""
    default = min(parsing_cpu() for _ in range(2))
    tune_collector(50_000)
    tuned = min(parsing_cpu() for _ in range(2))
    assert tuned < 0.75 * default, (tuned, default)
