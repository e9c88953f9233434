"""FER2013 on an equal CPU budget: dlib_resnet fine-tuned from face recognition, the same network from scratch,
and small_cnn and resnet18 from scratch (issue 15, item 2's table).

python benchmarks/fer2013_budget.py [--minutes 15] [--only LABEL,LABEL] [--seeds 0,1,2] [--data ../shared/data]
    [--no-write]

Each model gets the same wall-clock budget for `emoframe fit` (`trainer.max_time`, validation included) and an
epoch count planned so that its schedule (cosine, poly, step) ends inside it, from the epoch times measured in
earlier runs on this machine (PLANS); the table shows planned against done, so a run the clock stopped early is
visible. Then `emoframe test` on the best checkpoint by PublicTest. Runs are kept under --runs/<label> (seed 0) and
--runs/<label>_seed<N>: a run that already has test figures is read back, not retrained (resume after an
interruption; --fresh retrains). With several seeds the table ends with each model's mean and sample sd.
The frozen rows (linear head, SVMs) are in the section `fer2013-frozen-fr-112` (benchmarks/fer2013_frozen_fr.py).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from harness import DATA, QUIET, REPO, fer2013_zip, fit, mean_sd, publish, read_run, test
from omegaconf import OmegaConf

# label -> (what it is, recipe, overrides, minutes per epoch, input side). The minutes plan the epochs; they were
# measured on this 2-core machine on 2026-12-02 (Lightning's Timer over a run's epochs, validation included):
# small_cnn 2.5, resnet18 2.8; dlib_resnet 3.9 at 112 px and 0.6 for stage 3 at 48 px (planned at 4.3 and 0.9).
PLANS: dict[str, tuple[str, str, list[str], float, int]] = {
    "dlib_fr_112": (
        "dlib_resnet, face-recognition weights, fine-tuned (Knyazev's SGD)",
        "recipes/cascade_knyazev_1_fer2013.yaml",
        [],
        4.3,
        112,
    ),
    "dlib_fr_stage3_48": (
        "dlib_resnet stage 3, face-recognition weights, fine-tuned (Knyazev's SGD)",
        "recipes/cascade_knyazev_1_fer2013.yaml",
        ["model.backbone.stage=3", "data.image.size=48"],
        0.9,
        48,
    ),
    "dlib_fr_112_lr05": (
        "dlib_resnet, face-recognition weights, fine-tuned at the scratch recipes' lr 0.05",
        "recipes/cascade_knyazev_1_fer2013.yaml",
        ["optimizer.lr=0.05"],
        4.3,
        112,
    ),
    "dlib_scratch_112": (
        "dlib_resnet, random init (the scratch recipes' lr 0.05)",
        "recipes/cascade_knyazev_1_fer2013.yaml",
        ["model.backbone.pretrained=false", "optimizer.lr=0.05"],
        4.3,
        112,
    ),
    "dlib_scratch_112_lr5e4": (
        "dlib_resnet, random init, Knyazev's SGD (lr 5e-4: only the initial weights differ)",
        "recipes/cascade_knyazev_1_fer2013.yaml",
        ["model.backbone.pretrained=false"],
        4.3,
        112,
    ),
    "small_cnn": ("small_cnn, from scratch", "recipes/fer2013_small_cnn.yaml", [], 2.5, 48),
    "resnet18": ("timm resnet18, from scratch", "recipes/fer2013_resnet18.yaml", [], 2.8, 48),
}


def planned_epochs(minutes: float, per_epoch: float) -> int:
    """Epochs whose schedule ends inside the budget, with 10% to spare for the machine's variation."""
    return max(1, int(0.9 * minutes / per_epoch))


def train(label: str, seed: int, ns: argparse.Namespace, zip_path: Path) -> Path:
    _, recipe, overrides, per_epoch, _ = PLANS[label]
    out_dir = Path(ns.runs) / (label if seed == 0 else f"{label}_seed{seed}")
    if ns.fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    done = sorted(out_dir.glob("*/version_*/test/csv/version_*/metrics.csv"))
    if done:
        print(f"{label}: reusing {done[-1].parents[3]}", flush=True)
        return done[-1].parents[3]
    out_dir.mkdir(parents=True, exist_ok=True)
    hms = f"00:00:{int(ns.minutes):02d}:{round(60 * (ns.minutes % 1)):02d}"
    budget = [f"trainer.max_time={hms}", f"trainer.max_epochs={planned_epochs(ns.minutes, per_epoch)}", f"seed={seed}"]
    print(f"{label} seed {seed}: fit {recipe} {' '.join([*budget, *overrides])}", flush=True)
    root = [f"data.root={zip_path}", *QUIET]
    result = fit(recipe, [*root, f"run.dir={out_dir}", *budget, *overrides])
    test(result.best, root)  # PrivateTest with the best checkpoint by PublicTest: its figures land in the run folder
    return Path(result.run_dir)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=15.0, help="each model's fit budget (trainer.max_time)")
    p.add_argument("--only", help="comma-separated labels of PLANS (default: all, in order)")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--runs", default=str(REPO / "benchmarks" / "runs" / "fer2013_budget"))
    p.add_argument("--seeds", default="0", help="comma-separated seeds, each model trained once per seed")
    p.add_argument("--fresh", action="store_true", help="retrain labels that already have a run")
    p.add_argument("--section", default="fer2013-equal-budget")
    p.add_argument("--no-write", action="store_true")
    ns = p.parse_args()
    labels = ns.only.split(",") if ns.only else list(PLANS)
    unknown = [lb for lb in labels if lb not in PLANS]
    if unknown:
        raise SystemExit(f"--only: unknown label(s) {', '.join(unknown)}; expected some of {', '.join(PLANS)}")
    zip_path = fer2013_zip(ns.data)
    if not zip_path.is_file():
        raise SystemExit(f"--data: expected FER2013 at {zip_path}")
    seeds = [int(s) for s in ns.seeds.split(",")]
    rows = []
    for seed in seeds:  # seed-major: an interrupted sweep has every model at the first seeds
        for label in labels:
            run_dir = train(label, seed, ns, zip_path)
            row = read_run(run_dir)
            row["label"] = label
            row["planned"] = OmegaConf.load(run_dir / "config.yaml").trainer.max_epochs  # what the run was given
            rows.append(row)
    rows.sort(key=lambda r: (labels.index(r["label"]), r["seed"]))
    lines = [
        f"## FER2013 on an equal CPU budget: {ns.minutes:g} minutes of `emoframe fit` each, "
        f"{'seed 0' if seeds == [0] else f'seeds {ns.seeds}'} (face-recognition pretraining against scratch)",
        "",
        "Each fit has the same `trainer.max_time`; its epochs are planned so that the schedule ends inside it "
        "(from this machine's epoch times). Fit wall time is Lightning's `Timer`, validation included. "
        f"PrivateTest with the best checkpoint by PublicTest, no TTA, seeds {ns.seeds}. The frozen "
        "dlib_resnet rows (linear head, SVMs) are in the section *dlib_resnet frozen* (`fer2013_frozen_fr.py`).",
        "",
        "| model | recipe and overrides | input | seed | epochs planned / done | best epoch | fit wall time | "
        "PrivateTest acc % | macro F1 % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        what, recipe, overrides, _, side = PLANS[r["label"]]
        lines.append(
            f"| {what} | `{recipe}` `{' '.join(overrides) or '-'}` | {side} px | {r['seed']} | "
            f"{r['planned']} / {r['epochs']} | {r['best_epoch']} | {r['fit_min']:.1f} min | "
            f"{100 * r['acc']:.2f} | {100 * r['macro_f1']:.2f} |"
        )
    if len(seeds) > 1:
        lines += ["", "| model | seeds | PrivateTest acc % (mean ± sd) | macro F1 % (mean ± sd) |", "|---|---|---|---|"]
        for label in labels:
            mine = [r for r in rows if r["label"] == label]
            lines.append(
                f"| {PLANS[label][0]} | {len(mine)} | {mean_sd([r['acc'] for r in mine])} | "
                f"{mean_sd([r['macro_f1'] for r in mine])} |"
            )
    pairs = (
        ("dlib_fr_112", "dlib_scratch_112_lr5e4", "same lr 5e-4, only the initial weights differ"),
        ("dlib_fr_112", "dlib_scratch_112", "each at its lr: 5e-4 fine-tuning, 0.05 from scratch"),
        ("dlib_fr_112_lr05", "dlib_scratch_112", "both at lr 0.05"),
    )
    for label, base, how in pairs:
        fr = {r["seed"]: r["acc"] for r in rows if r["label"] == label}
        scratch = {r["seed"]: r["acc"] for r in rows if r["label"] == base}
        paired = sorted(set(fr) & set(scratch))
        if paired:
            gains = [fr[s] - scratch[s] for s in paired]
            gain = mean_sd(gains) if len(gains) > 1 else f"{100 * gains[0]:+.2f}"
            lines += [
                "",
                f"Face-recognition pretraining against scratch, same network and budget, {how} "
                f"({len(paired)} seed(s), paired): {gain} points.",
            ]
    publish(ns.section, lines, write=not ns.no_write)


if __name__ == "__main__":
    main()
