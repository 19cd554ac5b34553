"""make bench-cpu: the CPU time processing and metrics spend per event, this commit beside a baseline
commit, in one run (docs/benchmarks.md, "CPU per event").

The same probe (`probe`, in a process of its own) runs against each tree: it imports that tree's
services and shared packages, folds whole dossier lives as processing's consumer does (parse,
`integrate`, the link and the summary encoded), then takes the status records processing published
as metrics' consumer does (parse, what the store keeps encoded, the figures applied). CPU time
(`time.process_time`), not wall time: other work on the machine moves it little. Rounds alternate
between the trees and the median is kept.

    python -m bench.cpu [--baseline REV] [--events N] [--rounds R]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "88ab785"  # the last commit before one facts model (issue 22, item 1)


def probe(events_count: int) -> dict[str, float]:
    """Measured in the tree on sys.path: CPU µs per event in processing and per record in metrics."""
    import orjson
    from pydantic import TypeAdapter

    from bench.harness import sample_events
    import services.processing.store as store
    from services.processing.history import StoredDossier, integrate
    from shared.calendar import WorkingCalendar
    from shared.contracts import StatusRecord
    from shared.events import DossierEvent

    import shared.http
    from shared.settings import ServiceSettings

    if hasattr(shared.http, "tune_collector"):  # the tree's services tune the garbage collector: as they run
        shared.http.tune_collector(ServiceSettings(_env_file=None).gc_young_threshold)
    calendar, parse = WorkingCalendar.load(), TypeAdapter(DossierEvent)
    # A tree from before histories (services/processing/store.py) wrote its summary, the whole, alone.
    published_docs = getattr(store, "published_docs", lambda d: (None, store.summary_doc(d)))
    now = datetime.fromisoformat("2025-12-31T17:00:00+07:00")
    raws = [orjson.dumps(e) for e in sample_events(events_count)]
    stored: dict[str, StoredDossier] = {}
    published: list[bytes] = []
    started = time.process_time()
    for n in range(0, len(raws), 100):  # batches of 100, as the consumer takes them
        by_dossier: dict[str, list] = {}
        for raw in raws[n:n + 100]:
            event = parse.validate_json(raw)
            by_dossier.setdefault(event.subject, []).append((event, raw))
        for code, new in by_dossier.items():
            before = stored.get(code) or StoredDossier(code)
            after = integrate(before, new, calendar, now).stored
            store.link_to(before, after).to_doc()  # the link, encoded as stored
            published_docs(replace(after, version=after.version + 1))  # once its outbox is published
            published += [o.value for o in after.outbox if o.kind == "status"]
            stored[code] = after
    processing = time.process_time() - started
    return {"processing_us_per_event": 1e6 * processing / len(raws),
            "metrics_us_per_record": 1e6 * _metrics_cpu(published, TypeAdapter(StatusRecord), calendar, now)
            / len(published), "events": len(raws), "records": len(published)}


def _metrics_cpu(published: list[bytes], records: Any, calendar: Any, now: datetime) -> float:
    """Metrics' consumer on processing's records: parse, keep (encoded as the store writes it), count."""
    import orjson

    from services.metrics import figures as module

    figures = module.Figures(calendar)
    started = time.process_time()
    for n in range(0, len(published), 1000):
        statuses = [records.validate_json(raw) for raw in published[n:n + 1000]]
        if hasattr(module, "Held"):  # stored as held (issue 26, item 4)
            from services.metrics.store import row_of
            held = getattr(module, "held_from", lambda data: module.held(module.Counted.of(data)))
            counted = [held(s.data) for s in statuses]
            orjson.dumps([row_of(h) for h in counted])
        elif hasattr(module.Counted, "of"):  # one facts model (issue 22)
            from services.metrics.store import KEPT
            counted = [module.Counted.of(s.data) for s in statuses]
            KEPT.dump_json(counted)
        else:  # before it: a dict kept, then the mappers
            from services.metrics.store import from_status, kept
            orjson.dumps([kept(s) for s in statuses])
            counted = [from_status(s, calendar) for s in statuses]
        for one in counted:
            figures.apply(one, now)
    return time.process_time() - started


def tree_of(rev: str, into: Path) -> Path:
    """The files of commit `rev`, unpacked (no work tree of git's)."""
    found = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True)
    if found.returncode:
        raise SystemExit(f"no commit {rev}: {found.stderr.decode().strip()}")
    archive = found.stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(tree: Path, events: int) -> dict[str, float]:
    """The probe in a process whose imports come from `tree` (this file's probe, that tree's code)."""
    code = f"import sys, json; sys.path.insert(0, {str(tree)!r}); " \
           f"sys.path.insert(1, {str(ROOT)!r}); from bench.cpu import probe; print(json.dumps(probe({events})))"
    # The baseline tree's `bench` package has no probe: this file is loaded by path under that name.
    code = code.replace("from bench.cpu import probe", "import importlib.util as u; "
                        f"s = u.spec_from_file_location('bench_cpu', {str(Path(__file__))!r}); "
                        "m = u.module_from_spec(s); s.loader.exec_module(m); probe = m.probe")
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from bench.harness import knob

    parser = argparse.ArgumentParser(prog="python -m bench.cpu")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--events", type=int, default=knob("BENCH_CPU_EVENTS", 14_000, 140))
    parser.add_argument("--rounds", type=int, default=knob("BENCH_CPU_ROUNDS", 3, 1))
    args = parser.parse_args()
    from bench.report import measured_commit
    head = measured_commit()
    with tempfile.TemporaryDirectory() as scratch:
        base_tree = tree_of(args.baseline, Path(scratch) / "baseline")
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "now": []}
        for n in range(args.rounds):
            for name, tree in (("baseline", base_tree), ("now", ROOT)):
                runs[name].append(measure(tree, args.events))
                print(f"round {n + 1}, {name}: {runs[name][-1]}", flush=True)
    write(args, head, runs)


def write(args: argparse.Namespace, head: str, runs: dict[str, list[dict[str, float]]]) -> None:
    from bench.report import table, write_section

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    rows = [[path, f"{median('baseline', key):,.0f}", f"{median('now', key):,.0f}",
             f"**{median('now', key) / median('baseline', key):.2f}×**"]
            for path, key in (("processing: parse, integrate, link and summary encoded (per event)",
                               "processing_us_per_event"),
                              ("metrics: parse, keep encoded, count (per status record)", "metrics_us_per_record"))]
    body = (f"{args.events:,} events of whole dossier lives (7 each) through processing's core, then the "
            f"{runs['now'][0]['records']:,} status records it published through metrics' core, in process, "
            f"CPU time; median of {args.rounds} rounds alternating between the trees. Baseline: commit "
            f"{args.baseline}{' (before one facts model)' if args.baseline == BASELINE else ''}, now: {head}.\n\n"
            + table(["path", f"CPU µs at {args.baseline}", f"CPU µs at {head}", "now / baseline"], rows) + "\n")
    print(body)
    write_section("cpu", "CPU per event, processing and metrics", "make bench-cpu", body)


if __name__ == "__main__":
    main()
