"""make profile: where each service's CPU goes under load, as flame graphs and a table of top frames.

bench-e2e's pipeline (intake, processing and metrics of its own on the `make up` stack) takes whole
dossier lives at BENCH_PROFILE_RATE events/s (2,000) while py-spy samples each service from outside
(`--nonblocking`: the process is never paused). Two runs of BENCH_PROFILE_SECONDS each, at the same rate:
during the first py-spy writes a flame graph per service (docs/profiles/<service>.svg); during the
second it writes the collapsed stacks, from which the frames with the most samples of their own (the
innermost frame of a stack) are counted. The table goes into docs/benchmarks.md, the flame graphs into
docs/profiles/; with BENCH_OUTPUT (the test of the benches) both go beside that file instead.
"""

import asyncio
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.clock import BENCH_NOW
from bench.end_to_end import PORTS, WARM_UP, reported, step
from bench.harness import ROOT, bench_settings, knob, run, sample_events, start_service
from bench.report import OUTPUT, table, write_section
from shared.kafka_acls import prepare

RATE = knob("BENCH_PROFILE_RATE", 2000, 200)
SECONDS = knob("BENCH_PROFILE_SECONDS", 20.0, 2.0)
TOP = 5
SERVICES = ("intake", "processing", "metrics")
PY_SPY = Path(sys.executable).with_name("py-spy")
OUT = OUTPUT.parent / "profiles"  # docs/profiles beside docs/benchmarks.md, or beside BENCH_OUTPUT


def spy(pid: int, output: Path, form: str) -> subprocess.Popen:
    """py-spy sampling `pid` from outside for the run's length, into `output` (`flamegraph` or `raw`)."""
    return subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--nonblocking", "--rate", "100",
                             "--duration", str(round(SECONDS) + 2), "--format", form, "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def own_samples(collapsed: str) -> tuple[Counter[str], int]:
    """Samples by innermost frame (`function (file:line)`, paths from the project or the package), and
    the total, from py-spy's collapsed stacks: one `frame;frame;…;frame count` line per stack."""
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        own[short(stack.rsplit(";", 1)[-1])] += int(count)
        total += int(count)
    return own, total


def short(frame: str) -> str:
    """A frame with its file named from the project's root or from site-packages."""
    return re.sub(r"\((?:[^()]*/(?:site-packages|lib/python3\.\d+)/|" + re.escape(str(ROOT)) + "/)", "(", frame)


async def profiled(pids: dict[str, int], form: str, first_sequence: int) -> dict[str, Path]:
    """One run of the load at RATE with py-spy on every service; the file each wrote."""
    suffix = "svg" if form == "flamegraph" else "txt"
    outputs = {name: OUT / f"{name}.{suffix}" for name in pids}
    spies = {name: spy(pid, outputs[name], form) for name, pid in pids.items()}
    events = sample_events(int(RATE * SECONDS), first_sequence=first_sequence)
    done = await step(RATE, events, reported(), pids)
    print(f"  {form}: reached {done.reached:,.0f} events/s, p99 {done.p99 * 1000:,.0f} ms, cpu {done.cpu}", flush=True)
    for name, process in spies.items():
        _, error = process.communicate(timeout=60)
        if process.returncode != 0 or not outputs[name].exists():
            raise SystemExit(f"py-spy on {name} failed: {error.decode(errors='replace')[-500:]}")
    return outputs


def report(tops: dict[str, tuple[Counter[str], int]]) -> str:
    rows = []
    for name, (own, total) in tops.items():
        for frame, count in own.most_common(TOP):
            rows.append([name, f"`{frame}`", f"{count / total:.1%}"])
    return (f"bench-e2e's pipeline at {RATE:,} events/s for {SECONDS:g} s, py-spy sampling each service at 100 Hz "
            "without pausing it. Flame graphs: docs/profiles/<service>.svg (from a first run); the frames with "
            "the most samples of their own (from a second run at the same rate), as a share of the service's "
            "samples:\n\n" + table(["service", "frame (own time)", "share of samples"], rows))


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    settings = bench_settings("profile")
    await prepare(settings)
    processes = {name: start_service(name, settings, PORTS[name], now=BENCH_NOW) for name in SERVICES}
    pids = {name: p.pid for name, p in processes.items()}
    try:
        print(f"warming up: 100 events/s for {WARM_UP / 100:.1f} s …", flush=True)
        await step(100, sample_events(WARM_UP, first_sequence=0), reported(), pids)
        await profiled(pids, "flamegraph", first_sequence=WARM_UP)
        raw = await profiled(pids, "raw", first_sequence=WARM_UP + int(RATE * SECONDS))
    finally:
        for process in processes.values():
            process.terminate()
            process.wait()
    tops = {name: own_samples(path.read_text()) for name, path in raw.items()}
    for path in raw.values():
        path.unlink()
    body = report(tops)
    print(body)
    write_section("profile", "Profiles under load", "make profile", body)


if __name__ == "__main__":
    run(lambda: asyncio.run(main()))
