"""The engine: every verb of emoframe in one place, as Python functions with the CLI's options.

    import emoframe
    run = emoframe.fit("recipes/fer2013_small_cnn.yaml", ["trainer.max_epochs=2"])
    emoframe.test(ckpt=run.best, tta="paper", save_probs="probs/a")   # plain and TTA figures, one pass
    emoframe.predict(["photo.jpg"], ckpt=run.best)                     # every face, a CSV
    emoframe.export_model(run.best, "onnx")
    emoframe.fit_ensemble(["probs/a.probs.npz", "b.ckpt"], name="fer")

``emoframe.cli`` parses arguments and calls these; nothing else lives there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoframe import builder
from emoframe.builder import Built
from emoframe.config import load_recipe
from emoframe.engine.ensembles import fit_ensemble, predict_ensemble_file, test_ensemble_file
from emoframe.engine.evaluation import EvalResult, predict_split, validate
from emoframe.engine.evaluation import test as test_recipe
from emoframe.engine.exporting import export_model
from emoframe.engine.extraction import extract
from emoframe.engine.fitting import FitResult, fit
from emoframe.engine.inputs import predict_inputs
from emoframe.engine.recipes import recipe_for
from emoframe.engine.tools import check_recipe, list_components, svm, svm_scores, sweep
from emoframe.ensemble.files import is_ensemble_file
from emoframe.errors import RecipeError
from emoframe.models import load_model, load_task


def build(recipe: Any, stage: str = "fit", overrides: list[str] | None = None) -> Built:
    """Trainer, task and datamodule of a recipe (a path with overrides, or a loaded recipe), checked before any
    data is read: for driving Lightning by hand (``built.trainer.fit(built.task, datamodule=built.datamodule)``)."""
    return builder.build(recipe_for(recipe, overrides), stage)


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
    """The test split's figures of a checkpoint (or of an ensemble file), with ``tta`` in the same pass."""
    if ckpt is not None and is_ensemble_file(ckpt):
        return test_ensemble_file(ckpt, overrides, output, device, recipe, tta, save_probs)
    return test_recipe(recipe, overrides, ckpt=ckpt, tta=tta, save_probs=save_probs, output=output)


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
    ``Summary``; without inputs, the datamodule's predict split through the task's writer (an ``EvalResult``)."""
    if inputs:
        if recipe or overrides:
            raise RecipeError(
                f"predict INPUT...: the model's recipe comes from --ckpt; drop {(recipe or overrides[0])!r} "  # type: ignore[index]
                "(recipes and overrides are for predicting a datamodule's split)"
            )
        return predict_inputs(list(inputs), ckpt=ckpt, tta=tta, output=output, device=device, **options)  # type: ignore[arg-type]
    if ckpt is not None and is_ensemble_file(ckpt):
        return predict_ensemble_file(ckpt, overrides, output, device, recipe, tta)
    return predict_split(recipe, overrides, ckpt=ckpt, tta=tta, output=output)


__all__ = [
    "Built",
    "EvalResult",
    "FitResult",
    "build",
    "check_recipe",
    "export_model",
    "extract",
    "fit",
    "fit_ensemble",
    "list_components",
    "load_model",
    "load_recipe",
    "load_task",
    "predict",
    "svm",
    "svm_scores",
    "sweep",
    "test",
    "validate",
]
