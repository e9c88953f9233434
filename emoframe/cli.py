"""`emoframe fit | validate | test | predict | extract | svm | list | config`.

Recipe errors, data errors and weight errors end the command with one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any

RECIPE_SUFFIXES = (".yaml", ".yml")
ENVIRONMENT_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)
"""Failures of the machine, not of emoframe: a read-only, forbidden or full output folder ends in one line."""


def _split_args(args: list[str]) -> tuple[str | None, list[str]]:
    """The first *.yaml argument is the recipe; ``key=value`` arguments are overrides."""
    recipe = None
    overrides = []
    for a in args:
        if recipe is None and a.endswith(RECIPE_SUFFIXES) and "=" not in a:
            recipe = a
        else:
            overrides.append(a)
    return recipe, overrides


def _load(recipe: str | None, overrides: list[str], ckpt: str | None) -> dict[str, Any]:
    """The recipe file's recipe, else the one stored in ``--ckpt PATH``, with the overrides applied."""
    from emoframe.checkpoints import read_checkpoint
    from emoframe.config import checkpoint_recipe, load_recipe
    from emoframe.registry import RecipeError

    if recipe:
        return load_recipe(recipe, overrides)
    if ckpt and ckpt not in ("best", "last"):
        return checkpoint_recipe(stored_recipe(read_checkpoint(ckpt)), overrides)
    raise RecipeError("Give a recipe file (recipes/*.yaml), or --ckpt PATH to a checkpoint written by emoframe")


def stored_recipe(checkpoint: Any, hint: str = "give the recipe file too") -> dict[str, Any]:
    """A checkpoint's recipe in today's keys (one line on stderr says what an older emoframe called them)."""
    from emoframe.builder import upgrade_recipe

    recipe, moved = upgrade_recipe(checkpoint.require_recipe(hint))
    if moved:
        print(f"Note: {checkpoint.path} has an older recipe; read {', '.join(moved)}", file=sys.stderr)
    return recipe


def finish_runs() -> None:
    """Close the W&B run, so a later command in the same process starts its own instead of reusing it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def cmd_fit(ns: argparse.Namespace) -> None:
    from emoframe.builder import build, find_checkpoint, new_run_dir, run_dir_of_checkpoint
    from emoframe.checkpoints import check_fits, read_checkpoint

    cfg = _load(ns.recipe, ns.overrides, None)
    ckpt = None
    run_dir = None
    checkpoint = None
    if ns.resume:
        ckpt = find_checkpoint(cfg, ns.resume)
        checkpoint = read_checkpoint(ckpt)  # a bad file fails here, in one line
        run_dir = run_dir_of_checkpoint(ckpt)
        print(f"Resuming from {ckpt}", file=sys.stderr)
    run_dir = run_dir or new_run_dir(cfg)
    fresh = not run_dir.exists()
    try:
        built = build(cfg, "fit", run_dir=run_dir, resuming=checkpoint is not None)
        if checkpoint is not None:
            check_fits(checkpoint, built.task)
        print(f"Run directory: {built.run_dir}", file=sys.stderr)
        built.trainer.fit(built.task, datamodule=built.datamodule, ckpt_path=str(ckpt) if ckpt else None)
    except BaseException:
        remove_unstarted_run(run_dir, fresh)
        raise


def remove_unstarted_run(run_dir: Path, fresh: bool) -> None:
    """A run folder this command made that holds no checkpoint yet is removed, so a failed start uses up no version."""
    if fresh and int(os.environ.get("LOCAL_RANK", "0")) == 0 and not list(run_dir.glob("checkpoints/*.ckpt")):
        shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the recipe's folder too, when this was its first run
            run_dir.parent.rmdir()


def cmd_predict(ns: argparse.Namespace) -> None:
    """``predict --ckpt X INPUT...`` (pictures, videos, streams: ``emoframe.predict``), else the datamodule's split."""
    from emoframe.predict import run_predict, split_inputs

    inputs, rest = split_inputs(ns.args)
    if not inputs:
        _evaluate(ns, "predict")
        return
    run_predict(ns, inputs, rest)


def _evaluate(ns: argparse.Namespace, stage: str) -> None:
    from emoframe.builder import build, find_checkpoint, run_dir_of_checkpoint
    from emoframe.checkpoints import check_fits, read_checkpoint

    cfg = _load(ns.recipe, ns.overrides, ns.ckpt)
    ckpt = find_checkpoint(cfg, ns.ckpt) if ns.ckpt else None
    checkpoint = read_checkpoint(ckpt) if ckpt else None  # a bad file fails here, in one line
    trained_in = run_dir_of_checkpoint(ckpt) if ckpt else None
    if stage == "predict":  # --output is the predictions file; the run's logs go beside the checkpoint's run
        run_dir = trained_in or (Path(ns.output).parent if ns.output else Path("runs/eval"))
    else:  # --output is where the reports go (another data set's confusion matrix must not overwrite the run's)
        run_dir = Path(ns.output) if ns.output else (trained_in or Path("runs/eval"))
    built = build(cfg, stage, run_dir=run_dir)
    if checkpoint is not None:
        check_fits(checkpoint, built.task)
    if ckpt is None:
        print("Warning: no --ckpt given: evaluating freshly initialised weights", file=sys.stderr)
    ckpt_path = str(ckpt) if ckpt else None
    if stage == "predict":
        path = Path(ns.output) if ns.output else built.run_dir / "predict" / "predictions.csv"
        writer = prediction_writer(cfg, built.task, path)
        built.trainer.callbacks.append(writer)
        outputs = built.trainer.predict(built.task, datamodule=built.datamodule, ckpt_path=ckpt_path)
        if built.trainer.is_global_zero:
            if writer.paths is None:  # nothing was predicted: the writer still leaves its (empty) file
                writer.write_all(built.trainer, built.task, list(outputs or []))
            print(f"Predictions: {path}")
        return
    run = built.trainer.validate if stage == "validate" else built.trainer.test
    results = run(built.task, datamodule=built.datamodule, ckpt_path=ckpt_path)
    if built.trainer.is_global_zero and results:
        print(f"Reports: {built.task.report_dir}")
        for key, value in sorted(results[0].items()):
            print(f"{key}\t{value:.4f}")


def prediction_writer(cfg: dict[str, Any], task: Any, path: Path) -> Any:
    """The recipe's ``predict.writer`` (a registered prediction writer), else the task's ``prediction_writer``."""
    from emoframe.callbacks.writers import PredictionWriter
    from emoframe.registry import CALLBACKS, RecipeError

    section = cfg.get("predict") or {}
    unknown = sorted(set(section) - {"writer"})
    if unknown:
        raise RecipeError(f"Unknown key predict.{unknown[0]}: the predict: section takes writer: {{name: ...}}")
    spec = section.get("writer") or {"name": task.prediction_writer}
    writer = CALLBACKS.build(spec, "predict.writer", path=str(path))
    if not isinstance(writer, PredictionWriter):
        raise RecipeError(
            f"predict.writer: {type(writer).__name__} is not a prediction writer (emoframe.callbacks.writers)"
        )
    return writer


def cmd_extract(ns: argparse.Namespace) -> None:
    from emoframe.builder import build_datamodule
    from emoframe.checkpoints import (
        find_checkpoint,
        load_backbone,
        read_checkpoint,
        run_dir_of_checkpoint,
        warn_data_differs,
    )
    from emoframe.clipsvm.extract import check_request, run_extract
    from emoframe.clipsvm.tta import parse_tta
    from emoframe.config import checkpoint_recipe, load_recipe
    from emoframe.registry import RecipeError, load_plugins

    transforms = parse_tta(ns.tta)
    splits = [s.strip() for s in ns.splits.split(",") if s.strip()]
    if ns.ckpt in ("best", "last"):
        if not ns.recipe:
            raise RecipeError(f"--ckpt {ns.ckpt} needs the recipe it was trained with; or give --ckpt PATH")
        ckpt = find_checkpoint(load_recipe(ns.recipe, ns.overrides), ns.ckpt)
    else:
        ckpt = find_checkpoint({}, ns.ckpt)
    checkpoint = read_checkpoint(ckpt)
    stored = stored_recipe(checkpoint, "the model comes from it; extract from a checkpoint written by emoframe fit")
    cfg = checkpoint_recipe(stored, ns.overrides, data_from=ns.recipe)  # the data: section may come from ns.recipe
    run_dir = run_dir_of_checkpoint(ckpt)
    data = cfg.get("data") or {}
    if ns.output:
        output = Path(ns.output)
    elif run_dir is not None:
        output = run_dir / "features" / str(data.get("name") or str(data.get("class_path", "data")).rsplit(".")[-1])
    else:
        raise RecipeError("--output: give the folder to write <split>.npz to")
    check_request(splits, ns.batch_size)
    load_plugins(list(cfg.get("imports") or []))
    if data.get("features"):  # hand-crafted features (fusion recipes) are not the backbone's: not computed
        data = {**data, "features": None}
    datamodule = build_datamodule({**cfg, "data": data})
    trained_data = stored.get("data") or {}
    warn_data_differs(trained_data, data)
    model = cfg.get("model") or {}
    channels = int(getattr(datamodule, "channels", 3))
    trained_channels = (trained_data.get("image") or {}).get("channels")
    backbone = load_backbone(checkpoint, model.get("backbone"), channels, trained_channels)
    source = {
        "checkpoint": {"path": str(ckpt.resolve()), "sha256": checkpoint.sha256()},
        "backbone": model.get("backbone"),
        "data": data,
    }
    results = run_extract(
        datamodule,
        backbone,
        output,
        splits,
        transforms,
        source,
        batch_size=ns.batch_size,
        device=ns.device,
        overwrite=ns.overwrite,
        channels_last=bool(model.get("channels_last", False)),
    )
    for r in results:
        state = "already complete" if r.skipped else "written"
        print(f"{r.path}\t{r.clips} clips\t{r.frames} frames\t{r.dim} features\t{state}")


def cmd_svm(ns: argparse.Namespace) -> None:
    from emoframe.builder import new_run_dir
    from emoframe.clipsvm.run import find_model, fit_svm, predict_svm
    from emoframe.config import load_svm_recipe, save_recipe
    from emoframe.registry import RecipeError

    if not ns.recipe:
        raise RecipeError("Give an SVM recipe file (e.g. recipes/afew_stat_svm.yaml)")
    cfg = load_svm_recipe(ns.recipe, ns.overrides)
    if ns.predict:
        model = find_model(cfg, ns.model)
        path, accuracy = predict_svm(cfg, model, ns.split, Path(ns.output) if ns.output else None)
        print(f"Scores: {path}")
        if accuracy is not None:
            print(f"{ns.split}_accuracy\t{accuracy:.4f}")
        return
    run_dir = new_run_dir(cfg)
    rows = fit_svm(cfg, run_dir)
    save_recipe(cfg, run_dir / "config.yaml")
    print(f"Run directory: {run_dir}", file=sys.stderr)
    for row in rows:
        shown = [f"{k}={v:.4f}" for k, v in row.items() if k.endswith("_accuracy") and isinstance(v, float)]
        extra = f"C={row['C']:g}" if "C" in row else f"prior={row['prior']}" if "prior" in row else ""
        print(f"{row['model']:<24} {extra:<16} {'  '.join(shown)}")


def cmd_list(ns: argparse.Namespace) -> None:
    import emoframe.components  # noqa: F401
    from emoframe.registry import REGISTRIES, RecipeError, load_plugins

    load_plugins()
    kinds = [ns.kind] if ns.kind else list(REGISTRIES)
    for kind in kinds:
        registry = REGISTRIES.get(kind)
        if registry is None:
            registry = next((r for r in REGISTRIES.values() if r.kind == kind), None)
        if registry is None:
            raise RecipeError(f"Unknown kind '{kind}'. Kinds: {', '.join(REGISTRIES)}")
        print(f"{registry.plural}:")
        for name, doc in registry.describe():
            print(f"  {name:<20} {doc}")
        if not len(registry):
            print("  (none registered yet)")


def cmd_config(ns: argparse.Namespace) -> None:
    """Print the resolved recipe once it passes every check ``fit`` makes before training."""
    from emoframe.builder import check
    from emoframe.clipsvm.run import plan_from_recipe
    from emoframe.config import compose, load_svm_recipe, to_yaml

    if ns.recipe and "svm" in compose(ns.recipe):  # an `emoframe svm` recipe: checked as that command checks it
        cfg = load_svm_recipe(ns.recipe, ns.overrides)
        plan_from_recipe(cfg)
    else:
        cfg = _load(ns.recipe, ns.overrides, None)
        check(cfg)
    print(to_yaml(cfg), end="")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoframe", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    def recipe_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("args", nargs="*", metavar="RECIPE [key=value ...]", help="recipe file, then overrides")

    p = sub.add_parser("fit", help="train a recipe")
    recipe_args(p)
    p.add_argument("--resume", metavar="last|PATH", help="continue from the last checkpoint or a path")
    p.set_defaults(func=cmd_fit)
    for stage in ("validate", "test", "predict"):
        p = sub.add_parser(stage, help=f"{stage} a trained model")
        recipe_args(p)
        p.add_argument("--ckpt", metavar="best|last|PATH", help="checkpoint (default: none)")
        p.add_argument("--output", help="where to write outputs (predict: CSV path; plots go beside it)")
        p.set_defaults(func=lambda ns, s=stage: _evaluate(ns, s))
        if stage == "predict":
            p.set_defaults(func=cmd_predict)
            predict_args(p)
    p = sub.add_parser("extract", help="per-frame backbone features of a checkpoint, for clip SVMs")
    recipe_args(p)
    p.add_argument("--ckpt", required=True, metavar="PATH|best|last", help="checkpoint (its recipe gives the model)")
    p.add_argument("--output", help="folder for <split>.npz (default: <run>/features/<data name>)")
    p.add_argument("--splits", default="train,val", help="comma-separated: train, val, test, predict")
    p.add_argument("--tta", default="18", help="views averaged per frame: 1-18 of the paper's set, or a YAML list")
    p.add_argument("--batch-size", type=int, default=64, help="frames per forward pass (times the views)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--overwrite", action="store_true", help="extract again even if a split file is complete")
    p.set_defaults(func=cmd_extract)
    p = sub.add_parser("svm", help="fit clip SVMs on extracted features (or --predict scores)")
    recipe_args(p)
    p.add_argument("--predict", action="store_true", help="write per-clip scores with a fitted model")
    p.add_argument("--split", default="test", help="--predict: the split to score (default test)")
    p.add_argument("--model", help="--predict: svm.joblib (default: the newest run of the recipe)")
    p.add_argument("--output", help="--predict: CSV path (default: <model dir>/predict/<split>_scores.csv)")
    p.set_defaults(func=cmd_svm)
    p = sub.add_parser("list", help="list registered components")
    p.add_argument("kind", nargs="?", help="e.g. backbones, losses, datamodules")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("config", help="check the recipe as fit does, then print it resolved")
    recipe_args(p)
    p.set_defaults(func=cmd_config)
    return parser


def predict_args(p: argparse.ArgumentParser) -> None:
    """``predict --ckpt X INPUT...``: pictures, folders, globs, videos, camera indices, stream URLs."""
    p.usage = "emoframe predict --ckpt PATH [options] INPUT... | emoframe predict [RECIPE] [key=value ...] --ckpt X"
    p.add_argument("--faces", default="all", choices=("all", "largest", "none"), help="faces per frame to report")
    p.add_argument("--every", type=int, default=1, metavar="N", help="videos: look at one frame in N")
    p.add_argument("--fps", type=float, help="videos: look at about this many frames per second")
    p.add_argument("--render", metavar="OUT.mp4", help="one video in: write it with boxes, labels and bars")
    p.add_argument("--batch-size", type=int, default=64, help="faces per forward pass")
    p.add_argument("--decode-side", type=int, default=640, help="decode videos at this longer side (0: full)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--no-timeline", action="store_true", help="no timeline PNG per video")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout (default for live sources)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    from emoframe.registry import RecipeError

    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # user modules next to the recipes import as with `python -m`
    parser = make_parser()
    ns, extra = parser.parse_known_args(argv)  # overrides may follow options: fit r.yaml --resume last a=1
    unknown = [a for a in extra if a.startswith("-") or not hasattr(ns, "args")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(ns, "args"):
        ns.args = [*ns.args, *extra]
        ns.recipe, ns.overrides = _split_args(ns.args)
    try:
        ns.func(ns)
    except (RecipeError, FileNotFoundError) as err:
        print(f"emoframe: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = err.filename or "an output file"
        print(f"emoframe: error: cannot write {where}: {err.strerror} (choose a writable folder)", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__name__ in ("DataError", "WeightsError"):
            print(f"emoframe: error: {err}", file=sys.stderr)
            return 2
        raise
    finally:
        finish_runs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
