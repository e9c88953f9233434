"""Sweep throughput: trials per hour with one local worker and with two on one sweep, and a trial's start-up
overhead against its training time; then one epoch of the sweep recipe's real budget, to size the full sweep.

    python benchmarks/sweep.py [--data ../shared/data] [--trials 4] [--images 1000] [--epochs 2]

Both runs use ``sweeps/fer2013_small_cnn.yaml`` as it is (random search here, so both runs draw comparable
trials, and no hyperband, so every trial trains the same number of epochs) on a smaller subset. The trials are
real ``emoframe fit`` processes with the W&B logger offline, as a user gets them. Start-up is the time from the
worker launching the process to the first training step (imports, recipe, data, model, loggers); training is
from there to the end of fit; the rest is teardown and the worker's bookkeeping.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from harness import REPO, emoframe_command, emoframe_env, publish

SWEEP = REPO / "sweeps" / "fer2013_small_cnn.yaml"


def sweep_file(path: Path, name: str, zip_path: Path, trials: int, images: int | None, epochs: int) -> Path:
    config = yaml.safe_load(SWEEP.read_text())
    config.update(name=name, method="random", run_cap=trials)
    config.pop("early_terminate", None)
    params = config["parameters"]
    params["data.root"] = {"value": str(zip_path)}
    params["trainer.max_epochs"] = {"value": epochs}
    if images is not None:
        params["data.subset"] = {"value": images}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_workers(sweep: Path, folder: Path, workers: int) -> float:
    env = emoframe_env()
    command = emoframe_command("sweep", sweep, "--local", "--dir", folder)  # worker processes, as a user starts them
    start = time.monotonic()
    logs = [(folder.parent / f"{folder.name}_worker{i}.log").open("w") for i in range(workers)]
    procs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
    codes = [p.wait() for p in procs]
    wall = time.monotonic() - start
    for log in logs:
        log.close()
    if any(codes):
        raise SystemExit(f"a worker failed: see {folder.parent}/*_worker*.log")
    return wall


def trial_times(folder: Path, name: str) -> list[dict[str, float]]:
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")
    out = []
    for t in study.get_trials():
        u = t.user_attrs
        if t.state.name != "COMPLETE" or "train_start" not in u:
            continue
        total = float(u["seconds"])
        startup = u["train_start"] - u["launch_time"]
        training = u["train_end"] - u["train_start"]
        out.append({"total": total, "startup": startup, "training": training, "rest": total - startup - training})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--images", type=int, default=1000, help="data.subset of the throughput runs")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    zip_path = (args.data / "fer2013" / "fer2013.zip").resolve()
    load_before = os.getloadavg()[0]
    rows, times = [], {}
    with tempfile.TemporaryDirectory(prefix="emoframe-sweep-bench-") as tmp:
        base = Path(tmp)
        for workers in (1, 2):
            name = f"bench{workers}"
            sweep = sweep_file(base / f"{name}.yaml", name, zip_path, args.trials, args.images, args.epochs)
            wall = run_workers(sweep, base / name, workers)
            times[workers] = trial_times(base / name, name)
            rows.append((workers, len(times[workers]), wall, 3600 * len(times[workers]) / wall))
            print(f"{workers} worker(s): {len(times[workers])} trials in {wall:.0f} s", flush=True)
        recipe = sweep_file(base / "recipe.yaml", "recipe", zip_path, 1, None, 1)  # the recipe's own subset
        run_workers(recipe, base / "recipe", 1)
        epoch = trial_times(base / "recipe", "recipe")[0]
    load_after = os.getloadavg()[0]
    one = times[1]
    med = {k: statistics.median(t[k] for t in one) for k in ("total", "startup", "training", "rest")}
    cfg = yaml.safe_load(SWEEP.read_text())
    cap, max_epochs = cfg["run_cap"], cfg["parameters"]["trainer.max_epochs"]["value"]
    full = cap * (epoch["startup"] + epoch["rest"] + max_epochs * epoch["training"])
    lines = [
        f"## Sweeps: trials per hour, one local worker against two (`{SWEEP.relative_to(REPO)}`)",
        "",
        f"{args.trials} random-search trials of the sweep file's parameters, {args.images}-image subset, "
        f"{args.epochs} epoch(s) each, W&B offline; SQLite storage; each worker one trial at a time.",
        "",
        "| workers | trials | wall time | trials / hour | vs one worker |",
        "|---|---|---|---|---|",
    ]
    for workers, n, wall, per_hour in rows:
        lines.append(f"| {workers} | {n} | {wall:.0f} s | {per_hour:.1f} | {per_hour / rows[0][3]:.2f}x |")
    lines += [
        "",
        f"One worker, median trial: {med['total']:.1f} s = start-up {med['startup']:.1f} s (process, imports, recipe, "
        f"data, model, loggers) + training {med['training']:.1f} s + teardown {med['rest']:.1f} s: start-up is "
        f"{med['startup'] / med['total']:.0%} of a trial of this size, and {med['startup'] / med['training']:.2f}x "
        "its training time; a trial pays it once, so longer trials amortise it.",
        "",
        f"The sweep file's own budget (4,000 training images and the 3,589 PublicTest images, one epoch): start-up "
        f"{epoch['startup']:.0f} s, one epoch {epoch['training']:.0f} s; so its {cap} trials of up to {max_epochs} "
        f"epochs take at most {full / 60:.0f} min with one worker here (before hyperband stops any).",
        "",
        f"The machine was shared with other jobs (2 cores; load average {load_before:.1f} before, {load_after:.1f} "
        "after), so two workers compete for the same two cores with everything else: the ratio is what a second "
        "worker buys on a busy 2-core machine, not on an idle one or a second machine.",
    ]
    publish("sweep-throughput", "\n".join(lines))


if __name__ == "__main__":
    main()
