"""Metrics: torchmetrics collections (DDP-correct: states are synced across processes on compute)."""

from emoframe.metrics.classification import ClassificationMetrics
from emoframe.metrics.multilabel import MultilabelMetrics
from emoframe.metrics.regression import ConcordanceMetric

__all__ = ["ClassificationMetrics", "ConcordanceMetric", "MultilabelMetrics"]
