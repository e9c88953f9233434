"""``validate``, ``test`` and ``predict`` on a recipe's data, inside Lightning's loops.

Test-time augmentation is an option of the one loop (``FrameClassifier.set_tta``): ``test`` goes through the
test split once and reports the plain and the TTA figures together; ``predict`` writes the TTA probabilities
through the task's own writer. ``save_probs`` records the probabilities the same loops make (validation, then
test) into a probability file for ``emoframe ensemble``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from emoframe.builder import Built, build, stage_tta
from emoframe.callbacks.writers import PredictionWriter, ProbabilityRecorder
from emoframe.checkpoints import check_fits, read_checkpoint, run_dir_of_checkpoint
from emoframe.devices import resolve_device
from emoframe.engine.ensembles import ensemble_file
from emoframe.engine.inputs import predict_inputs
from emoframe.engine.recipes import recipe_for, resolve_checkpoint
from emoframe.engine.results import EvalResult
from emoframe.engine.runs import check_output, removed_unless_finished
from emoframe.ensemble.files import is_ensemble_file
from emoframe.errors import RecipeError
from emoframe.eval.probabilities import ProbabilityFile, probabilities_path, save_probabilities
from emoframe.eval.reports import write_rows
from emoframe.registry import CALLBACKS
from emoframe.tta import TTATransform, describe_views

EVAL_RUNS = Path("runs/eval")


def on_device(cfg: dict[str, Any], device: str) -> dict[str, Any]:
    """``--device`` as the trainer's accelerator and devices (``auto`` keeps the recipe's ``trainer:``)."""
    if device == "auto":
        return cfg
    target = resolve_device(device)
    chosen = {"accelerator": "cpu", "devices": 1} if target.type == "cpu" else {"accelerator": "gpu"}
    if target.type == "cuda":
        chosen["devices"] = [target.index or 0]
    return {**cfg, "trainer": {**(cfg.get("trainer") or {}), **chosen}}


def _prepare(
    stage: str,
    recipe: Any,
    overrides: list[str] | None,
    ckpt: str | Path | None,
    output: str | Path | None,
    device: str = "auto",
) -> tuple[dict[str, Any], Path | None, Path]:
    """The recipe, the checkpoint and the run folder of an evaluation, checked before anything is written."""
    cfg = on_device(recipe_for(recipe, overrides, ckpt), device)
    path = resolve_checkpoint(ckpt, cfg)
    trained_in = run_dir_of_checkpoint(path) if path else None
    if stage == "predict":  # output is the predictions file; the run's logs go beside the checkpoint's run
        check_output(output)
        run_dir = trained_in or (Path(output).parent if output else EVAL_RUNS)
    else:  # output is where the reports go (another data set's confusion matrix must not overwrite the run's)
        check_output(output, folder=True)
        run_dir = Path(output) if output else (trained_in or EVAL_RUNS)
    return cfg, path, run_dir


def _new_folders(run_dir: Path, stage: str) -> list[Path]:
    """What a failed evaluation must not leave: its stage folder, and the run folders it would create."""
    return (
        [*reversed(run_dir.parents[:-1]), run_dir, run_dir / stage]
        if not run_dir.is_absolute()
        else [run_dir, run_dir / stage]
    )


def _built(stage: str, cfg: dict[str, Any], ckpt: Path | None, run_dir: Path, views: Any) -> Built:
    built = build(cfg, stage, run_dir=run_dir)
    if ckpt is not None:
        check_fits(read_checkpoint(ckpt), built.task)
    else:
        print("Warning: no --ckpt given: evaluating freshly initialised weights", file=sys.stderr)
    if views:
        set_tta = getattr(built.task, "set_tta", None)
        if set_tta is None or built.task.kind not in ("frame", "fusion"):
            raise RecipeError(
                f"--tta: a {type(built.task).__name__} model; TTA averages frame classifiers' probabilities "
                "(frame_classifier, fusion_classifier)"
            )
        set_tta(views)
    return built


def validate(
    recipe: Any = None,
    overrides: list[str] | None = None,
    *,
    ckpt: str | Path | None = None,
    output: Any = None,
    device: str = "auto",
) -> EvalResult:
    """The validation split's figures of a checkpoint (``ckpt``: a path, or ``best``/``last`` of ``recipe``)."""
    if ckpt is not None and is_ensemble_file(ckpt):
        raise RecipeError("validate: an ensemble file has no single model to validate; use emoframe test --ckpt")
    cfg, path, run_dir = _prepare("validate", recipe, overrides, ckpt, output, device)
    with removed_unless_finished(_new_folders(run_dir, "validate")):
        built = _built("validate", cfg, path, run_dir, None)
        results = built.trainer.validate(built.task, datamodule=built.datamodule, ckpt_path=str(path) if path else None)
    return EvalResult(dict(results[0]) if results else {}, built.task.report_dir)


def test(
    recipe: Any = None,
    overrides: list[str] | None = None,
    *,
    ckpt: str | Path | None = None,
    tta: Any = None,
    save_probs: str | Path | None = None,
    output: str | Path | None = None,
    device: str = "auto",
) -> EvalResult:
    """The test split's figures and reports; with ``tta`` (views: ``paper``, ``ten_crop``, 1-18, a list, or the
    recipe's ``test.tta``) the same pass scores it with TTA too (``test_tta/*``, ``test_tta.csv``).
    ``save_probs``: the validation and test probabilities (with the views) in ``<save_probs>.probs.npz``.
    An ensemble file as ``ckpt`` is tested as one model (each member on its own data)."""
    if ckpt is not None and is_ensemble_file(ckpt):
        return ensemble_file("test", ckpt, overrides, output, device, recipe, tta, save_probs)
    cfg, path, run_dir = _prepare("test", recipe, overrides, ckpt, output, device)
    views = stage_tta(cfg, "test", tta)
    probs_path = check_output(probabilities_path(save_probs)) if save_probs else None
    with removed_unless_finished([*_new_folders(run_dir, "test"), *([probs_path] if probs_path else [])]):
        built = _built("test", cfg, path, run_dir, views)
        recorder = ProbabilityRecorder() if probs_path else None
        if recorder is not None:
            if built.trainer.world_size > 1:
                raise RecipeError("--save-probs: run it on one device (trainer.devices=1): it keeps every example")
            built.trainer.callbacks.append(recorder)
            built.trainer.validate(built.task, datamodule=built.datamodule, ckpt_path=str(path) if path else None)
        ckpt_path = str(path) if path and recorder is None else None  # the validation pass loaded the weights
        results = built.trainer.test(built.task, datamodule=built.datamodule, ckpt_path=ckpt_path)
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        report_dir = built.task.report_dir
        if views and built.trainer.is_global_zero and report_dir is not None:
            write_tta_rows(metrics, views, report_dir)
        if recorder is not None and built.trainer.is_global_zero:
            meta = {"checkpoint": str(path.resolve()) if path else None, "tta": _settings(views)}
            save_probabilities(probs_path, ProbabilityFile(recorder.splits(), list(built.task.class_names), meta))
    return EvalResult(metrics, report_dir, probs_path)


def _settings(views: tuple[TTATransform, ...] | None) -> list[dict[str, Any]] | None:
    return [v.settings() for v in views] if views else None


def write_tta_rows(metrics: dict[str, float], views: tuple[TTATransform, ...], report_dir: Path) -> Path:
    """``test_tta.csv``: one row without TTA and one with it, from the same pass's figures."""
    keys = ("acc", "balanced_acc", "macro_f1", "samples")
    rows = [
        {"tta": name, **{k: metrics.get(f"{prefix}/{k}") for k in keys}}
        for name, prefix in (("none", "test"), (describe_views(views), "test_tta"))
    ]
    return write_rows(rows, report_dir / "test_tta.csv")


def prediction_writer(cfg: dict[str, Any], task: Any, path: Path) -> PredictionWriter:
    """The recipe's ``predict.writer`` (a registered prediction writer), else the task's ``prediction_writer``."""
    section = cfg.get("predict") or {}
    spec = section.get("writer") or {"name": task.prediction_writer}
    writer = CALLBACKS.build(spec, "predict.writer", path=str(path))
    if not isinstance(writer, PredictionWriter):
        raise RecipeError(
            f"predict.writer: {type(writer).__name__} is not a prediction writer (emoframe.callbacks.writers)"
        )
    return writer


def predict(
    inputs: list[Any] | None = None,
    recipe: Any = None,
    overrides: list[str] | None = None,
    *,
    ckpt: str | Path | None = None,
    tta: Any = None,
    output: str | Path | None = None,
    device: str = "auto",
    **options: Any,
) -> Any:
    """``inputs`` (pictures, folders, globs, videos, cameras, URLs) through the model of ``ckpt``: the run's
    ``Summary`` (``options``: ``emoframe.inference.Options``'). Without inputs, the datamodule's predict split
    (its test split, or ``data.predict_videos``) through the task's writer, or an ensemble file's: an
    ``EvalResult``."""
    if inputs:
        if recipe or overrides:
            drop = recipe or (overrides or [""])[0]
            raise RecipeError(
                f"predict INPUT...: the model's recipe comes from --ckpt; drop {drop!r} (recipes and overrides "
                "are for predicting a datamodule's split)"
            )
        return predict_inputs(list(inputs), ckpt=ckpt, tta=tta, output=output, device=device, **options)  # type: ignore[arg-type]
    if ckpt is not None and is_ensemble_file(ckpt):
        return ensemble_file("predict", ckpt, overrides, output, device, recipe, tta)
    cfg, path, run_dir = _prepare("predict", recipe, overrides, ckpt, output, device)
    views = stage_tta(cfg, "predict", tta)
    target = Path(output) if output else run_dir / "predict" / "predictions.csv"
    with removed_unless_finished([*_new_folders(run_dir, "predict"), target]):
        built = _built("predict", cfg, path, run_dir, views)
        writer = prediction_writer(cfg, built.task, target)
        built.trainer.callbacks.append(writer)
        outputs = built.trainer.predict(built.task, datamodule=built.datamodule, ckpt_path=str(path) if path else None)
        if built.trainer.is_global_zero and writer.paths is None:  # nothing predicted: the writer still leaves its file
            writer.write_all(built.trainer, built.task, list(outputs or []))
    return EvalResult(predictions=target)
