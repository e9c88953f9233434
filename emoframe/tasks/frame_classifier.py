"""Frame classifier: one face image -> one emotion."""

from __future__ import annotations

from typing import Any, Unpack

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from emoframe.callbacks.reports import ConfusionReport
from emoframe.metrics import ClassificationMetrics
from emoframe.registry import TASKS
from emoframe.tasks.base import Task, TaskParts
from emoframe.tta import TTATransform, average_probabilities


@TASKS.register("frame_classifier")
class FrameClassifier(Task):
    """Frame CNN classifier: backbone -> head -> softmax over the emotion classes."""

    kind = "frame"
    inputs = 1
    """Leading batch entries the model reads; the label is the entry after them (extra ones are ignored)."""

    def __init__(self, **parts: Unpack[TaskParts]) -> None:
        super().__init__(**parts)
        n = len(self.class_names)
        self.metrics = nn.ModuleDict({f"{s}_metrics": ClassificationMetrics(n) for s in ("train", "val", "test")})
        self.results: dict[str, dict[str, np.ndarray]] = {}  # the last epoch's confusion matrix, for the reports
        self.tta_views: tuple[TTATransform, ...] | None = None

    def set_tta(self, views: tuple[TTATransform, ...] | None) -> None:
        """Evaluate with test-time augmentation too: ``test`` scores every batch without and with ``views`` in the
        same pass (``test/*`` and ``test_tta/*``), ``validate`` and ``predict`` give the views' probabilities."""
        self.tta_views = tuple(views) if views else None
        if self.tta_views and "test_tta_metrics" not in self.metrics:
            self.metrics["test_tta_metrics"] = ClassificationMetrics(len(self.class_names)).to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.to_memory_format(x)))

    def logits(self, batch: Any) -> torch.Tensor:
        """The model's output for a batch ``(inputs..., [label])``."""
        return self(*batch[: self.inputs])

    def _step(self, batch: Any, split: str) -> torch.Tensor:
        y = batch[-1]  # a datamodule with features yields (image, features, label): the frame model ignores them
        return self.score(self.logits(batch), y, split)

    def tta_probabilities(self, batch: Any) -> torch.Tensor:
        """Class probabilities averaged over the TTA views (``set_tta``)."""
        assert self.tta_views is not None
        return average_probabilities(self, self.tta_views, *batch[: self.inputs])

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        logits = self.logits(batch)
        self.score(logits, batch[-1], "val")
        probs = self.tta_probabilities(batch) if self.tta_views else logits.softmax(dim=-1)
        return {"probs": probs, "target": batch[-1]}

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """One pass over the test split scores it plain and, with ``set_tta``, with TTA too."""
        logits, y = self.logits(batch), batch[-1]
        self.score(logits, y, "test")
        out = {"probs": logits.softmax(dim=-1), "target": y}
        if self.tta_views:
            out["probs"] = self.tta_probabilities(batch)
            self.metrics["test_tta_metrics"].update(out["probs"], y)
        return out

    def score(self, logits: torch.Tensor, y: torch.Tensor, split: str) -> torch.Tensor:
        """The loss of a batch's logits, after updating the split's metrics with them."""
        loss = self.loss(logits, y)
        self.metrics[f"{split}_metrics"].update(logits.detach(), y)
        self.log_loss(split, loss, y.numel())
        return loss

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        probs = self.tta_probabilities(batch) if self.tta_views else self.logits(batch).softmax(dim=-1)
        out = {"probs": probs, "pred": probs.argmax(dim=-1)}
        if len(batch) > self.inputs:
            out["target"] = batch[-1]
        return out

    def configure_callbacks(self) -> list[Callback]:
        return [ConfusionReport()]

    def epoch_end(self, split: str) -> None:
        if split == "test" and self.tta_views:
            self._log_split("test_tta")
        self._log_split(split)

    def _log_split(self, split: str) -> None:
        scalars, recall, confusion = self.metrics[f"{split}_metrics"].compute()
        logged = {f"{split}/{k}": v for k, v in scalars.items()}
        logged.update({f"{split}/recall/{c}": recall[i] for i, c in enumerate(self.class_names)})
        # already synced by torchmetrics; every rank logs the same value
        self.log(f"{split}/acc", logged.pop(f"{split}/acc"), prog_bar=True, sync_dist=False)
        self.log_dict(logged, prog_bar=False, sync_dist=False)
        self.results[split] = {"confusion": confusion.cpu().numpy()}
        self.metrics[f"{split}_metrics"].reset()

    def reset_metrics(self, split: str) -> None:
        self.metrics[f"{split}_metrics"].reset()
