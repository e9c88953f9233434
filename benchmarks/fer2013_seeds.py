"""One FER2013 recipe over several seeds: each run's figures, then mean and spread, plain and with TTA.

python benchmarks/fer2013_seeds.py RUN_DIR RUN_DIR RUN_DIR [--section NAME] [--no-write]
python benchmarks/fer2013_seeds.py --members PREFIX PREFIX ...  (saved members: benchmarks/members/README.md)

Each RUN_DIR is a run of `benchmarks/fer2013_recipe.py` (its `emoframe fit` then `emoframe test`). Everything is
read back from the run, none of it retyped: the seed from `config.yaml`; the fit's wall time from the checkpoint's
Lightning `Timer` state (the clock `trainer.max_time` stops by, validation included); the PrivateTest figures from
`test/csv` and, where the recipe tests with TTA, `test/test_tta.csv`. Spread is the sample standard deviation.

With ``--members``, each PREFIX is a member saved by ``fer2013_recipe.py --members`` (run directories vanish with the
machine; these files are committed): the figures come from its probability files (``PREFIX.none.probs.npz`` and
``PREFIX.paper.probs.npz``) and the fit's seed, time and epochs from ``PREFIX.run.json``, which that script writes
with the harness's ``run_summary`` (older members have none: their seed is read from the name, their fit time is in their row
of the FER2013 recipes table, docs/benchmarks.md or its history).
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

from harness import mean_sd, publish, read_run


def read_member(prefix: Path) -> dict:
    """A saved member's row: the figures from its probability files, the fit from ``PREFIX.run.json``."""
    import json

    from emoframe.eval.probabilities import read_probabilities, score

    def figures(views: str) -> dict[str, float]:
        test = read_probabilities(f"{prefix}.{views}.probs.npz").splits["test"]
        return score(test.probs, test.labels)  # emoframe test's own metrics

    summary = Path(f"{prefix}.run.json")
    if summary.is_file():
        row = json.loads(summary.read_text())
    else:  # members saved before run summaries existed: the seed is in the name, the fit in its docs section
        seed = re.search(r"seed(\d+)", prefix.name)
        row = {"seed": int(seed.group(1)) if seed else None, "fit_min": None, "epochs": "-", "best_epoch": "-"}
        row["recipe"] = "recipes/" + re.sub(r"_seed\d+.*", "", prefix.name) + ".yaml"
    plain, tta = figures("none"), figures("paper")
    return {
        **row,
        "run": prefix.name,
        "acc": plain["acc"],
        "macro_f1": plain["macro_f1"],
        "tta_views": "paper",
        "tta_acc": tta["acc"],
        "tta_macro_f1": tta["macro_f1"],
    }


def within_hour(fit_minutes: list[float], runs: int) -> str:
    if len(fit_minutes) < runs:
        return "not recorded for every run (see their rows of the FER2013 recipes table)"
    return "yes" if max(fit_minutes) <= 60 else "no"


def fit_cell(minutes: float | None) -> str:
    return "-" if minutes is None else f"{minutes:.1f} min"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", type=Path, help="run directories, or member prefixes with --members")
    p.add_argument("--members", action="store_true", help="the arguments are saved members' prefixes")
    p.add_argument("--section", default="fer2013-cpu-hour-seeds")
    p.add_argument("--no-write", action="store_true")
    ns = p.parse_args()
    rows = [read_member(r) if ns.members else read_run(r) for r in ns.runs]
    has_tta = all("tta_acc" in r for r in rows)
    head = "| run | seed | fit wall time | epochs | best epoch | PrivateTest acc % | macro F1 % |"
    rule = "|---|---|---|---|---|---|---|"
    if has_tta:
        head += " with TTA acc % | TTA macro F1 % | TTA gain (points) |"
        rule += "---|---|---|"
    lines = [
        f"## FER2013: `{Path(rows[0]['recipe']).stem if ns.members else rows[0]['run'].parent.name}`, {len(rows)} runs (seeds "
        f"{', '.join(str(r['seed']) for r in rows)}), plain and with TTA",
        "",
        "Fit wall time is Lightning's `Timer` (the clock `trainer.max_time` stops by), read from `last.ckpt`"
        + (
            " and kept in the member's `.run.json`; `-`: a member saved before those files existed."
            if ns.members
            else "."
        ),
        "",
        head,
        rule,
    ]
    for r in rows:
        line = (
            f"| `{r['run']}` | {r['seed']} | {fit_cell(r['fit_min'])} | {r['epochs']} | {r['best_epoch']} | "
            f"{100 * r['acc']:.2f} | {100 * r['macro_f1']:.2f} |"
        )
        if has_tta:
            line += (
                f" {100 * r['tta_acc']:.2f} | {100 * r['tta_macro_f1']:.2f} | {100 * (r['tta_acc'] - r['acc']):+.2f} |"
            )
        lines.append(line)
    fit = [r["fit_min"] for r in rows if r["fit_min"] is not None]
    fit_text = f"{statistics.fmean(fit):.1f} min (max {max(fit):.1f})" if fit else "-"
    summary = (
        f"| mean ± sd | | {fit_text} | | | "
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
            f"{within_hour(fit, len(rows))}."
        )
    publish(ns.section, lines, write=not ns.no_write)


if __name__ == "__main__":
    main()
