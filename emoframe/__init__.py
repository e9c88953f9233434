"""emoframe: a PyTorch Lightning framework for facial emotion recognition from images and video.

``import emoframe`` gives the registries (their built-in components register on first use) and the verbs of
``emoframe.engine``, the same as the CLI's: ``fit``, ``validate``, ``test``, ``predict``, ``export_model``, ``extract``,
``fit_ensemble``, ``svm``, ``svm_scores``, ``sweep``, ``check_recipe`` (``emoframe config``), ``list_components``
(``emoframe list``); and ``load_recipe``, ``build``, ``load_model``, ``load_task``.
The entry points import torch and Lightning on first use only, so ``import emoframe`` itself stays light.
"""

from __future__ import annotations

from typing import Any

from emoframe.errors import DataError, RecipeError, WeightsError
from emoframe.registry import (
    BACKBONES,
    CALLBACKS,
    DATAMODULES,
    FEATURES,
    HEADS,
    LOGGERS,
    LOSSES,
    OPTIMIZERS,
    REGISTRIES,
    SCHEDULERS,
    TASKS,
    TRANSFORMS,
    Registry,
    load_builtins,
)

__version__ = "0.1.0"

API = (
    "fit",
    "validate",
    "test",
    "predict",
    "export_model",
    "extract",
    "fit_ensemble",
    "svm",
    "svm_scores",
    "sweep",
    "check_recipe",
    "list_components",
    "load_recipe",
    "build",
    "load_model",
    "load_task",
)


def __getattr__(name: str) -> Any:
    """``emoframe.fit``, ``emoframe.load_model`` and the other entry points, imported on first use (PEP 562): they need torch and
    Lightning, which ``emoframe --help`` or a plugin registering a component should not pay for."""
    if name in API:
        from emoframe import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'emoframe' has no attribute '{name}'")


__all__ = [
    *API,
    "BACKBONES",
    "CALLBACKS",
    "DATAMODULES",
    "FEATURES",
    "HEADS",
    "LOGGERS",
    "LOSSES",
    "OPTIMIZERS",
    "REGISTRIES",
    "SCHEDULERS",
    "TASKS",
    "TRANSFORMS",
    "DataError",
    "RecipeError",
    "Registry",
    "WeightsError",
    "load_builtins",
]
