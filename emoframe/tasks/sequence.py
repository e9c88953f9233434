"""What sequence tasks share: backbone on the unmasked frames, a temporal model (``emoframe.temporal``), a head.

``WindowTask`` is the base of the per-frame window tasks (``va_regressor``, ``multilabel_classifier``): batches
are ``emoframe.data.sequences``' ``(frames, targets, mask, recording, start)`` windows and the model gives one
output per frame. The temporal model comes from ``model.temporal: {name: lstm, hidden_size: 256, ...}``
(``temporal_default`` when the recipe gives none); the old flat keys fail naming the new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from emoframe.tasks.base import Task, TaskParts
from emoframe.temporal import TemporalModel

TEMPORAL_MOVED: dict[str, str] = {
    "hidden_size": "temporal.hidden_size",
    "num_layers": "temporal.num_layers",
    "bidirectional": "temporal.bidirectional",
    "dropout": "temporal.dropout",
}
"""The temporal model's arguments, once flat ``model:`` keys (``moved_keys`` of the sequence tasks)."""


class SequenceParts(TaskParts, total=False):
    """A sequence task's parts: every task's, and the temporal model the builder builds from ``model.temporal``."""

    temporal: TemporalModel


def frame_features(
    backbone: nn.Module,
    frames: torch.Tensor,
    mask: torch.Tensor,
    memory_format: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    grad: bool = True,
) -> torch.Tensor:
    """(B, T, C, H, W) frames, (B, T) mask -> (B, T, F) backbone features; masked frames are zeros and never run.
    ``grad=False`` runs the backbone without autograd (a frozen backbone)."""
    b, t = frames.shape[:2]
    flat, keep = frames.reshape(b * t, *frames.shape[2:]), mask.reshape(-1)
    if (
        torch.jit.is_tracing()
    ):  # export (emoframe.export): no data-dependent branch; every frame runs, masked ones zeroed
        computed = backbone(memory_format(flat))
        return (computed * keep.unsqueeze(-1).to(computed.dtype)).reshape(b, t, -1)
    width = int(backbone.num_features)  # type: ignore[arg-type]
    features = frames.new_zeros((b * t, width))
    if bool(keep.any()):
        with torch.set_grad_enabled(torch.is_grad_enabled() and grad):
            computed = backbone(memory_format(flat[keep]))
        features = features.index_put((keep,), computed.to(features))
    return features.reshape(b, t, width)


def per_frame_outputs(
    backbone: nn.Module,
    temporal: nn.Module,
    head: nn.Module,
    frames: torch.Tensor,
    mask: torch.Tensor | None,
    memory_format: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
) -> torch.Tensor:
    """(B, T, C, H, W) frames, (B, T) mask -> (B, T, outputs): the backbone on the unmasked frames only
    (zero features elsewhere), the temporal model over every step, the head per frame."""
    b, t = frames.shape[:2]
    mask = torch.ones((b, t), dtype=torch.bool, device=frames.device) if mask is None else mask
    sequence = temporal(frame_features(backbone, frames, mask, memory_format), mask)
    return head(sequence.reshape(b * t, -1)).reshape(b, t, -1)


class WindowTask(Task):
    """Frame backbone -> temporal model -> head per frame, over windows of frames; ``_step`` is the subclass's."""

    temporal_default: ClassVar[dict[str, Any]] = {"name": "lstm", "hidden_size": 256, "num_layers": 2}
    moved_keys: ClassVar[dict[str, str]] = TEMPORAL_MOVED
    predict_key: ClassVar[str] = "preds"
    kind = "window"
    window_key = "windows.size"
    """The ``predict_step`` output holding the per-frame predictions (``predict_outputs`` of the logits)."""

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C, H, W) frames, (B, T) mask -> (B, T, outputs)."""
        return per_frame_outputs(self.backbone, self.temporal, self.head, frames, mask, self.to_memory_format)

    def predict_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """What ``predict`` reports of the model's outputs (e.g. sigmoid probabilities of logits)."""
        return outputs

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        frames, _, mask, recording, start = batch[:5]
        return {self.predict_key: self.predict_outputs(self(frames, mask)), "recording": recording, "start": start}

    @staticmethod
    def scored(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs, targets) of the frames that are unmasked and labelled."""
        keep = mask & torch.isfinite(targets).any(dim=-1)
        return outputs[keep], targets[keep]
