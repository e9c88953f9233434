"""Same seed, same numbers: short seeded runs of every kind of recipe, for proving a restructuring changed nothing.

python benchmarks/same_numbers.py --json before.json [--data ../shared/data] [--out DIR]
python benchmarks/same_numbers.py --json after.json --compare before.json   # table of both, to docs/benchmarks.md
python benchmarks/same_numbers.py --json after.json --compare before.json --report   # the table only, nothing run

Each run goes through the real CLI (``python -m emoframe ...`` in a subprocess, one torch thread) on real FER2013
or on sets generated in their datasets' layouts by tests/fixtures/ (AFEW clips, RECOLA recordings, multi-label
videos, all of real FER2013 faces):

- ``fer2013_small_cnn``: 2,000 training images, 1 epoch, then ``test`` (PrivateTest accuracy, macro F1);
- ``fer2013_fusion``: the HOG + landmark fusion recipe on 600 images, 2 epochs (1 frozen), then ``test``;
- ``afew_lstm``: ``afew_cnn_lstm`` shrunk as in the tests, 4 epochs, ``test`` on the held-out clips;
- ``afew_svm``: ``extract`` (6 TTA views) of that checkpoint, then ``svm`` (STAT* + FFT, without and with prior);
- ``recola_ccc``: ``recola_ccc`` shrunk, 4 epochs, ``test``: CCC before and after post-processing;
- ``multilabel``: ``multilabel_video_bce`` shrunk, 3 epochs, ``test`` (AUROC, F1 with tuned thresholds).

The recipe keys a version of emoframe takes are in ``LAYOUT``: that is the only part that changes between
the runs compared (the recipes' sections were regrouped by the consolidation of issue 12).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import REPO, fixture, publish

QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "loggers.wandb=null"]

# Recipe keys of this version (the consolidation regrouped data sections into loader:, window:, clip:, ...).
LAYOUT = {
    "loader": lambda batch, workers=0: [f"data.loader.batch_size={batch}", f"data.loader.num_workers={workers}"],
    "video_small": [
        "data.image.size=48",
        "data.image.channels=1",
        "data.image.mean=0.5",
        "data.image.std=0.5",
        "data.workers=1",
    ],
    "window": lambda n: [f"data.windows.size={n}"],
    "clip_frames": lambda n: [f"data.clip.frames={n}"],
    "temporal": lambda hidden: [f"model.temporal.hidden_size={hidden}"],
}


TINY_CNN = {"name": "small_cnn", "widths": [8, 16, 32]}


def shrunk(out: Path, name: str, overrides: list[str], **replace: object) -> str:
    """recipes/<name>.yaml with ``overrides``, then whole sections (or ``model.backbone``) replaced, saved to ``out``.

    Replacing (not merging) a component section is what a smaller component needs: the new one shares no keys.
    """
    from emoframe.config import load_recipe, save_recipe

    cfg = load_recipe(REPO / "recipes" / f"{name}.yaml", overrides)
    for key, value in replace.items():
        if key == "backbone":
            cfg["model"]["backbone"] = value
        elif value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path = out / f"{name}.yaml"
    save_recipe(cfg, path)
    return str(path)


def run(args: list[str], env: dict[str, str]) -> str:
    """One CLI command; its stdout (a failure stops the script with the command's stderr tail)."""
    proc = subprocess.run([sys.executable, "-m", "emoframe", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): emoframe {' '.join(args)}\n{proc.stderr[-3000:]}")
    return proc.stdout


def metrics(stdout: str) -> dict[str, float]:
    """The ``key<TAB>value`` lines ``emoframe test`` prints."""
    out = {}
    for line in stdout.splitlines():
        m = re.fullmatch(r"(\S+)\t(-?[0-9.]+(?:e-?\d+)?|nan)", line.strip())
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def best(runs: Path, name: str) -> Path:
    return runs / name / "version_0" / "checkpoints" / "best.ckpt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--json", required=True, help="where to write the figures")
    parser.add_argument("--compare", help="figures of an earlier run: print both and write docs/benchmarks.md")
    parser.add_argument("--only", default="", help="comma-separated subset of the runs")
    parser.add_argument("--about", default="a restructuring", help="what changed between before and after")
    parser.add_argument("--report", action="store_true", help="compare the existing --json with --compare; run nothing")
    ns = parser.parse_args()
    if ns.report:
        compare(json.loads(Path(ns.compare).read_text()), json.loads(Path(ns.json).read_text()), ns.about)
        return
    data = Path(ns.data).resolve()
    fer = data / "fer2013" / "fer2013.zip"
    out = Path(ns.out or tempfile.mkdtemp(prefix="same_numbers_")).resolve()
    runs = out / "runs"
    env = {**os.environ, "WANDB_MODE": "offline", "EMOFRAME_CACHE": str(out / "cache"), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    only = {s for s in ns.only.split(",") if s}
    want = lambda name: not only or name in only  # noqa: E731
    L = LAYOUT
    results: dict[str, dict[str, float]] = {}
    common = [f"run.dir={runs}", *QUIET]

    if want("fer2013_small_cnn"):
        args = [
            f"data.root={fer}",
            "data.subset=2000",
            "trainer.max_epochs=1",
            "scheduler.warmup_epochs=0",
            *L["loader"](64),
        ]
        run(["fit", "recipes/fer2013_small_cnn.yaml", *args, *common], env)
        results["fer2013_small_cnn"] = metrics(run(["test", "--ckpt", str(best(runs, "fer2013_small_cnn"))], env))

    if want("fer2013_fusion"):
        args = [f"data.root={fer}", "data.subset=600", "trainer.max_epochs=2", "callbacks.freeze_unfreeze.epochs=1"]
        run(["fit", "recipes/fer2013_fusion.yaml", *args, *L["loader"](64), *common], env)
        results["fer2013_fusion"] = metrics(run(["test", "--ckpt", str(best(runs, "fer2013_fusion"))], env))

    if want("afew_lstm") or want("afew_svm"):
        make_afew = fixture("make_afew").make_afew

        afew = out / "afew"
        if not afew.is_dir():
            make_afew(afew, fer)
        args = [
            f"data.root={afew}",
            "data.folders.test=Heldout_AFEW",
            *L["clip_frames"](8),
            *L["loader"](4),
            "data.workers=1",
            "model.freeze_backbone=false",
            "model.backbone.widths=[8,16,32]",
            *L["temporal"](32),
            "trainer.max_epochs=4",
            *common,
        ]
        # Adam, no schedule, as tests/test_video_classification.py
        run(["fit", shrunk(out, "afew_cnn_lstm", args, optimizer={"name": "adam", "lr": 3.0e-3}, scheduler=None)], env)
        ckpt = best(runs, "afew_cnn_lstm")
        results["afew_lstm"] = metrics(run(["test", "--ckpt", str(ckpt)], env))
        if want("afew_svm"):
            feats = out / "afew_features"
            run(["extract", "--ckpt", str(ckpt), "--output", str(feats), "--tta", "6", "--splits", "train,val,test",
                 *L["loader"](4)], env)  # fmt: skip
            svm_env = {**env, "AFEW_FEATURES_A": str(feats)}
            printed = run(["svm", "recipes/afew_stat_svm.yaml", f"run.dir={runs}", "splits.eval=test"], svm_env)
            results["afew_svm"] = {
                f"{m.group(1)}/{m.group(2)}": float(m.group(3))
                for m in re.finditer(r"^(\S+).*?(\w+_accuracy)=([0-9.]+)", printed, re.M)
            }

    if want("recola_ccc"):
        make_recola = fixture("make_recola").make_recola

        recola = out / "recola"
        if not recola.is_dir():
            make_recola(recola, fer)
        args = [
            f"data.root={recola}",
            *L["window"](25),
            *L["loader"](4),
            *L["video_small"],
            *L["temporal"](32),
            "optimizer.lr=3.0e-3",
            "trainer.max_epochs=4",
        ]
        run(["fit", shrunk(out, "recola_ccc", [*args, *common], backbone=TINY_CNN)], env)
        results["recola_ccc"] = metrics(run(["test", "--ckpt", str(best(runs, "recola_ccc"))], env))

    if want("multilabel"):
        make_multilabel = fixture("make_multilabel").make_multilabel

        ml = out / "multilabel"
        if not ml.is_dir():
            make_multilabel(ml, fer, participants=12)
        args = [
            f"data.videos={ml / 'videos'}",
            f"data.annotations={ml / 'annotations.csv'}",
            "data.split.ratios=[0.7,0.15,0.15]",
            *L["window"](25),
            *L["loader"](4),
            *L["video_small"],
            *L["temporal"](32),
            "optimizer.lr=3.0e-3",
            "trainer.max_epochs=3",
        ]
        run(["fit", shrunk(out, "multilabel_video_bce", [*args, *common], backbone=TINY_CNN)], env)
        results["multilabel"] = metrics(run(["test", "--ckpt", str(best(runs, "multilabel_video_bce"))], env))

    Path(ns.json).write_text(json.dumps(results, indent=1, sort_keys=True))
    print(json.dumps(results, indent=1, sort_keys=True))
    if ns.compare:
        compare(json.loads(Path(ns.compare).read_text()), results, ns.about)


def compare(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], about: str = "a restructuring"
) -> None:
    """A markdown table of both runs; every figure printed to 4 decimals, as ``emoframe test`` prints them."""
    rows = ["| run | metric | before | after | same |", "|---|---|---|---|---|"]
    same = total = 0
    for run_name in sorted(set(before) | set(after)):
        keys = sorted(set(before.get(run_name, {})) | set(after.get(run_name, {})))
        for key in keys:
            b, a = before.get(run_name, {}).get(key), after.get(run_name, {}).get(key)
            fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            equal = b is not None and a is not None and fmt(a) == fmt(b)
            same += equal
            total += 1
            rows.append(f"| {run_name} | {key} | {fmt(b)} | {fmt(a)} | {'yes' if equal else '**no**'} |")
    body = (
        f"## Same seed, same numbers ({about})\n\n"
        "`before`: `python benchmarks/same_numbers.py --json before.json` on a checkout of the last commit before\n"
        "the change (a git worktree); `after`: `python benchmarks/same_numbers.py --json after.json --compare\n"
        "before.json` on this one. Every run is seeded (the recipes' `seed: 0`), so a restructuring that changes\n"
        "nothing changes no figure.\n\n"
        f"{same} of {total} figures equal to the printed precision.\n\n" + "\n".join(rows)
    )
    print(body)
    publish("same_numbers", body)


if __name__ == "__main__":
    main()
