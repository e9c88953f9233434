"""Metrics: torchmetrics collections (DDP-correct: states are synced across processes on compute)."""

from emoframe.metrics.classification import ClassificationMetrics

__all__ = ["ClassificationMetrics"]
