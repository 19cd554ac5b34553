"""make demo (for now): post a small, deterministic sample of dossier histories through intake,
wait until processing has folded them and the metrics service counted them, and show one dossier
as the lookup API gives it and the commune's report.

Event ids are derived from the dossier and step, so running it twice sends the same events,
which the pipeline deduplicates by source + id. A later issue replays the seed communes instead.
"""

import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from bench.sample import VN, dossier_code, dossier_history
from shared.communes import communes
from shared.report import as_table

ROOT = Path(__file__).resolve().parents[1]
STACK = Path(os.environ.get("DOSSIER_STACK_DIR", ROOT / ".local"))
INTAKE = f"http://127.0.0.1:{os.environ.get('DOSSIER_INTAKE_PORT', '8001')}"
PROCESSING = f"http://127.0.0.1:{os.environ.get('DOSSIER_PROCESSING_PORT', '8002')}"
METRICS = f"http://127.0.0.1:{os.environ.get('DOSSIER_METRICS_PORT', '8003')}"
DOSSIERS = 200


def sample() -> list[dict]:
    events = []
    start = datetime(2025, 7, 1, 8, 0, tzinfo=VN)
    for n in range(DOSSIERS):
        received = start + timedelta(days=n // 40, minutes=7 * (n % 40))
        history = dossier_history(dossier_code(received, sequence=n % 40 + 1), received)
        for step in history:
            step["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo/{step['subject']}/{step['type']}"))
        events += history
    return events


def progress(done: int, total: int) -> None:
    filled = 40 * done // total
    sys.stdout.write(f"\r  [{'#' * filled}{'.' * (40 - filled)}] {done:,}/{total:,} events")
    sys.stdout.flush()


def main() -> None:
    key = (STACK / "intake-api-key").read_text().strip()
    events = sample()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/cloudevents-batch+json"}
    print(f"Posting {DOSSIERS} sample dossiers through intake ({INTAKE}):")
    with httpx.Client(base_url=INTAKE, headers=headers, timeout=30) as client:
        for i in range(0, len(events), 100):
            answer = client.post("/v1/events", json=events[i : i + 100])
            answer.raise_for_status()
            progress(min(i + 100, len(events)), len(events))
    print("\n\nAccepted. Waiting for processing to fold them …")
    last, steps = events[-1]["subject"], sum(e["subject"] == events[-1]["subject"] for e in events)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = httpx.get(f"{PROCESSING}/v1/dossiers/{last}", timeout=10)
        if answer.status_code == 200 and len(answer.json()["history"]) == steps:
            break
        time.sleep(0.5)
    else:
        raise SystemExit("processing did not catch up within 2 minutes: see `make logs`")
    example = httpx.get(f"{PROCESSING}/v1/dossiers/{events[0]['subject']}", timeout=10).json()
    example["history"] = [f"{s['time']}  {s['type']}" for s in example["history"]]
    print(f"\nOne dossier ({PROCESSING}/v1/dossiers/{events[0]['subject']}):")
    print(json.dumps(example, ensure_ascii=False, indent=2))
    commune = events[0]["data"]["commune_code"]
    period = {"from": "2025-07-01", "to": "2025-07-31"}
    deadline = time.monotonic() + 60
    while (report := httpx.get(f"{METRICS}/v1/reports/communes/{commune}", params=period, timeout=10).json())[
            "received"] < DOSSIERS:
        if time.monotonic() > deadline:
            raise SystemExit("the metrics service did not count every dossier within a minute: see `make logs`")
        time.sleep(0.5)
    unit = communes()[commune]
    print(f"\nThe commune's report ({METRICS}/v1/reports/communes/{commune}?from=2025-07-01&to=2025-07-31):")
    print(as_table(f"{unit.name} ({commune}), {unit.province_name}", report))
    print("\nWhere to look:")
    print(f"  intake metrics:     {INTAKE}/metrics")
    print(f"  intake API docs:    {INTAKE}/docs")
    print(f"  processing metrics: {PROCESSING}/metrics")
    print(f"  figures:            {METRICS}/metrics   (report API docs: {METRICS}/docs)")
    print(f"  Prometheus:         http://127.0.0.1:{os.environ.get('DOSSIER_PROMETHEUS_PORT', '9090')}")
    print("  stack status:       make status   (logs: make logs, stop: make down)")


if __name__ == "__main__":
    main()
