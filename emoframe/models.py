"""Trained models: a checkpoint or an exported file -> a task or a ``Model`` ready to predict, with its spec.

A checkpoint written by today's emoframe holds its ``ModelSpec``; one written before the spec existed holds the
data's description only (``emoframe_data``), and ``upgrade_spec`` completes it from the task class and the
stored recipe (the task's ``window_key`` read in the recipe, else in the datamodule's section defaults).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoframe import builder
from emoframe.checkpoints import LEGACY_DATA_KEY, Checkpoint, read_checkpoint
from emoframe.devices import resolve_device
from emoframe.errors import RecipeError
from emoframe.eval.va_postprocessing import PostProcessor
from emoframe.export.runtime import is_exported, load_exported
from emoframe.features import build_extractors
from emoframe.inference.predictor import Model
from emoframe.inference.spec import Runner
from emoframe.registry import DATAMODULES, TASKS, load_plugins
from emoframe.spec import SPEC_KEY, ModelSpec
from emoframe.tasks.base import Task


def stored_recipe(checkpoint: Checkpoint, hint: str = "give the recipe file too") -> dict[str, Any]:
    """A checkpoint's recipe in today's keys (one line on stderr says what an older emoframe called them)."""
    recipe, moved = builder.upgrade_recipe(checkpoint.require_recipe(hint))
    if moved:
        print(f"Note: {checkpoint.path} has an older recipe; read {', '.join(moved)}", file=sys.stderr)
    return recipe


def upgrade_spec(stored: dict[str, Any] | None, legacy: dict[str, Any] | None, recipe: dict[str, Any]) -> ModelSpec:
    """The model spec of a file: stored whole (today), or completed from an older file's data description."""
    if stored and stored.get("kind"):
        return ModelSpec.from_dict(stored)
    model = dict(recipe.get("model") or {})
    target, _ = TASKS.resolve({k: v for k, v in model.items() if k not in builder.TASK_INJECTED}, "model")
    data = (
        ModelSpec.from_dict(dict(stored or legacy))
        if (stored or legacy)
        else ModelSpec.of(builder.build_datamodule(recipe))
    )
    temporal = builder.temporal_spec(target, model.get("temporal"))
    spec = ModelSpec.of(data, target, str(model.get("name") or target.__name__), temporal)
    key = getattr(target, "window_key", None)
    if key:
        spec.window = int(_data_value(recipe, key) or 1)
    return spec


def _data_value(recipe: dict[str, Any], key: str) -> Any:
    """``data.<key>`` of a recipe, else the datamodule's default for it (``section_defaults``)."""
    data = dict(recipe.get("data") or {})
    section, name = key.split(".")
    value = (data.get(section) or {}).get(name)
    if value is None:
        try:
            target, _ = DATAMODULES.resolve(data, "data")
        except RecipeError:
            return None
        value = ((getattr(target, "section_defaults", {}) or {}).get(section) or {}).get(name)
    return value


def spec_of_checkpoint(checkpoint: Checkpoint, recipe: dict[str, Any]) -> ModelSpec:
    return upgrade_spec(checkpoint.payload.get(SPEC_KEY), checkpoint.payload.get(LEGACY_DATA_KEY), recipe)


def task_of(checkpoint: Checkpoint, device: str | torch.device = "cpu") -> Task:
    """The checkpoint's task rebuilt from its recipe and spec, weights loaded, in eval mode."""
    recipe = stored_recipe(checkpoint, "emoframe.load_model reads checkpoints of emoframe fit")
    load_plugins(list(recipe.get("imports") or []))
    spec = spec_of_checkpoint(checkpoint, recipe)
    task = builder.build_task(recipe, spec, for_training=False)  # type: ignore[arg-type]
    task.spec = spec
    task.load_state_dict(dict(checkpoint.state_dict))
    task.on_load_checkpoint(dict(checkpoint.payload))
    return task.eval().to(resolve_device(device))


def load_task(ckpt: str | Path, device: str | torch.device = "cpu") -> Task:
    """The bare task (a LightningModule) of an emoframe checkpoint, weights loaded, in eval mode."""
    return task_of(read_checkpoint(ckpt), device)


def load_model(ckpt: str | Path, device: str | torch.device = "cpu") -> Model:
    """The trained model of an emoframe checkpoint (or of an ``emoframe export`` file: ``.onnx``, ``.ts``, a
    TorchScript ``.pt``), in eval mode, ready to ``predict`` on pictures, videos and streams.

    Calling it runs the task's forward pass; ``class_names`` say what it predicts, ``spec`` what it is and
    ``preprocessing`` how its inputs were made in training. ``model.predict(x)`` returns a pandas DataFrame.
    """
    if is_exported(ckpt):
        return _exported_model(Path(ckpt))
    task = load_task(ckpt, device)
    thresholds = getattr(task, "thresholds", None)
    runner = runner_of(
        task.spec,  # type: ignore[arg-type]
        task,
        resolve_device(device),
        thresholds=[float(t) for t in thresholds] if isinstance(thresholds, torch.Tensor) else None,
        recipe=dict(task.recipe or {}),
        where=str(ckpt),
    )
    runner.postprocessors = dict(getattr(task, "postprocessors", None) or {}) or None
    return Model(task, runner, task.spec.preprocessing)  # type: ignore[union-attr]


def _exported_model(path: Path) -> Model:
    """An ``emoframe export`` file as a ``Model``: the runtime (onnxruntime or TorchScript) and its stored spec."""
    exported = load_exported(path)
    recipe, _ = builder.upgrade_recipe(dict(exported.recipe))
    spec = upgrade_spec(dict(exported.data), None, recipe)
    extras = getattr(exported, "extras", None) or {}
    runner = runner_of(spec, exported, torch.device("cpu"), extras.get("thresholds"), recipe, str(path))
    stored = (extras.get("postprocess") or {}).get("targets") or {}
    runner.postprocessors = {n: PostProcessor.from_dict(d) for n, d in stored.items()} or None
    return Model(exported, runner, spec.preprocessing)


def runner_of(
    spec: ModelSpec,
    forward: Any,
    device: torch.device,
    thresholds: list[float] | None,
    recipe: dict[str, Any],
    where: str,
) -> Runner:
    """What the inference pipeline runs: the spec, the forward callable, and the fusion features' extractors."""
    data, model = dict(recipe.get("data") or {}), dict(recipe.get("model") or {})
    if spec.kind not in ("frame", "fusion", "clip", "window"):
        raise RecipeError(f"{where}: task '{spec.task}' is not one predict knows (frame, fusion, clip or window tasks)")
    if spec.image_size is None or spec.mean is None or spec.std is None:
        raise RecipeError(f"{where}: its model spec has no image size or normalisation; predict cannot make inputs")
    if thresholds is None and spec.activation == "sigmoid":  # the task's single threshold, for every label
        thresholds = [float(model.get("threshold", 0.5))] * spec.num_classes
    mean = std = None
    if spec.kind == "fusion":
        if spec.feature_mean is None or spec.feature_std is None:
            raise RecipeError(
                f"{where}: a fusion checkpoint from before emoframe stored its feature statistics; "
                "fit it again (or test it with its data) to predict on pictures"
            )
        mean, std = np.asarray(spec.feature_mean, np.float32), np.asarray(spec.feature_std, np.float32)
    return Runner(
        forward=forward,
        spec=spec,
        activation=spec.activation,  # type: ignore[arg-type]
        extractors=build_extractors(data.get("features")) if spec.kind == "fusion" else [],
        feature_mean=mean,
        feature_std=std,
        thresholds=thresholds,
        device=device,
    )
