"""Checkpoints written by ``emoframe fit``: found, read and checked in one place.

A checkpoint is Lightning's file (``state_dict`` and trainer state) with the resolved recipe of its run stored
under ``emoframe_recipe`` (``RECIPE_KEY``), so ``emoframe test --ckpt X`` or ``emoframe extract --ckpt X``
need no recipe file. Every way a file can fail to be one (missing, truncated, foreign, no ``state_dict``, no
recipe) is a one-line error naming the file.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emoframe.errors import RecipeError, WeightsError
from emoframe.registry import BACKBONES

RECIPE_KEY = "emoframe_recipe"
"""Where a task stores its run's resolved recipe in the checkpoint (``Task.on_save_checkpoint``)."""
LEGACY_DATA_KEY = "emoframe_data"
"""Where checkpoints written before ``emoframe.spec.ModelSpec`` stored their data's description (``ModelSpec.upgrade``
reads it); today's store the whole model spec under ``emoframe.spec.SPEC_KEY``."""

FRAME_KEYS = ("size", "channels", "mean", "std")
"""Settings of a recipe's ``data.image`` section that decide how frames look to the network: a model sees them
as it was trained on them."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file that holds a ``state_dict``; ``recipe`` is its stored recipe (``None`` if it has none)."""

    path: Path
    state_dict: Mapping[str, torch.Tensor]
    recipe: dict[str, Any] | None
    payload: Mapping[str, Any] = field(default_factory=dict, repr=False)  # all of it, for a task's on_load_checkpoint

    def require_recipe(self, hint: str = "give the recipe file too") -> dict[str, Any]:
        """The stored recipe, or a one-line ``RecipeError`` ending with ``hint``."""
        if not self.recipe:
            raise RecipeError(f"{self.path} holds no emoframe recipe: {hint}")
        return self.recipe

    def sha256(self) -> str:
        """Hex digest of the file's bytes (what makes two extractions of it comparable)."""
        digest = hashlib.sha256()
        with self.path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint at ``path`` on the CPU, or a one-line error: not found, unreadable, or not Lightning's."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"Checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated or foreign files fail in many ways inside torch.load
        raise WeightsError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    state_dict = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(state_dict, dict):
        raise WeightsError(f"{path}: not an emoframe checkpoint (no state_dict inside)")
    recipe = payload.get(RECIPE_KEY)
    return Checkpoint(path, state_dict, dict(recipe) if isinstance(recipe, Mapping) else None, payload)


def check_fits(checkpoint: Checkpoint, model: nn.Module) -> None:
    """A one-line ``WeightsError`` when the checkpoint's weights are not this model's (another task, another
    backbone or head size), before Lightning's loader fails with a page of size mismatches."""
    own = model.state_dict()
    theirs = checkpoint.state_dict
    missing = [k for k in own if k not in theirs]
    extra = [k for k in theirs if k not in own]
    where = f"{checkpoint.path}: its weights are not this model's"
    if missing or extra:
        first = f"'{missing[0]}' missing" if missing else f"'{extra[0]}' unexpected"
        raise WeightsError(
            f"{where} ({len(missing)} tensors missing, {len(extra)} unexpected, first {first}); "
            "use the recipe it was trained with, or give --ckpt alone"
        )
    for key, value in own.items():
        if tuple(theirs[key].shape) != tuple(value.shape):
            raise WeightsError(
                f"{where}: '{key}' is {tuple(theirs[key].shape)} in the file but {tuple(value.shape)} here "
                "(another data set, backbone or head size?)"
            )


def find_checkpoint(cfg: Mapping[str, Any], which: str) -> Path:
    """``best``/``last`` in the newest run of this recipe that has one, or a path."""
    if which not in ("best", "last"):
        path = Path(which)
        if not path.is_file():
            raise RecipeError(f"Checkpoint not found: {path}")
        return path
    base, found = newest_run_file(cfg, f"checkpoints/{which}.ckpt")
    if found is None:
        raise RecipeError(f"No '{which}' checkpoint under {base}/*/checkpoints/ (train first, or give --ckpt PATH)")
    return found


def newest_run_file(cfg: Mapping[str, Any], name: str) -> tuple[Path, Path | None]:
    """``<run.dir>/<run.name>`` and the most recently written ``*/<name>`` under it (``None`` if there is none)."""
    run = cfg.get("run") or {}
    base = Path(run.get("dir", "runs")) / str(run.get("name", "run"))
    found = sorted(base.glob(f"*/{name}"), key=lambda p: p.stat().st_mtime)
    return base, found[-1] if found else None


def run_dir_of_checkpoint(ckpt: Path) -> Path | None:
    """The run directory of a checkpoint written by emoframe (``<run>/checkpoints/x.ckpt``)."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def load_backbone(
    checkpoint: Checkpoint,
    spec: Mapping[str, Any] | None,
    in_chans: int,
    trained_channels: Any = None,
    inputs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The backbone ``spec`` (the recipe's ``model.backbone``) with the checkpoint's ``backbone.*`` weights, in
    eval mode; the spec's own ``weights:`` file is not read. ``trained_channels`` names the data the
    checkpoint was trained on in a shape-mismatch error; ``inputs`` are further builder-derived arguments
    (``builder.backbone_inputs``: the data's ``input_mean``/``input_std``), given to backbones that take them."""
    ckpt = checkpoint.path
    spec = dict(spec or {})
    if not spec:
        raise RecipeError(f"{ckpt}: its recipe's task has no model.backbone, so there is no penultimate layer to read")
    spec.pop("weights", None)  # the checkpoint's weights replace any pretrained start
    backbone = BACKBONES.build(spec, "model.backbone", **{**dict(inputs or {}), "in_chans": in_chans})
    state = {k.removeprefix("backbone."): v for k, v in checkpoint.state_dict.items() if k.startswith("backbone.")}
    if not state:
        raise WeightsError(f"{ckpt}: no backbone.* tensors in its state_dict (not a checkpoint of an emoframe task?)")
    own = backbone.state_dict()
    for key, value in own.items():
        if key not in state:
            raise WeightsError(f"{ckpt}: backbone tensor '{key}' missing from the checkpoint")
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsError(
                f"{ckpt}: backbone tensor '{key}' is {tuple(state[key].shape)} in the checkpoint but "
                f"{tuple(value.shape)} for data with {in_chans} channel(s); give the data the checkpoint's settings"
                + (
                    f" (it was trained with data.image.channels={trained_channels})"
                    if trained_channels is not None
                    else ""
                )
            )
    extra = sorted(set(state) - set(own))
    if extra:
        raise WeightsError(f"{ckpt}: checkpoint tensor 'backbone.{extra[0]}' has no place in the recipe's backbone")
    backbone.load_state_dict(state)
    return backbone.eval()


def warn_data_differs(trained: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Warn on stderr when the data a checkpoint is run on differ from its training data in ``FRAME_KEYS``
    (``trained``, ``now``: two recipes' ``data:`` sections)."""
    before, after = trained.get("image") or {}, now.get("image") or {}
    for key in FRAME_KEYS:
        if key in before and key in after and before[key] != after[key]:
            print(
                f"Warning: data.image.{key} is {after[key]!r}; the checkpoint was trained with {before[key]!r}",
                file=sys.stderr,
            )
