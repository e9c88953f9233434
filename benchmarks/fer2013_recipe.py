"""Train a FER2013 recipe with `emoframe fit`, test its best checkpoint, and record accuracy and wall time.

python benchmarks/fer2013_recipe.py recipes/fer2013_small_cnn.yaml [key=value ...] [--data ../shared/data]
    [--section NAME]  (another section than fer2013-<recipe>, e.g. for another seed: seed=1 --section ...-seed1)
    [--members PREFIX]  (also save the best checkpoint's val/test probabilities, PREFIX.none.probs.npz and, when the
                         recipe tests with TTA, PREFIX.<views>.probs.npz: small files to commit, so that ensemble
                         members outlive the machine that trained them; `emoframe ensemble` takes them as members)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], log: Path) -> str:
    with log.open("a") as f:  # a file, not a pipe: W&B's service process may outlive the run
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True, cwd=REPO)
    return log.read_text()


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(REPO)
    except ValueError:
        return path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--runs", default=str(REPO / "benchmarks" / "runs"))
    p.add_argument("--section", help="the section of docs/benchmarks.md to write (default fer2013-<recipe>)")
    p.add_argument("--members", help="save the val/test probabilities as PREFIX.<views>.probs.npz")
    ns = p.parse_args()
    name = Path(ns.recipe).stem
    zip_path = Path(ns.data) / "fer2013" / "fer2013.zip"
    overrides = [f"data.root={zip_path}", f"run.dir={ns.runs}", "trainer.enable_progress_bar=false", *ns.overrides]
    log = Path(ns.runs) / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    os.environ.setdefault("WANDB_MODE", "offline")
    t0 = time.perf_counter()
    out = run([sys.executable, "-m", "emoframe", "fit", ns.recipe, *overrides], log)
    fit_s = time.perf_counter() - t0
    run_dir = Path(next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Run directory: ")))
    if not run_dir.is_absolute():
        run_dir = REPO / run_dir
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    test_overrides = [f"data.root={zip_path}", "trainer.enable_progress_bar=false"]
    test = [sys.executable, "-m", "emoframe", "test", "--ckpt", str(ckpt)]
    tta_views = OmegaConf.load(run_dir / "config.yaml").get("test", {}).get("tta")
    probs = [f"--save-probs={ns.members}.{tta_views}.probs.npz"] if ns.members and tta_views else []
    if ns.members:
        Path(ns.members).parent.mkdir(parents=True, exist_ok=True)
    out = run([*test, *probs, *test_overrides], log)  # the TTA pass's test probabilities are saved, not redone
    if ns.members:
        run([*test, "--tta=none", f"--save-probs={ns.members}.none.probs.npz", *test_overrides], log)
    metrics = {}
    for line in out.splitlines():
        if line.startswith("test") and "\t" in line:
            key, value = line.split("\t")
            metrics[key] = float(value)
    import torch

    epochs = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] + 1
    tta = ""
    if "test_tta/acc" in metrics:  # the recipe's test.tta: emoframe test reports the plain and the TTA figures
        tta = (
            f"\n\nWith the recipe's test-time augmentation (`test.tta`): PrivateTest accuracy "
            f"{metrics['test_tta/acc']:.4f} (plain {metrics['test_plain/acc']:.4f}), macro F1 "
            f"{metrics['test_tta/macro_f1']:.4f} (plain {metrics['test_plain/macro_f1']:.4f})."
        )
    recall = ", ".join(f"{k.split('/')[-1]} {v:.2f}" for k, v in metrics.items() if k.startswith("test/recall/"))
    body = (
        f"## FER2013 recipe `{name}`\n\n"
        f"| recipe | overrides | PrivateTest accuracy | macro F1 | best epoch | fit wall time |\n|---|---|---|---|---|---|\n"
        f"| `{ns.recipe}` | `{' '.join(ns.overrides) or '-'}` | {metrics['test/acc']:.4f} | {metrics['test/macro_f1']:.4f} | "
        f"{epochs} | {fit_s / 60:.1f} min |\n\n"
        f"Per-class recall on PrivateTest: {recall}.  Confusion matrix: `{_relative(run_dir / 'test')}`.{tta}"
    )
    write_section(ns.section or f"fer2013-{name}", body)
    if ns.members:  # the fit's figures beside the probabilities: fer2013_seeds.py --members reads them
        save_run_summary(Path(f"{ns.members}.run.json"), run_dir, ns.recipe, ns.overrides)


def save_run_summary(path: Path, run_dir: Path, recipe: str, overrides: list[str]) -> None:
    import json

    from fer2013_seeds import run_summary

    from emoframe.files.atomic import atomic_write

    with atomic_write(path) as f:
        backbone = os.environ.get("EMOFRAME_BACKBONE_WEIGHTS")  # the start of a fine-tuned twin (Kumari's recipes)
        json.dump({**run_summary(run_dir), "recipe": recipe, "overrides": overrides, "backbone": backbone}, f, indent=1)


if __name__ == "__main__":
    main()
