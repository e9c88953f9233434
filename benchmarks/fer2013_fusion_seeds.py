"""Kumari's fusion comparison over seeds: CNN + HOG/landmark fusion against CNN-only, paired by seed.

python benchmarks/fer2013_fusion_seeds.py --seeds 0,1,2 [--weights CKPT] [--epochs 8] [--data ../shared/data]
    [--section fer2013-fusion-seeds] [--no-write]

For each seed, the twins `recipes/fer2013_cnn_only.yaml` and `recipes/fer2013_fusion.yaml` start their small_cnn
backbone from CKPT (an hour-recipe checkpoint: Kumari fine-tunes a pretrained backbone), train ``--epochs`` epochs
(5 frozen, then all layers) and are tested plain and with the 18 TTA views. Each run is saved as an ensemble member,
``benchmarks/members/fer2013_<recipe>_from_hour_seed<N>.<views>.probs.npz``; a seed whose two members are already
there is not retrained (members outlive the machine, checkpoints do not), so ``--weights`` is needed only for the
seeds still missing. The table is computed from those files, nothing retyped: PrivateTest accuracy and macro F1 of
each twin, and the paired difference, fusion minus CNN-only, with its mean and sample standard deviation.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from harness import DATA, REPO, environment, fit_and_test, publish, publish_recipe

TWINS = ("cnn_only", "fusion")
VIEWS = ("none", "paper")


def prefix(recipe: str, seed: int) -> Path:
    return REPO / "benchmarks" / "members" / f"fer2013_{recipe}_from_hour_seed{seed}"


def train(recipe: str, seed: int, weights: Path, epochs: int, data: str, runs: Path, write: bool) -> None:
    """One twin of one seed (its own row of the FER2013 recipes table), saved as a member."""
    with environment(EMOFRAME_BACKBONE_WEIGHTS=str(weights.resolve()), EMOFRAME_CACHE=str(runs / "cache")):
        run = fit_and_test(
            f"recipes/fer2013_{recipe}.yaml",
            [f"trainer.max_epochs={epochs}", "test.tta=paper", f"seed={seed}"],
            data=data,
            runs=runs,
            members=prefix(recipe, seed),
        )
    publish_recipe(run, write=write)


def scores(path: Path) -> tuple[float, float, str]:
    """PrivateTest accuracy and macro F1 of a saved member, and the checkpoint it came from."""
    from emoframe.eval.probabilities import read_probabilities, score

    saved = read_probabilities(path)
    figures = score(saved.splits["test"].probs, saved.splits["test"].labels)  # emoframe test's own metrics
    return figures["acc"], figures["macro_f1"], saved.meta["checkpoint"]


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):+.2f} ± {sd:.2f}"


def table(seeds: list[int]) -> list[str]:
    lines = [
        "| seed | views | CNN-only acc % | fusion acc % | fusion - CNN (points) | CNN-only macro F1 % | fusion macro F1 % |",
        "|---|---|---|---|---|---|---|",
    ]
    diffs: dict[str, list[float]] = {v: [] for v in VIEWS}
    for views in VIEWS:
        for seed in seeds:
            (ca, cf, _), (fa, ff, _) = (scores(Path(f"{prefix(r, seed)}.{views}.probs.npz")) for r in TWINS)
            diffs[views].append(100 * (fa - ca))
            lines.append(
                f"| {seed} | {views} | {100 * ca:.2f} | {100 * fa:.2f} | {100 * (fa - ca):+.2f} | {100 * cf:.2f} | "
                f"{100 * ff:.2f} |"
            )
    lines.append("")
    for views in VIEWS:
        label = "plain" if views == "none" else f"with the {views} TTA views"
        lines.append(f"- Fusion minus CNN-only, {label}: **{mean_sd(diffs[views])} points** (mean ± sample sd).")
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--weights", type=Path, help="backbone checkpoint for the seeds whose members are missing")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--runs", type=Path, default=REPO / "benchmarks" / "runs")
    p.add_argument("--section", default="fer2013-fusion-seeds")
    p.add_argument("--no-write", action="store_true")
    ns = p.parse_args()
    seeds = [int(s) for s in ns.seeds.split(",")]
    for seed in seeds:
        for recipe in TWINS:
            if all(Path(f"{prefix(recipe, seed)}.{v}.probs.npz").is_file() for v in VIEWS):
                continue
            if ns.weights is None or not ns.weights.is_file():
                raise SystemExit(f"seed {seed}, {recipe}: no saved member and no --weights checkpoint to train it from")
            train(recipe, seed, ns.weights, ns.epochs, ns.data, ns.runs, not ns.no_write)
    body = [
        f"## FER2013: CNN + HOG/landmark fusion against CNN-only, seeds {', '.join(map(str, seeds))} (Kumari's comparison)",
        "",
        "Per seed, both twins (`recipes/fer2013_cnn_only.yaml`, `recipes/fer2013_fusion.yaml`) start small_cnn from the",
        f"same hour-recipe checkpoint and train {ns.epochs} epochs (5 with the backbone frozen, Adam 1e-3; then all layers,",
        "SGD Nesterov 1e-3); PrivateTest, plain and with the 18 TTA views. Figures are computed from the saved members",
        "(`benchmarks/members/fer2013_<twin>_from_hour_seed<N>`; benchmarks/members/README.md names each one's backbone).",
        "",
        *table(seeds),
        "- Kumari: +2.05 (ResNet-50) and +1.80 (Inception-ResNet v2) with large pretrained backbones.",
    ]
    publish(ns.section, body, write=not ns.no_write)


if __name__ == "__main__":
    main()
