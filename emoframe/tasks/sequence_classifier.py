"""Clip classification (CNN + LSTM, Knyazev et al. / Fan et al.): frame backbone -> temporal model -> one emotion.

Batches are ``emoframe.data.clips``' ``(frames (B, T, C, H, W), mask (B, T), label (B,), clip (B,))``.
The backbone runs on the unmasked frames of (B*T, C, H, W) only; the temporal model
(``model.temporal``, ``emoframe.temporal``) sees every step, padding as zero features; the clip vector is read out
from it and the head scores the classes. Metrics, logging and the test confusion reports are the frame
classifier's (``ClassificationMetrics``, the ``confusion_report`` component); ``predict`` writes one CSV row
of class probabilities per clip (the ``clip_predictions`` writer).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Unpack

import torch

from emoframe.registry import TASKS, RecipeError
from emoframe.tasks.frame_classifier import FrameClassifier
from emoframe.tasks.sequence import TEMPORAL_MOVED, SequenceParts, frame_features
from emoframe.temporal import RNNTemporal

Readout = Literal["last", "mean"]


@TASKS.register("sequence_classifier")
class SequenceClassifier(FrameClassifier):
    """Frame backbone -> temporal model (``lstm``, ``gru``; ``mean`` pooling as the baseline) -> head -> softmax.

    ``readout`` turns an RNN's outputs into the clip vector: ``last`` (the state after the clip's last
    frame; bidirectional: the forward state there and the backward state at the first frame) or
    ``mean`` (the masked mean over frames). ``mean`` and ``none`` temporal models always average.
    ``freeze_backbone`` keeps the backbone's weights and batch-norm statistics fixed (features as from a
    pretrained network, e.g. an emoframe FER2013 checkpoint named by the backbone's ``weights:``); the
    ``freeze_unfreeze`` callback is the alternative for a frozen-then-trained schedule.
    """

    kind = "clip"
    window_key = "clip.frames"
    inputs = 2
    temporal_default: ClassVar[dict[str, Any]] = {"name": "lstm", "hidden_size": 256, "num_layers": 1}
    moved_keys: ClassVar[dict[str, str]] = TEMPORAL_MOVED
    prediction_writer = "clip_predictions"

    def __init__(
        self,
        readout: Readout = "last",
        freeze_backbone: bool = False,
        **parts: Unpack[SequenceParts],
    ) -> None:
        super().__init__(**parts)  # type: ignore[misc]
        if readout not in ("last", "mean"):
            raise RecipeError(f"model.readout: expected 'last' or 'mean', got {readout!r}")
        self.readout = readout if isinstance(self.temporal, RNNTemporal) else "mean"
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> SequenceClassifier:
        """A frozen backbone stays in eval mode, so its batch-norm statistics stay the pretrained ones."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def frame_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, F) backbone features; masked frames are zeros and never run."""
        return frame_features(self.backbone, frames, mask, self.to_memory_format, grad=not self.freeze_backbone)

    def clip_vector(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, F') temporal outputs -> (B, F') one vector per clip (see ``readout``)."""
        if self.readout == "mean":
            weights = mask.to(sequence.dtype).unsqueeze(-1)
            return (sequence * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        steps = torch.arange(1, mask.shape[1] + 1, device=mask.device)
        last = (mask.long() * steps).amax(dim=1).clamp(min=1) - 1
        # a gather rather than sequence[arange(B), last]: the same values, and a traced export keeps B dynamic
        out = sequence.gather(1, last.view(-1, 1, 1).expand(-1, 1, sequence.shape[-1])).squeeze(1)
        if self.temporal.bidirectional:  # the backward direction has read the whole clip at its first step
            half = sequence.shape[-1] // 2
            out = torch.cat([out[:, :half], sequence[:, 0, half:]], dim=-1)
        return out

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """(B, T, C, H, W) frames, (B, T) mask -> (B, classes) logits."""
        if mask is None:
            mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        sequence = self.temporal(self.frame_features(frames, mask), mask)
        return self.head(self.clip_vector(sequence, mask))

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # type: ignore[override]
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:  # type: ignore[override]
        self._step(batch, "test")

    def _step(self, batch: Any, split: str) -> torch.Tensor:
        frames, mask, y = batch[0], batch[1], batch[2]
        return self.score(self(frames, mask), y, split)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        frames, mask, label, clip = batch[:4]
        probs = self(frames, mask).softmax(dim=-1)
        return {"probs": probs, "pred": probs.argmax(dim=-1), "target": label, "clip": clip, "frames": mask.sum(1)}
