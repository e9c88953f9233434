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

import torch

from emoframe import builder, config
from emoframe.checkpoints import read_checkpoint
from emoframe.errors import RecipeError
from emoframe.registry import REGISTRIES, load_builtins, load_plugins
from emoframe.tasks.base import DATA_KEY, Task


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


def load_model(ckpt: str | Path, device: str | torch.device = "cpu") -> Task:
    """The task of an emoframe checkpoint, weights loaded, in eval mode.

    Its ``class_names`` say what it predicts and ``preprocessing`` how its inputs were made in training
    (image size, channels, mean, std, face settings). Neither the data set nor the recipe file is needed:
    both travel in the checkpoint.
    """
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
    return task


def list_components(kind: str | None = None) -> dict[str, list[str]]:
    """Registered names per kind (``backbones``, ``losses``, ``temporal``, ...), built-ins and plugins."""
    load_builtins()
    load_plugins()
    if kind is not None and kind not in REGISTRIES:
        raise RecipeError(f"Unknown kind '{kind}'. Kinds: {', '.join(REGISTRIES)}")
    return {k: r.names() for k, r in REGISTRIES.items() if kind is None or k == kind}
