"""Multi-label metrics per label and averaged: AUROC, average precision, F1 at a threshold, tuned thresholds.

torchmetrics keeps the states and syncs them across DDP processes. AUROC and AP are exact (every
score kept); F1 comes from a binned precision/recall curve on a 0.01 grid of thresholds, which also
gives each label's best-F1 threshold. A label without positives (or negatives) in the split has no
AUROC; it is NaN and left out of the averages, so a missing rare label cannot pass as chance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import (
    MultilabelAUROC,
    MultilabelAveragePrecision,
    MultilabelPrecisionRecallCurve,
)

GRID = torch.linspace(0.0, 1.0, 101)
IGNORE = -1


class LabelCounts(Metric):
    """Positive and negative targets per label (ignored entries left out), summed across processes."""

    full_state_update = False

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.add_state("positives", torch.zeros(num_labels, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("negatives", torch.zeros(num_labels, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, target: torch.Tensor) -> None:
        self.positives += (target == 1).sum(dim=0)
        self.negatives += (target == 0).sum(dim=0)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.positives, self.negatives


@dataclass
class MultilabelScores:
    """Per-label tensors (K,) of one split."""

    auroc: torch.Tensor  # NaN where the split lacks positives or negatives
    ap: torch.Tensor  # NaN where the split lacks positives
    f1: torch.Tensor  # at the thresholds asked for
    thresholds: torch.Tensor  # those thresholds, on the grid
    best_f1: torch.Tensor  # at ``best_thresholds``
    best_thresholds: torch.Tensor  # each label's best-F1 threshold on this split
    positives: torch.Tensor
    negatives: torch.Tensor

    def mean(self, values: torch.Tensor, labels: list[int] | None = None) -> torch.Tensor:
        """Average over ``labels`` (all by default), leaving out NaN."""
        v = values if labels is None else values[labels]
        v = v[torch.isfinite(v)]
        return v.mean() if v.numel() else torch.tensor(float("nan"))


def binarise(target: torch.Tensor) -> torch.Tensor:
    """Float targets (soft or 0/1, NaN unlabelled) -> long 1/0, IGNORE where NaN."""
    return torch.where(torch.isfinite(target), (target >= 0.5).long(), torch.full_like(target, IGNORE).long())


def grid_index(thresholds: torch.Tensor) -> torch.Tensor:
    return (thresholds.clamp(0, 1) * (len(GRID) - 1)).round().long()


class MultilabelMetrics(nn.Module):
    """One split's accumulated probabilities and targets; ``compute(thresholds)`` scores them."""

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.auroc = MultilabelAUROC(num_labels, average=None, thresholds=None, ignore_index=IGNORE)
        self.ap = MultilabelAveragePrecision(num_labels, average=None, thresholds=None, ignore_index=IGNORE)
        self.curve = MultilabelPrecisionRecallCurve(num_labels, thresholds=GRID.clone(), ignore_index=IGNORE)
        self.counts = LabelCounts(num_labels)

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """(N, K) probabilities and float targets (NaN: unlabelled)."""
        t = binarise(target)
        p = probs.float()
        for metric in (self.auroc, self.ap, self.curve):
            metric.update(p, t)
        self.counts.update(t)

    def compute(self, thresholds: torch.Tensor) -> MultilabelScores:
        positives, negatives = self.counts.compute()
        both = (positives > 0) & (negatives > 0)
        nan = torch.tensor(float("nan"), device=positives.device)
        with warnings.catch_warnings():  # a label without positives (negatives) warns; NaN below, on purpose
            warnings.filterwarnings("ignore", message="No (positive|negative) samples")
            auroc, ap = self.auroc.compute(), self.ap.compute()
            precision, recall, _ = self.curve.compute()  # (K, len(GRID) + 1): the last column is (1, 0)
        auroc = torch.where(both, auroc, nan)
        ap = torch.where(positives > 0, ap, nan)
        precision = torch.nan_to_num(precision, nan=0.0)  # nothing predicted positive: precision 0 (sklearn's)
        f1 = (2 * precision * recall / (precision + recall).clamp(min=1e-12))[:, : len(GRID)]
        f1 = torch.where(positives[:, None] > 0, f1, nan)
        index = grid_index(thresholds.to(f1.device))
        rows = torch.arange(self.num_labels, device=f1.device)
        best = torch.nan_to_num(f1, nan=-1.0).argmax(dim=1)
        grid = GRID.to(f1.device)
        best_thresholds = torch.where(positives > 0, grid[best], torch.full_like(grid[best], 0.5))
        return MultilabelScores(
            auroc=auroc,
            ap=ap,
            f1=f1[rows, index],
            thresholds=grid[index],
            best_f1=f1[rows, best],
            best_thresholds=best_thresholds,
            positives=positives,
            negatives=negatives,
        )

    def reset(self) -> None:
        for metric in (self.auroc, self.ap, self.curve, self.counts):
            metric.reset()
