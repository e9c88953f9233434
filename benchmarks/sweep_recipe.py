"""The shipped sweep, run as a user runs it: `emoframe sweep sweeps/fer2013_small_cnn.yaml` with one local worker
(W&B offline), timed from start to the last trial, then `--report`; the wall time, the trials (complete and
stopped by hyperband) and the best validation accuracy go to docs/benchmarks.md.

    python benchmarks/sweep_recipe.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import tempfile
import time
from pathlib import Path

from harness import REPO, emoframe_command, emoframe_env, fer2013_zip, publish

SWEEP = "sweeps/fer2013_small_cnn.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    env = emoframe_env(FER2013_ROOT=str(fer2013_zip(args.data).resolve()))  # the recipe's data.root
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="emoframe-sweep-recipe-") as tmp:
        folder = Path(tmp) / "sweep"
        command = emoframe_command("sweep", SWEEP, "--local", "--dir", folder)  # a worker process, as a user runs it
        start = time.monotonic()
        with (Path(tmp) / "worker.log").open("w") as log:
            code = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        wall = time.monotonic() - start
        if code:
            raise SystemExit((Path(tmp) / "worker.log").read_text()[-3000:])
        subprocess.run([*command, "--report"], cwd=REPO, env=env, check=True, capture_output=True)
        table = list(csv.DictReader((folder / "report" / "leaderboard.csv").open()))
    load_after = os.getloadavg()[0]
    states = [r["state"] for r in table]
    done = [r for r in table if r["state"] == "COMPLETE" and r.get("val/acc")]
    best = max(done, key=lambda r: float(r["val/acc"]))
    epochs = sum(int(float(r["epochs"] or 0)) for r in table)
    body = (
        f"## The shipped sweep, end to end (`{SWEEP}`)\n\n"
        "`emoframe sweep sweeps/fer2013_small_cnn.yaml --local` with one worker, as the file is (bayes/TPE, "
        "hyperband, 8 trials of at most 6 epochs on a 4,000-image stratified training subset, validated on all "
        "3,589 PublicTest images), W&B offline; then `--report`.\n\n"
        "| wall time | trials | complete | stopped by hyperband | epochs trained | best val/acc | best trial's sampled values |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {wall / 60:.1f} min | {len(table)} | {states.count('COMPLETE')} | {states.count('PRUNED')} | {epochs} | "
        f"{float(best['val/acc']):.4f} | lr {float(best['optimizer.lr']):.3g}, weight decay "
        f"{float(best['optimizer.weight_decay']):.3g}, label smoothing {best['loss.label_smoothing']}, "
        f"Affine p {float(best['data.augment.0.p']):.2f} |\n\n"
        f"Load average (1 min) {load_before:.1f} at the start, {load_after:.1f} at the end (2 cores)."
    )
    print(body)
    publish("sweep-recipe", body)


if __name__ == "__main__":
    main()
