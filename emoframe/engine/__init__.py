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

from typing import Any

from emoframe import builder
from emoframe.builder import Built
from emoframe.config import load_recipe
from emoframe.engine.ensembles import fit_ensemble
from emoframe.engine.evaluation import predict, test, validate
from emoframe.engine.exporting import export_model
from emoframe.engine.extraction import extract
from emoframe.engine.fitting import FitResult, fit
from emoframe.engine.recipes import recipe_for
from emoframe.engine.results import EvalResult
from emoframe.engine.tools import check_recipe, list_components, svm, svm_scores, sweep
from emoframe.models import load_model, load_task


def build(recipe: Any, stage: str = "fit", overrides: list[str] | None = None) -> Built:
    """Trainer, task and datamodule of a recipe (a path with overrides, or a loaded recipe), checked before any
    data is read: for driving Lightning by hand (``built.trainer.fit(built.task, datamodule=built.datamodule)``)."""
    return builder.build(recipe_for(recipe, overrides), stage)


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
