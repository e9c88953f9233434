"""Single-label classification metrics for one split: accuracy, macro F1, per-class recall, confusion."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MetricCollection, SumMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)


class ClassificationMetrics(nn.Module):
    """Accumulates a split's predictions; ``compute()`` returns scalars plus the confusion matrix.

    ``samples`` counts the examples seen, so a DDP run can be checked to see each example exactly once.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.scalars = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "macro_f1": MulticlassF1Score(num_classes, average="macro"),
                "balanced_acc": MulticlassAccuracy(num_classes, average="macro"),
            }
        )
        self.recall = MulticlassRecall(num_classes, average=None)
        self.confusion = MulticlassConfusionMatrix(num_classes)
        self.samples = SumMetric()

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        preds = logits.argmax(dim=-1)
        self.scalars.update(preds, target)
        self.recall.update(preds, target)
        self.confusion.update(preds, target)
        self.samples.update(torch.tensor(float(target.numel()), device=target.device))

    def compute(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """(scalar metrics incl. samples, per-class recall, confusion matrix), synced across ranks."""
        scalars = dict(self.scalars.compute())
        scalars["samples"] = self.samples.compute()
        confusion = self.confusion.compute()
        # A class with no example in the split has no recall: NaN, not 0 (torchmetrics' macro averages already
        # leave such classes out, so accuracy, balanced accuracy and macro F1 are unaffected).
        recall = torch.where(confusion.sum(dim=1) > 0, self.recall.compute(), torch.nan)
        return scalars, recall, confusion

    def reset(self) -> None:
        self.scalars.reset()
        self.recall.reset()
        self.confusion.reset()
        self.samples.reset()
