"""How long the test suite takes on this machine: the inner loop (``pytest -m "not slow"``) and, with ``--full``,
the whole suite CI runs; with the machine's training pictures/s from ``benchmarks/throughput.py`` beside them,
since machines here differ almost threefold.

    python benchmarks/suite_times.py [--full] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from harness import DATA, REPO, publish

COUNTS = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?)")


def run_pytest(marker: str | None, data: str) -> tuple[float, dict[str, int]]:
    """Wall seconds and outcome counts of one pytest run (one process, as CI runs it)."""
    env = {**os.environ, "EMOFRAME_DATA": data, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(["-m", marker] if marker else [])]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {kind.rstrip("s"): int(n) for n, kind in COUNTS.findall(last)}
    if proc.returncode != 0:
        print(proc.stdout[-3000:], file=sys.stderr)
    return seconds, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--full", action="store_true", help="also the whole suite, as CI runs it")
    ns = parser.parse_args()
    rows = ["| run | wall time | passed | skipped | deselected | failed |", "|---|---|---|---|---|---|"]
    runs = [('`pytest -m "not slow"` (the inner loop)', "not slow")]
    if ns.full:
        runs.append(("`pytest` (the whole suite, as `.ci/run` runs it)", None))
    for name, marker in runs:
        seconds, counts = run_pytest(marker, ns.data)
        cells = [str(counts.get(k, 0)) for k in ("passed", "skipped", "deselected", "failed")]
        rows.append(f"| {name} | {seconds / 60:.1f} min | " + " | ".join(cells) + " |")
    body = [
        "## Test suite wall time",
        "",
        "One pytest process, as CI runs it, on an otherwise idle machine. The inner loop leaves out the tests marked",
        "`slow` (each over about 10 seconds: fits, DDP, kill/resume, fuzzers, fresh interpreters).",
        "Compare machines by the training throughput of `benchmarks/throughput.py` (its section on this page).",
        "",
        *rows,
    ]
    publish("test-suite", body)


if __name__ == "__main__":
    main()
