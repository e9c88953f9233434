"""The Python API: recipes, builds and trained models from a notebook, in the shape of ``timm.create_model``.

    import emoframe
    cfg = emoframe.load_recipe("recipes/fer2013_small_cnn.yaml", ["trainer.max_epochs=2"])
    built = emoframe.build(cfg)                      # trainer, task, datamodule, run_dir
    built.trainer.fit(built.task, datamodule=built.datamodule)
    model = emoframe.load_model("runs/fer2013_small_cnn/version_0/checkpoints/best.ckpt")
    model.class_names, model.preprocessing           # what it predicts, how its inputs were made
    emoframe.export_model("best.ckpt", "onnx")       # best.onnx, checked against PyTorch
    onnx_model = emoframe.load_model("best.onnx")    # the same forward on onnxruntime

The CLI is written on the same functions, so a recipe behaves the same from both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emoframe import builder, config
from emoframe.checkpoints import Checkpoint, read_checkpoint
from emoframe.errors import RecipeError
from emoframe.eval.postprocess import PostProcessor
from emoframe.export.runtime import is_exported, load_exported
from emoframe.features import build_extractors
from emoframe.inference.predictor import Model
from emoframe.inference.spec import ModelSpec
from emoframe.registry import DATAMODULES, REGISTRIES, TASKS, load_builtins, load_plugins
from emoframe.tasks.base import DATA_KEY, Task
from emoframe.tasks.frame_classifier import FrameClassifier
from emoframe.tasks.fusion_classifier import FusionClassifier
from emoframe.tasks.multilabel_classifier import MultilabelClassifier
from emoframe.tasks.sequence import WindowTask
from emoframe.tasks.sequence_classifier import SequenceClassifier

if TYPE_CHECKING:
    from emoframe.export.run import ExportResult


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
    """The trained model of an emoframe checkpoint (or of an ``emoframe export`` file: ``.onnx``, ``.ts``, a
    TorchScript ``.pt``), in eval mode, ready to ``predict`` on pictures, videos and streams (``emoframe.inference``).

    Calling it runs the task's forward pass; its ``class_names`` say what it predicts and ``preprocessing``
    how its inputs were made in training (image size, channels, mean, std, face settings); every other
    attribute is the task's (for an exported file, ``emoframe.export.runtime.ExportedModel``'s, on the CPU).
    Neither the data set nor the recipe file is needed: both travel in the checkpoint (and in the exported file).
    ``model.predict(x)`` returns a pandas DataFrame with the columns ``emoframe predict`` writes.
    """
    if is_exported(ckpt):
        return _load_exported_model(Path(ckpt))
    task, recipe, data = _task_of(read_checkpoint(ckpt), device)
    thresholds = getattr(task, "thresholds", None)
    model_spec = model_spec_of(
        recipe,
        data,
        task,
        torch.device(device),
        thresholds=[float(t) for t in thresholds] if isinstance(thresholds, torch.Tensor) else None,
        where=str(ckpt),
    )
    model_spec.postprocessors = dict(getattr(task, "postprocessors", None) or {}) or None
    return Model(task, model_spec, data.preprocessing)


def load_task(ckpt: str | Path, device: str | torch.device = "cpu") -> Task:
    """The bare task (a LightningModule) of an emoframe checkpoint, weights loaded, in eval mode."""
    return _task_of(read_checkpoint(ckpt), device)[0]


def _task_of(
    checkpoint: Checkpoint, device: str | torch.device = "cpu"
) -> tuple[Task, dict[str, Any], builder.DataSpec]:
    """The checkpoint's task rebuilt from its recipe and DataSpec, weights loaded, in eval mode (with both)."""
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
    return task, recipe, data


def _load_exported_model(path: Path) -> Model:
    """An ``emoframe export`` file as a ``Model``: the runtime (onnxruntime or TorchScript) and its stored recipe."""
    exported = load_exported(path)
    recipe, _ = builder.upgrade_recipe(dict(exported.recipe))
    data = builder.DataSpec(**dict(exported.data))
    thresholds = (getattr(exported, "extras", None) or {}).get("thresholds")
    model_spec = model_spec_of(recipe, data, exported, torch.device("cpu"), thresholds=thresholds, where=str(path))
    stored = ((getattr(exported, "extras", None) or {}).get("postprocess") or {}).get("targets") or {}
    model_spec.postprocessors = {n: PostProcessor.from_dict(d) for n, d in stored.items()} or None
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


def export_model(
    ckpt: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    parity: str = "data",
    overrides: list[str] | None = None,
    items: int = 8,
    opset: int | None = None,
) -> ExportResult:
    """``emoframe export``: the checkpoint's task as an ONNX (``format="onnx"``) or TorchScript file, its recipe,
    DataSpec, task and class names inside, checked against PyTorch before it is kept.

    ``parity="data"`` checks on ``items`` items of the recipe's own datamodule (test split, else validation) when
    its data can be read, else on random inputs; ``"random"`` skips the data. ``overrides`` (``key=value``) change
    that datamodule only (``data.root=...`` where the data moved); the file stores the checkpoint's recipe.
    """
    from emoframe.export.onnx import OPSET
    from emoframe.export.run import default_output, export_task

    if parity not in ("data", "random"):
        raise RecipeError(f"--parity: expected 'data' or 'random', got {parity!r}")
    if isinstance(items, bool) or not isinstance(items, int) or items < 1:
        raise RecipeError(f"--items: expected an integer >= 1, got {items!r}")
    checkpoint = read_checkpoint(ckpt)
    task = _task_of(checkpoint)[0]
    batch, source = None, "random inputs (--parity random)"
    if parity == "data":
        batch, source = _real_batch(task.recipe or {}, overrides, items)
    path = Path(output) if output else default_output(checkpoint.path, format)
    return export_task(task, format, path, dict(checkpoint.payload), batch, source, items=items, opset=opset or OPSET)


def _real_batch(recipe: dict[str, Any], overrides: list[str] | None, items: int) -> tuple[Any, str]:
    """A batch of the recipe's datamodule (test split, else validation; no loader workers) and its description,
    or ``(None, why not)``."""
    data = dict(recipe.get("data") or {})
    data["loader"] = {**dict(data.get("loader") or {}), "num_workers": 0, "batch_size": items}
    name = data.get("name") or data.get("class_path")
    try:
        cfg = config.checkpoint_recipe({**recipe, "data": data}, overrides)
        datamodule = builder.build_datamodule(cfg)
    except Exception as err:  # any failure to build it: parity still runs, on random inputs, and says why
        return None, f"random inputs (data.{name} not built: {_first_line(err)})"
    why = "no test or validation items"
    for stage, split in (("test", "test"), ("validate", "val")):
        try:
            datamodule.setup(stage)
            batch = next(iter(getattr(datamodule, f"{split}_dataloader")()), None)
        except Exception as err:  # unreachable data: missing folder, empty split, unreadable files
            why = _first_line(err)
            continue
        if batch is not None:
            return batch, f"{min(items, len(batch[0]))} real {split} items of data.{name}"
    return None, f"random inputs (data.{name} not readable: {why})"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]


def list_components(kind: str | None = None) -> dict[str, list[str]]:
    """Registered names per kind (``backbones``, ``losses``, ``temporal``, ...), built-ins and plugins."""
    load_builtins()
    load_plugins()
    if kind is not None and kind not in REGISTRIES:
        raise RecipeError(f"Unknown kind '{kind}'. Kinds: {', '.join(REGISTRIES)}")
    return {k: r.names() for k, r in REGISTRIES.items() if kind is None or k == kind}
