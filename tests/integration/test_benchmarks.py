"""Every `make bench-…` once at BENCH_SIZE=tiny on the test stack, so that a bench that breaks fails
`make test`: it reads the stack's ports and generated secrets as the services do, writes its section
(dated, with its same-run baselines) to a scratch file, never to docs/benchmarks.md."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, SECRETS, SLOT, STACK_ENV, Stack

# bench module -> the section it writes (bench/report.py:write_section)
BENCHES = {"intake": "intake", "processing": "processing", "metrics": "metrics", "notifications": "notifications",
           "signature": "signature", "end_to_end": "end-to-end", "reads": "reads", "scaling": "scaling",
           "cpu": "cpu", "profile": "profile"}
DATED = re.compile(r"on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC, commit \w+")


@pytest.fixture(scope="module")
def bench_env(stack: Stack) -> dict[str, str]:
    """The variables a bench run on the test stack takes: where Kafka, FerretDB and Kannel listen, the
    stack's secrets, the tiny size, and ports for its own services apart from other slots'."""
    for component in ("kafka", "ferretdb", "kannel"):
        stack.ensure(component)
    return os.environ | STACK_ENV | {
        "DOSSIER_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{STACK_ENV['DOSSIER_KAFKA_PORT']}",
        "DOSSIER_MONGO_URL": f"mongodb://127.0.0.1:{STACK_ENV['DOSSIER_MONGO_PORT']}",
        "DOSSIER_SECRETS_DIR": str(SECRETS),
        "BENCH_SIZE": "tiny",
        "BENCH_PORT_OFFSET": str(1000 + 100 * SLOT),
    }


@pytest.mark.parametrize("module", list(BENCHES))
def test_bench_runs_at_tiny_size_and_writes_its_section(module: str, bench_env: dict[str, str], tmp_path: Path):
    output = tmp_path / "benchmarks.md"
    run = subprocess.run([sys.executable, "-m", f"bench.{module}"], cwd=ROOT, capture_output=True, text=True,
                         env=bench_env | {"BENCH_OUTPUT": str(output)}, timeout=240)
    assert run.returncode == 0, f"bench.{module} exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    name = BENCHES[module]
    section = re.search(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->", output.read_text(), re.S)
    assert section, f"bench.{module} wrote no section {name} to {output}"
    assert DATED.search(section.group(1)) and "BENCH_SIZE=tiny" in section.group(1)
    assert "measured in this same run" in section.group(1)
    if module == "profile":  # and a flame graph per service beside the section
        for service in ("intake", "processing", "metrics"):
            assert (tmp_path / "profiles" / f"{service}.svg").read_text().lstrip().startswith("<?xml"), service
