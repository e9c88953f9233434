"""One FER2013 recipe over several seeds: each run's figures, then mean and spread, plain and with TTA.

python benchmarks/fer2013_seeds.py RUN_DIR RUN_DIR RUN_DIR [--section NAME] [--no-write]

Each RUN_DIR is a run of `benchmarks/fer2013_recipe.py` (its `emoframe fit` then `emoframe test`). Everything is
read back from the run, none of it retyped: the seed from `config.yaml`; the fit's wall time from the checkpoint's
Lightning `Timer` state (the clock `trainer.max_time` stops by, validation included); the PrivateTest figures from
`test/csv` and, where the recipe tests with TTA, `test/test_tta.csv`. Spread is the sample standard deviation.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish

REPO = Path(__file__).resolve().parents[1]


def read_run(run: Path) -> dict:
    """The seed, fit time, epochs and test figures of one run directory."""
    import torch
    from omegaconf import OmegaConf

    seed = OmegaConf.load(run / "config.yaml").get("seed")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    timer = next((v for k, v in ckpt["callbacks"].items() if k.startswith("Timer")), None)
    if timer is None:
        raise SystemExit(f"{run}/checkpoints/last.ckpt: no Timer state (expected a run with trainer.max_time)")
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["epoch"] + 1
    metrics = sorted((run / "test" / "csv").glob("version_*/metrics.csv"))
    if not metrics:
        raise SystemExit(f"{run}/test/csv: no test metrics (run `emoframe test --ckpt {run}/checkpoints/best.ckpt`)")
    with metrics[-1].open() as f:
        plain = next(csv.DictReader(f))
    row = {
        "run": run.resolve().relative_to(REPO) if run.resolve().is_relative_to(REPO) else run,
        "seed": seed,
        "fit_min": timer["time_elapsed"]["train"] / 60,
        "epochs": ckpt["epoch"] + 1,
        "best_epoch": best,
        "acc": float(plain["test/acc"]),
        "macro_f1": float(plain["test/macro_f1"]),
    }
    tta_file = run / "test" / "test_tta.csv"
    if tta_file.is_file():
        with tta_file.open() as f:
            rows = list(csv.DictReader(f))
        tta = next(r for r in rows if r["tta"] != "none")
        row.update(tta_views=tta["tta"], tta_acc=float(tta["acc"]), tta_macro_f1=float(tta["macro_f1"]))
    return row


def mean_sd(values: list[float], scale: float = 100.0) -> str:
    mean = statistics.fmean(values) * scale
    sd = statistics.stdev(values) * scale if len(values) > 1 else float("nan")
    return f"{mean:.2f} ± {sd:.2f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--section", default="fer2013-cpu-hour-seeds")
    p.add_argument("--no-write", action="store_true")
    ns = p.parse_args()
    rows = [read_run(r) for r in ns.runs]
    has_tta = all("tta_acc" in r for r in rows)
    head = "| run | seed | fit wall time | epochs | best epoch | PrivateTest acc % | macro F1 % |"
    rule = "|---|---|---|---|---|---|---|"
    if has_tta:
        head += " with TTA acc % | TTA macro F1 % | TTA gain (points) |"
        rule += "---|---|---|"
    lines = [
        f"## FER2013: `{rows[0]['run'].parent.name}`, {len(rows)} runs (seeds "
        f"{', '.join(str(r['seed']) for r in rows)}), plain and with TTA",
        "",
        "Fit wall time is Lightning's `Timer` (the clock `trainer.max_time` stops by), read from `last.ckpt`.",
        "",
        head,
        rule,
    ]
    for r in rows:
        line = (
            f"| `{r['run']}` | {r['seed']} | {r['fit_min']:.1f} min | {r['epochs']} | {r['best_epoch']} | "
            f"{100 * r['acc']:.2f} | {100 * r['macro_f1']:.2f} |"
        )
        if has_tta:
            line += (
                f" {100 * r['tta_acc']:.2f} | {100 * r['tta_macro_f1']:.2f} | {100 * (r['tta_acc'] - r['acc']):+.2f} |"
            )
        lines.append(line)
    fit = [r["fit_min"] for r in rows]
    summary = (
        f"| mean ± sd | | {statistics.fmean(fit):.1f} min (max {max(fit):.1f}) | | | "
        f"{mean_sd([r['acc'] for r in rows])} | {mean_sd([r['macro_f1'] for r in rows])} |"
    )
    if has_tta:
        summary += (
            f" {mean_sd([r['tta_acc'] for r in rows])} | {mean_sd([r['tta_macro_f1'] for r in rows])} | "
            f"{mean_sd([r['tta_acc'] - r['acc'] for r in rows])} |"
        )
    lines += [summary, ""]
    if has_tta:
        over = sum(r["tta_acc"] >= 0.70 for r in rows)
        lines.append(
            f"Runs at 70.0% or more: {sum(r['acc'] >= 0.70 for r in rows)} of {len(rows)} plain, {over} of "
            f"{len(rows)} with TTA ({rows[0]['tta_views']}); every fit within 60 minutes: "
            f"{'yes' if max(fit) <= 60 else 'no'}."
        )
    publish(ns.section, lines, write=not ns.no_write)


if __name__ == "__main__":
    main()
