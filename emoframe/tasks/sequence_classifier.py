"""Clip classification (CNN + LSTM, Knyazev et al. / Fan et al.): frame backbone -> temporal model -> one emotion.

Batches are ``emoframe.data.clips``' ``(frames (B, T, C, H, W), mask (B, T), label (B,), clip (B,))``.
The backbone runs on the unmasked frames of (B*T, C, H, W) only; the temporal model
(``emoframe.tasks.temporal``) sees every step, padding as zero features; the clip vector is read out
from it and the head scores the classes. Metrics, logging and the test confusion reports are the frame
classifier's (``ClassificationMetrics``, ``write_confusion_reports``); ``predict`` writes one CSV row of
class probabilities per clip.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from emoframe.registry import TASKS, RecipeError
from emoframe.tasks.base import OptimizerFactory, SchedulerFactory
from emoframe.tasks.frame_classifier import FrameClassifier
from emoframe.tasks.temporal import TemporalKind, TemporalModel, temporal_width

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

    inputs = 2

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        loss: nn.Module,
        class_names: list[str],
        temporal: TemporalKind = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        readout: Readout = "last",
        freeze_backbone: bool = False,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__(backbone, head, loss, class_names, optimizer, scheduler, channels_last)
        if readout not in ("last", "mean"):
            raise RecipeError(f"model.readout: expected 'last' or 'mean', got {readout!r}")
        in_features = int(backbone.num_features)  # type: ignore[arg-type]
        self.temporal = TemporalModel(temporal, in_features, hidden_size, num_layers, bidirectional, dropout)
        self.readout = readout if temporal in ("lstm", "gru") else "mean"
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @classmethod
    def head_in_features(
        cls,
        backbone_features: int,
        temporal: str = "lstm",
        hidden_size: int = 256,
        bidirectional: bool = False,
        **task_args: Any,
    ) -> int:
        return temporal_width(temporal, backbone_features, hidden_size, bidirectional)

    def train(self, mode: bool = True) -> SequenceClassifier:
        """A frozen backbone stays in eval mode, so its batch-norm statistics stay the pretrained ones."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def frame_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, F) backbone features; masked frames are zeros and never run."""
        b, t = frames.shape[:2]
        flat, keep = frames.reshape(b * t, *frames.shape[2:]), mask.reshape(-1)
        width = int(self.backbone.num_features)  # type: ignore[arg-type]
        features = frames.new_zeros((b * t, width))
        if bool(keep.any()):
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
                computed = self.backbone(self.to_memory_format(flat[keep]))
            features = features.index_put((keep,), computed.to(features))
        return features.reshape(b, t, width)

    def clip_vector(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, F') temporal outputs -> (B, F') one vector per clip (see ``readout``)."""
        if self.readout == "mean":
            weights = mask.to(sequence.dtype).unsqueeze(-1)
            return (sequence * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        steps = torch.arange(1, mask.shape[1] + 1, device=mask.device)
        last = (mask.long() * steps).amax(dim=1).clamp(min=1) - 1
        rows = torch.arange(len(sequence), device=sequence.device)
        out = sequence[rows, last]
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

    def _step(self, batch: Any, split: str) -> torch.Tensor:
        frames, mask, y = batch[0], batch[1], batch[2]
        logits = self(frames, mask)
        loss = self.loss(logits, y)
        self.metrics[f"{split}_metrics"].update(logits.detach(), y)
        self.log(
            f"{split}/loss",
            loss,
            on_step=split == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=y.numel(),
            sync_dist=split != "train",
        )
        return loss

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        frames, mask, label, clip = batch[:4]
        probs = self(frames, mask).softmax(dim=-1)
        return {"probs": probs, "pred": probs.argmax(dim=-1), "target": label, "clip": clip, "frames": mask.sum(1)}

    def write_predictions(self, outputs: list[dict[str, torch.Tensor]], datamodule: Any, path: Path) -> list[Path]:
        """One row per clip, in clip order: name, file, frames used, true class (empty if unknown), prediction,
        and the probability of every class."""
        recordings = datamodule.recordings("predict")
        rows = sorted(
            (int(c), int(n), int(t), int(p), probs.tolist())
            for batch in outputs
            for c, n, t, p, probs in zip(batch["clip"], batch["frames"], batch["target"], batch["pred"], batch["probs"])
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["clip", "video", "frames", "target", "pred", *[f"p_{c}" for c in self.class_names]])
            for clip, frames, target, pred, probs in rows:
                rec = recordings[clip]
                truth = self.class_names[target] if target >= 0 else ""
                w.writerow([rec.name, rec.source, frames, truth, self.class_names[pred], *[f"{p:.5f}" for p in probs]])
        return [path]
