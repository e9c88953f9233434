"""What an exported graph takes and gives, per task: input names, dynamic axes, examples, the batch's inputs.

Every task's own ``forward`` is traced (no second copy of the model): frame classifiers take ``image`` (B, C, H, W),
the fusion model ``image`` and ``features`` (B, F), sequence tasks ``frames`` (B, T, C, H, W) and ``mask`` (B, T),
with batch and time dynamic. While tracing, ``emoframe.tasks.sequence.frame_features`` runs the backbone on every
frame and zeroes the masked ones (the same numbers as running the unmasked frames alone, without a
data-dependent branch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from emoframe.errors import RecipeError
from emoframe.tasks.base import Task
from emoframe.tasks.frame_classifier import FrameClassifier
from emoframe.tasks.multilabel_classifier import MultilabelClassifier
from emoframe.tasks.sequence import WindowTask
from emoframe.tasks.sequence_classifier import SequenceClassifier
from emoframe.tasks.va_regressor import POSTPROCESS_KEY, VARegressor

Inputs = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Graph:
    """The signature of a task's exported ``forward``.

    ``kind``: ``frame`` (image [, features]), ``clip`` (frames, mask -> one output per clip) or ``window``
    (frames, mask -> one output per frame); ``output``: how scores are read (``softmax``, ``sigmoid``,
    ``identity``).
    """

    kind: str
    inputs: tuple[str, ...]
    output: str
    channels: int
    image_size: int
    feature_dim: int = 0

    @property
    def sequential(self) -> bool:
        return self.kind in ("clip", "window")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Batch (and time for sequences) dynamic in every input and in the output."""
        axes: dict[str, dict[int, str]] = {}
        for name in self.inputs:
            axes[name] = {0: "batch", 1: "time"} if self.sequential else {0: "batch"}
        axes["output"] = {0: "batch", 1: "time"} if self.kind == "window" else {0: "batch"}
        return axes

    def random_inputs(self, batch: int, time: int = 1, seed: int = 0) -> Inputs:
        """Inputs of the right shapes: normal noise (the mask of the last sequence ends halfway, when batch > 1)."""
        g = torch.Generator().manual_seed(seed)
        size = (self.channels, self.image_size, self.image_size)
        if not self.sequential:
            image = torch.randn((batch, *size), generator=g)
            return (image, torch.randn((batch, self.feature_dim), generator=g)) if len(self.inputs) == 2 else (image,)
        frames = torch.randn((batch, time, *size), generator=g)
        mask = torch.ones((batch, time), dtype=torch.bool)
        if batch > 1 and time > 1:
            mask[-1, max(1, time // 2) :] = False
        return frames, mask

    def batch_inputs(self, batch: Sequence[Any], limit: int) -> Inputs:
        """The model's inputs in a datamodule batch (its first ``limit`` items)."""
        if self.kind == "frame":
            return tuple(t[:limit].float() for t in batch[: len(self.inputs)])
        frames = batch[0]
        if frames.dim() == 4:  # a multi-label model on an image batch: frames of their own
            frames = frames[:, None]
            mask = torch.ones(frames.shape[:2], dtype=torch.bool)
        else:
            mask = batch[1] if self.kind == "clip" else batch[2]
        return frames[:limit].float(), mask[:limit].bool()

    def other_length(self, inputs: Inputs) -> Inputs:
        """The same real frames re-cut to another sequence length (and one sequence fewer), for the dynamic time
        axis: half the length, or, for short sequences, the frames repeated to three times it."""
        frames, mask = inputs
        t = frames.shape[1]
        if t >= 4:
            new_t = t // 2 + 1
            frames, mask = frames[:, :new_t], mask[:, :new_t].clone()
            mask[:, 0] = True  # every sequence keeps at least one real frame
        else:
            frames, mask = frames.repeat(1, 3, 1, 1, 1), mask.repeat(1, 3)
        if len(frames) > 1:
            frames, mask = frames[1:], mask[1:]
        return frames.contiguous(), mask.contiguous()


def graph_of(task: Task) -> Graph:
    """The exported signature of a built-in task (a plugin task subclassing one of them gets its parent's)."""
    spec = task.spec.to_dict() if task.spec is not None else {}
    channels = int(spec.get("channels") or 3)
    size = int(spec.get("image_size") or 0)
    if size < 1:
        raise RecipeError("export: the checkpoint's model spec has no image_size; export needs the input size")
    if isinstance(task, SequenceClassifier):
        return Graph("clip", ("frames", "mask"), "softmax", channels, size)
    if isinstance(task, FrameClassifier):
        inputs = ("image", "features")[: int(getattr(task, "inputs", 1))]
        feature_dim = int(getattr(task, "feature_dim", 0) or spec.get("feature_dim") or 0)
        return Graph("frame", inputs, "softmax", channels, size, feature_dim)
    if isinstance(task, WindowTask):
        output = "sigmoid" if isinstance(task, MultilabelClassifier) else "identity"
        return Graph("window", ("frames", "mask"), output, channels, size)
    raise RecipeError(
        f"export: no export signature for task {type(task).__name__}; "
        "expected a frame, fusion, sequence, multi-label or valence/arousal task"
    )


def extras_of(task: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Task state that shapes predictions but is not in the graph: multi-label thresholds, valence/arousal
    post-processing (as stored in the checkpoint)."""
    if isinstance(task, MultilabelClassifier):
        return {"thresholds": [float(v) for v in task.thresholds]}
    if isinstance(task, VARegressor) and payload.get(POSTPROCESS_KEY):
        return {"postprocess": payload[POSTPROCESS_KEY]}
    return {}


@contextmanager
def traceable(task: Task) -> Iterator[Task]:
    """The task in eval mode for ``torch.jit.trace`` (Lightning's ``trainer`` property raises when no trainer is
    attached unless ``_jit_is_scripting`` is set: what its own ``to_torchscript`` does)."""
    was_training, before = task.training, getattr(task, "_jit_is_scripting", False)
    task.eval()
    task._jit_is_scripting = True
    try:
        with torch.no_grad():
            yield task
    finally:
        task._jit_is_scripting = before
        task.train(was_training)


__all__ = ["Graph", "extras_of", "graph_of", "traceable"]
