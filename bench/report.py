"""Benchmarks write their results into docs/benchmarks.md, one section each, keeping the others:
or into the file BENCH_OUTPUT names (a scratch file: `make test` runs each bench at BENCH_SIZE=tiny)."""

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import SIZE

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Each section is written by its benchmark (`make bench-…`), with the machine, the command, the date
and commit of the run; every ratio is to a baseline measured in that same run. Figures from these
shared 2-core machines are noisy: compare the ratios measured side by side in the same run, not
absolute numbers across runs.

The benches are kept runnable: each runs on a fresh `make up` stack with that stack's own generated
secrets and ports, read as the services read them (bench/harness.py), and `make test` runs every one
of them once at `BENCH_SIZE=tiny` against the test stack, writing to a scratch file named by
`BENCH_OUTPUT` (tests/integration/test_benchmarks.py, a couple of minutes for all): a bench that breaks
fails the tests. Tiny figures never come here: without `BENCH_OUTPUT` a tiny run stops.
"""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}"


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def destination() -> Path:
    """Where sections go: BENCH_OUTPUT, else docs/benchmarks.md, which takes full-size figures only."""
    chosen = os.environ.get("BENCH_OUTPUT")
    if chosen:
        return Path(chosen).resolve()
    if SIZE != "full":
        raise SystemExit(f"BENCH_SIZE={SIZE}: figures of this size do not go to docs/benchmarks.md; set BENCH_OUTPUT")
    return DOC


OUTPUT = destination()  # at import: a tiny run without a destination stops before it measures anything


def measured_commit() -> str:
    """The commit this tree is (short), "with changes" when its tracked files differ from it: a figure of a
    tree being changed says so. Not docs/: what benches write there (make profile's flame graphs before its
    table) changes no figure."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "-"
    return f"{commit} with changes" if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs") else commit


def write_section(name: str, title: str, command: str, body: str) -> None:
    """The bench's section, dated, with the commit and the machine; its baselines come from the same run."""
    commit = measured_commit()
    size = "" if SIZE == "full" else f" (BENCH_SIZE={SIZE}: a check that the bench runs, not a measure)"
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"`{command}`{size} on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}; {machine()}. "
        "Every baseline below was measured in this same run.\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    doc = OUTPUT
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    print(f"\nwritten to {doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc}")
