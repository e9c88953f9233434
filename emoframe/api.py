"""The Python API: recipes, builds and trained models from a notebook, in the shape of ``timm.create_model``.

    import emoframe
    cfg = emoframe.load_recipe("recipes/fer2013_small_cnn.yaml", ["trainer.max_epochs=2"])
    built = emoframe.build(cfg)                      # trainer, task, datamodule, run_dir
    built.trainer.fit(built.task, datamodule=built.datamodule)
    model = emoframe.load_model("runs/fer2013_small_cnn/version_0/checkpoints/best.ckpt")
    model.class_names, model.preprocessing           # what it predicts, how its inputs were made

The CLI is written on the same functions, so a recipe behaves the same from both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoframe import builder, config
from emoframe.checkpoints import read_checkpoint
from emoframe.errors import RecipeError
from emoframe.features import build_extractors
from emoframe.inference.predictor import Model
from emoframe.inference.spec import ModelSpec
from emoframe.registry import DATAMODULES, REGISTRIES, TASKS, load_builtins, load_plugins
from emoframe.tasks.base import DATA_KEY
from emoframe.tasks.frame_classifier import FrameClassifier
from emoframe.tasks.fusion_classifier import FusionClassifier
from emoframe.tasks.multilabel_classifier import MultilabelClassifier
from emoframe.tasks.sequence import WindowTask
from emoframe.tasks.sequence_classifier import SequenceClassifier


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A recipe composed (``defaults:``), overridden (``key=value``), resolved and checked, as ``emoframe fit`` reads it."""
    return config.load_recipe(path, overrides)


def build(recipe: dict[str, Any] | str | Path, stage: str = "fit", overrides: list[str] | None = None) -> builder.Built:
    """Trainer, task and datamodule of a recipe (a path or a loaded recipe), checked before any data is read."""
    cfg = load_recipe(recipe, overrides) if isinstance(recipe, (str, Path)) else recipe
    if overrides and not isinstance(recipe, (str, Path)):
        raise RecipeError("build: give overrides with a recipe path, or apply them with load_recipe first")
    return builder.build(cfg, stage)


def check(recipe: dict[str, Any] | str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Every check ``emoframe fit`` makes before training (components, arguments, trainer), with no run started."""
    cfg = load_recipe(recipe, overrides) if isinstance(recipe, (str, Path)) else recipe
    builder.check(cfg)
    return cfg


def load_model(ckpt: str | Path, device: str | torch.device = "cpu") -> Model:
    """The trained model of an emoframe checkpoint (or of an ``emoframe export`` file: ``.onnx``, ``.ts``), in
    eval mode, ready to ``predict`` on pictures, videos and streams (``emoframe.inference``).

    Calling it runs the task's forward pass; its ``class_names`` say what it predicts and ``preprocessing``
    how its inputs were made in training (image size, channels, mean, std, face settings); every other
    attribute is the task's. Neither the data set nor the recipe file is needed: both travel in the checkpoint.
    ``model.predict(x)`` returns a pandas DataFrame with the columns ``emoframe predict`` writes.
    """
    if Path(ckpt).suffix.lower() in EXPORTED_SUFFIXES:
        return _load_exported_model(Path(ckpt), device)
    checkpoint = read_checkpoint(ckpt)
    recipe, _ = builder.upgrade_recipe(
        checkpoint.require_recipe("emoframe.load_model reads checkpoints of emoframe fit")
    )
    load_plugins(list(recipe.get("imports") or []))
    spec = checkpoint.payload.get(DATA_KEY)
    if spec is None:  # a checkpoint from before emoframe stored its DataSpec: ask the datamodule
        data = builder.DataSpec.of(builder.build_datamodule(recipe))
    else:
        data = builder.DataSpec(**spec)
    task = builder.build_task(recipe, data, for_training=False)  # type: ignore[arg-type]
    task.load_state_dict(dict(checkpoint.state_dict))
    task.on_load_checkpoint(dict(checkpoint.payload))
    task.eval().to(device)
    task.preprocessing = data.preprocessing  # type: ignore[attr-defined]
    thresholds = getattr(task, "thresholds", None)
    model_spec = model_spec_of(
        recipe,
        data,
        task,
        torch.device(device),
        thresholds=[float(t) for t in thresholds] if isinstance(thresholds, torch.Tensor) else None,
        where=str(ckpt),
    )
    return Model(task, model_spec, data.preprocessing)


EXPORTED_SUFFIXES = (".onnx", ".ts")
"""Files of ``emoframe export`` (ONNX, TorchScript): ``load_model`` and ``predict --ckpt`` run them through
``emoframe.export.runtime.load_exported``."""


def _load_exported_model(path: Path, device: str | torch.device) -> Model:
    try:
        from emoframe.export.runtime import load_exported  # optional until the export command is merged
    except ImportError:
        raise RecipeError(
            f"{path}: running exported models needs emoframe.export (emoframe export), which this install lacks"
        ) from None
    exported = load_exported(path)
    recipe, _ = builder.upgrade_recipe(dict(exported.recipe))
    data = builder.DataSpec(**dict(exported.data))
    thresholds = (getattr(exported, "extras", None) or {}).get("thresholds")
    model_spec = model_spec_of(recipe, data, exported, torch.device("cpu"), thresholds=thresholds, where=str(path))
    return Model(exported, model_spec, data.preprocessing)


def model_spec_of(
    recipe: dict[str, Any],
    data: builder.DataSpec,
    forward: Any,
    device: torch.device,
    thresholds: list[float] | None,
    where: str,
) -> ModelSpec:
    """What the inference pipeline needs of a model (``emoframe.inference.spec``), from its recipe and DataSpec."""
    model = dict(recipe.get("model") or {})
    target, args = TASKS.resolve({k: v for k, v in model.items() if k not in builder.TASK_INJECTED}, "model")
    name = str(model.get("name") or getattr(target, "__name__", "task"))
    data_cfg = dict(recipe.get("data") or {})
    try:
        dm_target, _ = DATAMODULES.resolve(data_cfg, "data")
        defaults = dict(getattr(dm_target, "section_defaults", {}) or {})
    except RecipeError:
        defaults = {}
    temporal = builder.temporal_spec(target, model.get("temporal"))
    window, activation, kind = 1, "softmax", "frame"
    if issubclass(target, SequenceClassifier):
        kind = "clip"
        window = int(((data_cfg.get("clip") or {}).get("frames")) or (defaults.get("clip") or {}).get("frames") or 16)
    elif issubclass(target, FusionClassifier):
        kind = "fusion"
    elif issubclass(target, FrameClassifier):
        kind = "frame"
    elif issubclass(target, WindowTask):
        kind = "window"
        activation = "sigmoid" if issubclass(target, MultilabelClassifier) else "none"  # va_regressor: values
        size = (data_cfg.get("windows") or {}).get("size") or (defaults.get("windows") or {}).get("size") or 150
        window = int(size)
        if thresholds is None and issubclass(target, MultilabelClassifier):
            thresholds = [float(args.get("threshold", 0.5))] * data.num_classes
    else:
        raise RecipeError(f"{where}: task '{name}' is not one predict knows (frame, fusion, clip or window tasks)")
    if data.image_size is None or data.mean is None or data.std is None:
        raise RecipeError(f"{where}: its DataSpec has no image size or normalisation; predict cannot make inputs")
    extractors = build_extractors(data_cfg.get("features")) if kind == "fusion" else []
    mean = std = None
    if kind == "fusion":
        if data.feature_mean is None or data.feature_std is None:
            raise RecipeError(
                f"{where}: a fusion checkpoint from before emoframe stored its feature statistics; "
                "fit it again (or test it with its data) to predict on pictures"
            )
        mean, std = np.asarray(data.feature_mean, np.float32), np.asarray(data.feature_std, np.float32)
    return ModelSpec(
        forward=forward,
        kind=kind,  # type: ignore[arg-type]
        class_names=list(data.class_names),
        activation=activation,  # type: ignore[arg-type]
        image_size=int(data.image_size),
        channels=int(data.channels),
        mean=list(data.mean),
        std=list(data.std),
        faces=data.faces,
        window=window,
        temporal=(temporal or {}).get("name") not in ("none", None),
        extractors=extractors,
        feature_mean=mean,
        feature_std=std,
        thresholds=thresholds,
        task_name=name,
        device=device,
    )


def list_components(kind: str | None = None) -> dict[str, list[str]]:
    """Registered names per kind (``backbones``, ``losses``, ``temporal``, ...), built-ins and plugins."""
    load_builtins()
    load_plugins()
    if kind is not None and kind not in REGISTRIES:
        raise RecipeError(f"Unknown kind '{kind}'. Kinds: {', '.join(REGISTRIES)}")
    return {k: r.names() for k, r in REGISTRIES.items() if kind is None or k == kind}
