"""Per-class recall: NaN for a class with no example in the split, and left out of the macro averages."""

from __future__ import annotations

import math

import torch

from emoframe.metrics.classification import ClassificationMetrics


def test_a_class_without_examples_has_nan_recall_and_no_weight_in_averages() -> None:
    metrics = ClassificationMetrics(num_classes=3)
    target = torch.tensor([0, 0, 1, 1])  # class 2 never occurs
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1]), 3).float()
    metrics.update(logits, target)
    scalars, recall, confusion = metrics.compute()
    assert recall[0] == 0.5 and recall[1] == 1.0 and math.isnan(float(recall[2]))
    assert float(scalars["balanced_acc"]) == 0.75  # the mean over the two classes present
    assert int(confusion.sum()) == 4 and float(scalars["samples"]) == 4
