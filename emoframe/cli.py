"""`emoframe fit | validate | test | predict | export | extract | ensemble | svm | sweep | list | config`.

Recipe errors, data errors and weight errors end the command with one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
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
    from emoframe.launch import detect_launch, restart_checkpoint

    cfg = _load(ns.recipe, ns.overrides, None)
    launch = detect_launch()
    ckpt = None
    run_dir = None
    if ns.resume:
        ckpt = find_checkpoint(cfg, ns.resume)
        run_dir = run_dir_of_checkpoint(ckpt)
    run_dir = run_dir or new_run_dir(cfg)
    if ckpt is None:  # a requeued SLURM job (or a restarted launch of a run.version) continues its own run
        version = (cfg.get("run") or {}).get("version")
        ckpt = restart_checkpoint(run_dir, None if version is None else str(version), launch)
    checkpoint = read_checkpoint(ckpt) if ckpt else None  # a bad file fails here, in one line
    if ckpt is not None:
        job = f"SLURM job {launch.job}" if launch.job else "this launch"
        why = "" if ns.resume else f" (restart {launch.restart_count} of {job})"
        print(f"Resuming from {ckpt}{why}", file=sys.stderr)
    fresh = not run_dir.exists()
    try:
        resume_epoch = int(checkpoint.payload.get("epoch", 0)) if checkpoint is not None else None
        built = build(cfg, "fit", run_dir=run_dir, resume_epoch=resume_epoch)
        if checkpoint is not None:
            check_fits(checkpoint, built.task)
        print(f"Run directory: {built.run_dir}", file=sys.stderr)
        built.trainer.fit(built.task, datamodule=built.datamodule, ckpt_path=str(ckpt) if ckpt else None)
    except BaseException:
        remove_unstarted_run(run_dir, fresh, launch.is_global_zero)
        raise


def remove_unstarted_run(run_dir: Path, fresh: bool, global_zero: bool = True) -> None:
    """A run folder this command made that holds no checkpoint yet is removed, so a failed start uses up no version.

    Only global rank 0 removes it (it alone creates files); a failing rank on another node leaves rank 0's run alone.
    """
    if fresh and global_zero and not list(run_dir.glob("checkpoints/*.ckpt")):
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
    from emoframe.builder import build, find_checkpoint, run_dir_of_checkpoint, stage_tta
    from emoframe.checkpoints import check_fits, read_checkpoint
    from emoframe.ensemble.files import is_ensemble_file

    if ns.ckpt and is_ensemble_file(ns.ckpt):
        return _evaluate_ensemble(ns, stage)
    tta_flag, save_probs = getattr(ns, "tta", None), getattr(ns, "save_probs", None)
    cfg = _load(ns.recipe, ns.overrides, ns.ckpt)
    views = stage_tta(cfg, stage, tta_flag) if stage in ("test", "predict") else None
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
        if views:  # outside Lightning's loop: the task wrapped in emoframe.tta.TTA
            from emoframe.ensemble.evaluate import predict_with_tta
            from emoframe.ensemble.members import resolve_device

            if checkpoint is not None:
                built.task.load_state_dict(dict(checkpoint.state_dict))
                built.task.on_load_checkpoint(dict(checkpoint.payload))
            predict_with_tta(built.task, built.datamodule, views, writer, resolve_device(ns.device))
            print(f"Predictions: {path} (TTA: {len(views)} views)")
            return
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
    if stage == "test" and (views or save_probs) and built.trainer.is_global_zero:
        _test_extras(ns, built, views, ckpt)


def _test_extras(ns: argparse.Namespace, built: Any, views: Any, ckpt: Path | None) -> None:
    """``test --tta``: the test split without and with TTA (``test_tta.csv``); ``--save-probs``: the probabilities."""
    from emoframe.ensemble.evaluate import save_test_probabilities, tta_comparison
    from emoframe.ensemble.members import resolve_device
    from emoframe.eval.probabilities import probabilities_path

    device = resolve_device(ns.device)
    known = None
    if views:
        rows, found = tta_comparison(built.task, built.datamodule, views, built.task.report_dir, device)
        for row, prefix in zip(rows, ("test_plain", "test_tta")):
            for key in ("acc", "macro_f1"):
                print(f"{prefix}/{key}\t{row[key]:.4f}")
        print(f"TTA report: {built.task.report_dir / 'test_tta.csv'} ({rows[1]['tta']})")
        known = {"test": found["tta"]}
    if ns.save_probs:
        path = probabilities_path(ns.save_probs)
        meta = {"checkpoint": str(ckpt.resolve()) if ckpt else None}
        save_test_probabilities(built.task, built.datamodule, path, views, device, meta, known)
        print(f"Probabilities: {path}")


def _evaluate_ensemble(ns: argparse.Namespace, stage: str) -> None:
    """``test``/``predict --ckpt x.ensemble.yaml``: the ensemble on the test/predict split of its members' data."""
    from emoframe.callbacks.writers import ClassProbabilities
    from emoframe.ensemble.evaluate import predict_ensemble, test_ensemble
    from emoframe.ensemble.members import resolve_device
    from emoframe.registry import RecipeError

    if stage == "validate":
        raise RecipeError("validate: an ensemble file has no single model to validate; use emoframe test --ckpt")
    if ns.recipe:
        raise RecipeError(f"{ns.recipe}: an ensemble's members bring their own recipes; give key=value overrides only")
    if getattr(ns, "tta", None) or getattr(ns, "save_probs", None):
        raise RecipeError("--tta/--save-probs: an ensemble file records its own TTA views (emoframe ensemble --tta)")
    device = resolve_device(ns.device)
    where = Path(ns.ckpt).parent
    if stage == "predict":
        path = Path(ns.output) if ns.output else where / "predict" / "predictions.csv"
        predict_ensemble(ns.ckpt, ns.overrides, ClassProbabilities(str(path)), device)
        print(f"Predictions: {path}")
        return
    report_dir = (Path(ns.output) if ns.output else where) / "test"
    result, _ = test_ensemble(ns.ckpt, ns.overrides, report_dir, device)
    print(f"Reports: {report_dir}")
    for key, value in sorted(result.items()):
        print(f"test/{key}\t{value:.4f}")


def cmd_ensemble(ns: argparse.Namespace) -> None:
    from emoframe.ensemble.run import run_ensemble
    from emoframe.tta import parse_tta

    members = [a for a in ns.args if "=" not in a]
    overrides = [a for a in ns.args if "=" in a]
    output = Path(ns.output) if ns.output else Path("runs") / "ensemble" / ns.name
    views = parse_tta(ns.tta) if ns.tta else None
    command = "emoframe ensemble " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["ensemble"] else None
    result = run_ensemble(
        members, output, ns.name, overrides, ns.objective, ns.seed, views, ns.device, command, ns.nll_weight
    )
    for row in result.rows:
        figures = "  ".join(f"{k}={row[k]:.4f}" for k in ("val_acc", "test_acc", "test_macro_f1") if row[k] is not None)
        weight = "" if row["weight"] is None else f"w={row['weight']:.3f}"
        print(f"{row['model']:<40} {weight:<8} {figures}")
    print(f"Report: {result.report}")
    print(f"Ensemble: {result.ensemble_file}")


def prediction_writer(cfg: dict[str, Any], task: Any, path: Path) -> Any:
    """The recipe's ``predict.writer`` (a registered prediction writer), else the task's ``prediction_writer``."""
    from emoframe.callbacks.writers import PredictionWriter
    from emoframe.registry import CALLBACKS, RecipeError

    section = cfg.get("predict") or {}
    unknown = sorted(set(section) - {"writer", "tta"})
    if unknown:
        raise RecipeError(f"Unknown key predict.{unknown[0]}: the predict: section takes writer: {{name: ...}}, tta")
    spec = section.get("writer") or {"name": task.prediction_writer}
    writer = CALLBACKS.build(spec, "predict.writer", path=str(path))
    if not isinstance(writer, PredictionWriter):
        raise RecipeError(
            f"predict.writer: {type(writer).__name__} is not a prediction writer (emoframe.callbacks.writers)"
        )
    return writer


def cmd_export(ns: argparse.Namespace) -> None:
    from emoframe.api import export_model
    from emoframe.registry import RecipeError

    if ns.recipe:
        raise RecipeError("export reads the recipe from --ckpt; give key=value overrides for its data: section")
    result = export_model(ns.ckpt, ns.format, ns.output, ns.parity, ns.overrides, ns.items, ns.opset)
    print(result.summary(), file=sys.stderr)
    print(f"Exported: {result.path}")


def cmd_extract(ns: argparse.Namespace) -> None:
    from emoframe.builder import backbone_inputs, build_datamodule
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
    inputs = backbone_inputs(datamodule, model["backbone"]) if model.get("backbone") else None
    backbone = load_backbone(checkpoint, model.get("backbone"), channels, trained_channels, inputs)
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


def cmd_sweep(ns: argparse.Namespace) -> None:
    from emoframe.sweeps.run import sweep

    sweep(
        ns.file,
        report=ns.report,
        local=ns.local,
        storage=ns.storage,
        join=ns.join,
        agent=ns.agent,
        count=ns.count,
        folder=ns.dir,
    )


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
        p.add_argument(
            "--device",
            default="auto",
            help="where the network runs (inputs, --tta, --save-probs, ensembles): auto, cpu, cuda, cuda:N",
        )
        if stage != "validate":
            p.add_argument(
                "--tta",
                nargs="?",
                const="18",
                metavar="VIEWS",
                help="average probabilities over views: 1-18 of the paper's set (default 18), flip, paper, ten_crop, "
                "a+b, or a YAML list (default: the recipe's test.tta / predict.tta)",
            )
        if stage == "test":
            p.add_argument("--save-probs", metavar="PATH", help="write val and test probabilities (.probs.npz)")
        p.set_defaults(func=lambda ns, s=stage: _evaluate(ns, s))
        if stage == "predict":
            p.set_defaults(func=cmd_predict)
            predict_args(p)
    p = sub.add_parser("export", help="a checkpoint as ONNX or TorchScript, checked against PyTorch at export")
    p.add_argument("args", nargs="*", metavar="key=value", help="overrides of the parity check's data (data.root=...)")
    p.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint written by emoframe fit")
    p.add_argument("--format", default="onnx", choices=("onnx", "torchscript"), help="file format (default onnx)")
    p.add_argument("--output", help="the file to write (default: beside the checkpoint, .onnx or .ts)")
    p.add_argument("--parity", default="data", choices=("data", "random"), help="check on the recipe's data or noise")
    p.add_argument("--items", type=int, default=8, help="items of the data the parity check runs on")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.set_defaults(func=cmd_export)
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
    p = sub.add_parser("ensemble", help="weights of a weighted ensemble by differential evolution, its report and file")
    p.add_argument(
        "args", nargs="*", metavar="MEMBER [key=value ...]", help="checkpoints or .probs.npz, then overrides"
    )
    p.add_argument("--output", help="folder for the report and the ensemble file (default runs/ensemble/<name>)")
    p.add_argument("--name", default="ensemble", help="the ensemble file is <output>/<name>.ensemble.yaml")
    p.add_argument("--objective", default="accuracy", help="accuracy (Kumari's, + nll-weight x log-loss) or nll")
    p.add_argument("--nll-weight", type=float, default=0.1, help="log-loss term of the accuracy objective (0: pure)")
    p.add_argument("--seed", type=int, default=0, help="differential evolution's seed")
    p.add_argument("--tta", nargs="?", const="18", metavar="VIEWS", help="members' probabilities over TTA views")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(func=cmd_ensemble)
    p = sub.add_parser("svm", help="fit clip SVMs on extracted features (or --predict scores)")
    recipe_args(p)
    p.add_argument("--predict", action="store_true", help="write per-clip scores with a fitted model")
    p.add_argument("--split", default="test", help="--predict: the split to score (default test)")
    p.add_argument("--model", help="--predict: svm.joblib (default: the newest run of the recipe)")
    p.add_argument("--output", help="--predict: CSV path (default: <model dir>/predict/<split>_scores.csv)")
    p.set_defaults(func=cmd_svm)
    p = sub.add_parser("sweep", help="run a W&B sweep file: W&B online, else (or --local) the local Optuna engine")
    p.add_argument("file", metavar="SWEEP.yaml", help="a W&B sweep configuration whose command runs emoframe fit")
    p.add_argument("--local", action="store_true", help="the local Optuna engine even when W&B is online")
    p.add_argument("--storage", metavar="URL", help="Optuna storage (default: sqlite in the sweep folder)")
    p.add_argument("--join", action="store_true", help="add a worker to a sweep that exists (fails if it does not)")
    p.add_argument("--agent", metavar="SWEEP_ID", help="W&B online: run an agent of an existing W&B sweep")
    p.add_argument("--count", type=int, help="this worker runs at most N trials")
    p.add_argument("--dir", help="the sweep folder (default: $EMOFRAME_RUNS/sweeps/<name>, else runs/sweeps/<name>)")
    p.add_argument("--report", action="store_true", help="write the leaderboard, best recipe and plots, then stop")
    p.set_defaults(func=cmd_sweep)
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
    p.add_argument(
        "--detect-every", type=int, default=1, metavar="N", help="find faces in one looked-at frame in N (faster)"
    )
    p.add_argument("--render", metavar="OUT.mp4", help="one video in: write it with boxes, labels and bars")
    p.add_argument("--batch-size", type=int, default=64, help="faces per forward pass")
    p.add_argument("--decode-side", type=int, default=640, help="decode videos at this longer side (0: full)")
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
