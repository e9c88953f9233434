"""Ensemble members: checkpoints of frame tasks, or their saved probabilities; and ``load_ensemble``.

A checkpoint member is loaded as ``emoframe.load_model`` loads it, and fed its *own* data: its stored recipe
(with the command's ``key=value`` overrides) builds its datamodule, so members trained on different image
sizes or normalisations (small_cnn at 48 px, dlib_resnet at 150 px) still ensemble; their splits must hold the
same examples in the same order (checked on the labels). A probability-file member (``*.probs.npz`` from
``emoframe test --save-probs``) brings its validation and test probabilities along.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoframe.builder import build_datamodule, upgrade_recipe
from emoframe.checkpoints import read_checkpoint
from emoframe.config import checkpoint_recipe
from emoframe.devices import resolve_device as resolve_device
from emoframe.ensemble.files import EnsembleSpec, read_ensemble
from emoframe.errors import DataError, RecipeError
from emoframe.eval.probabilities import (
    PROBS_SUFFIX,
    ProbabilityFile,
    SplitProbabilities,
    collect,
    read_probabilities,
)
from emoframe.models import load_task, task_of
from emoframe.registry import load_plugins
from emoframe.tasks.frame_classifier import FrameClassifier
from emoframe.tta import TTA, TTATransform

STAGES = {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}


def split_loader(datamodule: Any, split: str) -> Any:
    """The DataLoader of ``split`` (``val``, ``test``, ``predict``) of a built datamodule, set up for it: every
    example, in order (no distributed sampler)."""
    if split not in STAGES:
        raise RecipeError(f"split: expected one of {', '.join(STAGES)}, got {split!r}")
    datamodule.setup(STAGES[split])
    trainer = getattr(datamodule, "trainer", None)
    datamodule.trainer = None  # one process reads the whole split, even inside a DDP run's rank 0
    try:
        return getattr(datamodule, f"{split}_dataloader")()
    finally:
        datamodule.trainer = trainer


def frame_task(task: Any, where: Path | str) -> FrameClassifier:
    """``task`` when it is a frame task (one probability vector per image), else a one-line error."""
    if not isinstance(task, FrameClassifier):
        raise RecipeError(
            f"{where}: a {type(task).__name__} checkpoint; ensembles and --tta take frame tasks "
            "(frame_classifier, fusion_classifier): one class-probability vector per image"
        )
    return task


def probability_model(task: nn.Module, views: Sequence[TTATransform] | None) -> TTA:
    """The task's probabilities, averaged over ``views`` (none: exactly ``softmax(task(x))``)."""
    return TTA(task, views or (TTATransform(),))


@dataclass
class CheckpointMember:
    """A loaded checkpoint member: the task (eval mode) and the recipe its data is built from."""

    path: Path
    task: FrameClassifier
    recipe: dict[str, Any]

    @classmethod
    def load(
        cls, path: str | Path, overrides: Sequence[str] = (), device: torch.device | str = "cpu"
    ) -> CheckpointMember:
        path = Path(path)
        checkpoint = read_checkpoint(path)
        stored, _ = upgrade_recipe(checkpoint.require_recipe("ensemble members are checkpoints of emoframe fit"))
        recipe = checkpoint_recipe(stored, list(overrides))
        load_plugins(list(recipe.get("imports") or []))
        task = frame_task(task_of(checkpoint, device), path)  # the file is read once
        return cls(path, task, recipe)

    def probabilities(
        self, splits: Sequence[str], views: Sequence[TTATransform] | None = None, device: torch.device | str = "cpu"
    ) -> ProbabilityFile:
        """The member's probabilities on each of ``splits`` of its own datamodule."""
        datamodule = build_datamodule(self.recipe)
        names = list(getattr(datamodule, "class_names", []))
        if names != list(self.task.class_names):
            raise DataError(f"{self.path}: its data has classes {names}, the checkpoint {list(self.task.class_names)}")
        model = probability_model(self.task, views).to(device)
        out = {}
        for split in splits:
            out[split] = collect(
                model, split_loader(datamodule, split), self.task.inputs, device, desc=f"{self.path.name} {split}"
            )
        meta = {"checkpoint": str(self.path.resolve()), "tta": [v.settings() for v in views] if views else None}
        return ProbabilityFile(out, list(self.task.class_names), meta, None)


def is_probability_file(path: str | Path) -> bool:
    return str(path).endswith((PROBS_SUFFIX, ".npz"))


def load_member(
    path: str | Path, splits: Sequence[str], overrides: Sequence[str] = (), device: torch.device | str = "cpu"
) -> CheckpointMember | ProbabilityFile:
    """A member as loaded, nothing evaluated yet: its classes can be compared with the others' first."""
    if is_probability_file(path):
        found = read_probabilities(path)
        missing = [s for s in splits if s not in found.splits]
        if missing:
            raise DataError(f"{path}: no '{missing[0]}' probabilities (it holds {', '.join(found.splits)})")
        return found
    return CheckpointMember.load(path, overrides, device)


def classes_of(member: CheckpointMember | ProbabilityFile) -> list[str]:
    return list(member.class_names if isinstance(member, ProbabilityFile) else member.task.class_names)


def evaluate_member(
    member: CheckpointMember | ProbabilityFile,
    splits: Sequence[str],
    views: Sequence[TTATransform] | None = None,
    device: torch.device | str = "cpu",
) -> ProbabilityFile:
    """A loaded member's probabilities on ``splits`` (a probability file's own; a checkpoint's computed)."""
    if isinstance(member, ProbabilityFile):
        return member
    probs = member.probabilities(splits, views, device)
    probs.path = None
    return probs


def member_probabilities(
    path: str | Path,
    splits: Sequence[str],
    overrides: Sequence[str] = (),
    views: Sequence[TTATransform] | None = None,
    device: torch.device | str = "cpu",
) -> ProbabilityFile:
    """A member's probabilities on ``splits``: read from a probability file, or computed from a checkpoint."""
    return evaluate_member(load_member(path, splits, overrides, device), splits, views, device)


def check_same_classes(classes: Sequence[Sequence[str]], names: Sequence[str]) -> None:
    """Members predict the same set of classes (in any order): one line naming both lists, before any member
    is evaluated (a 7-class and a 6-class member would otherwise be evaluated, then disagree on sizes)."""
    first = list(classes[0])
    for member, name in zip(classes[1:], names[1:]):
        if sorted(member) != sorted(first) or len(set(member)) != len(member):
            only = sorted(set(first) ^ set(member))
            differ = f" (not in both: {', '.join(only)})" if only else ""
            raise DataError(
                f"{name} predicts {len(member)} classes {list(member)}, {names[0]} {len(first)} classes {first}"
                f"{differ}: ensemble members must predict the same classes"
            )


def align_classes(member: ProbabilityFile, order: Sequence[str]) -> ProbabilityFile:
    """``member`` with its probability columns (and labels) in the class ``order`` (the same set, by name)."""
    if list(member.class_names) == list(order):
        return member
    columns = np.asarray([member.class_names.index(c) for c in order])
    relabel = np.asarray([list(order).index(c) for c in member.class_names])  # member's index -> order's index
    splits = {}
    for split, sp in member.splits.items():
        labels = np.where(sp.labels >= 0, relabel[np.clip(sp.labels, 0, None)], sp.labels)
        splits[split] = SplitProbabilities(sp.probs[:, columns], labels.astype(sp.labels.dtype))
    return ProbabilityFile(splits, list(order), dict(member.meta), member.path)


def align_members(
    members: Sequence[ProbabilityFile], names: Sequence[str], splits: Sequence[str]
) -> list[ProbabilityFile]:
    """Every member's classes in the first's order (by name), then the same examples checked."""
    check_same_classes([m.class_names for m in members], names)
    aligned = [align_classes(m, members[0].class_names) for m in members]
    check_same_examples(aligned, names, splits)
    return aligned


def check_same_examples(members: Sequence[ProbabilityFile], names: Sequence[str], splits: Sequence[str]) -> None:
    """Members agree on classes, and on each split's size and labels (the same examples in the same order)."""
    first = members[0]
    for member, name in zip(members[1:], names[1:]):
        if member.class_names != first.class_names:
            raise DataError(f"{name}: classes {member.class_names} differ from {names[0]}'s {first.class_names}")
        for split in splits:
            a, b = first.splits[split].labels, member.splits[split].labels
            if a.shape != b.shape or not np.array_equal(a, b):
                raise DataError(
                    f"{name}: its {split} split ({len(b)} examples) is not {names[0]}'s ({len(a)}): ensemble members "
                    "must be evaluated on the same examples in the same order (same data, subset and split)"
                )


class Ensemble(nn.Module):
    """Members' class probabilities, weighted and averaged: ``forward(x, *rest) -> (B, classes)`` probabilities.

    Each member is a frame task wrapped in ``emoframe.tta.TTA`` (the ensemble's views, or the identity) and reads
    its own leading inputs (a fusion member also takes the feature vectors). All members must see frames the same
    way (``preprocessing``: image size, channels, mean, std), as a single input batch feeds them all.
    """

    def __init__(
        self,
        members: Sequence[FrameClassifier],
        weights: Sequence[float],
        class_names: Sequence[str],
        views: Sequence[TTATransform] | None = None,
    ) -> None:
        super().__init__()
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64) / float(np.sum(weights)), dtype=torch.float32)
        self.members = nn.ModuleList([probability_model(m, views) for m in members])
        self.inputs = [int(getattr(m, "inputs", 1)) for m in members]
        # each member's columns in the ensemble's class order, by name (None: already in it)
        self.columns = [_columns(list(m.class_names), list(class_names)) for m in members]
        self.register_buffer("weights", w)
        self.class_names = list(class_names)
        self.views = tuple(views or ())

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = None
        for weight, member, n, columns in zip(self.weights, self.members, self.inputs, self.columns):
            if weight == 0:
                continue
            p = member(*inputs[:n])
            p = weight * (p if columns is None else p[:, columns])
            out = p if out is None else out + p
        assert out is not None  # the weights sum to 1
        return out


def _columns(member: list[str], order: list[str]) -> list[int] | None:
    """Where each class of ``order`` is among the member's outputs; None when the orders agree."""
    return None if member == order else [member.index(c) for c in order]


def load_ensemble(path: str | Path, device: str | torch.device = "cpu") -> Ensemble:
    """An ensemble file as one model in eval mode: ``load_ensemble(p)(x)`` gives the weighted class probabilities.

    Its ``class_names`` say what it predicts, ``preprocessing`` how its inputs must be made (the members', which
    must agree), ``spec`` the file's contents. Members of weight 0 are not loaded."""
    spec = read_ensemble(path)
    tasks, weights = [], []
    for i, m in enumerate(spec.members):
        if m.weight == 0:
            continue
        if m.checkpoint is None:
            raise RecipeError(f"{spec.path}: members[{i}] has probabilities but no checkpoint: it cannot predict")
        task = frame_task(load_task(m.checkpoint, device=device), m.checkpoint)
        if sorted(task.class_names) != sorted(spec.class_names):
            raise RecipeError(
                f"{m.checkpoint}: classes {task.class_names} are not the ensemble's {list(spec.class_names)}"
            )
        tasks.append(task)
        weights.append(m.weight)
    seen = {str(t.preprocessing): t for t in tasks}  # type: ignore[attr-defined]
    if len(seen) > 1:
        a, b = list(seen)[:2]
        raise RecipeError(
            f"{spec.path}: its members see frames differently ({a} vs {b}); one input batch cannot feed them all: "
            "evaluate it with emoframe test/predict --ckpt, which feeds every member its own data"
        )
    model = Ensemble(tasks, weights, spec.class_names, spec.tta).eval().to(device)
    model.preprocessing = tasks[0].preprocessing  # type: ignore[attr-defined]
    model.spec = spec  # type: ignore[attr-defined]
    return model


def ensemble_probabilities(
    spec: EnsembleSpec | str | Path,
    splits: Sequence[str],
    overrides: Sequence[str] = (),
    device: torch.device | str = "cpu",
) -> tuple[dict[str, SplitProbabilities], list[tuple[Path, float, ProbabilityFile]]]:
    """The ensemble's probabilities on ``splits``, each member fed its own data; and each member's own."""
    spec = spec if isinstance(spec, EnsembleSpec) else read_ensemble(spec)
    loaded = []
    for i, m in enumerate(spec.members):
        if m.checkpoint is None:
            raise RecipeError(f"{spec.path}: members[{i}] has probabilities but no checkpoint: it cannot be evaluated")
        if m.weight == 0:
            continue
        loaded.append((m.checkpoint, m.weight, load_member(m.checkpoint, splits, overrides, device)))
    names = [str(c) for c, _, _ in loaded]
    check_same_classes([list(spec.class_names), *(classes_of(x) for _, _, x in loaded)], [str(spec.path), *names])
    probs = [evaluate_member(x, splits, spec.tta, device) for _, _, x in loaded]
    probs = [align_classes(p, spec.class_names) for p in probs]
    check_same_examples(probs, names, splits)
    members = [(c, w, p) for (c, w, _), p in zip(loaded, probs, strict=True)]
    total = sum(w for _, w, _ in members)
    out = {}
    for split in splits:
        mix = sum(w / total * p.splits[split].probs.astype(np.float64) for _, w, p in members)
        out[split] = SplitProbabilities(np.asarray(mix), members[0][2].splits[split].labels)
    return out, members
