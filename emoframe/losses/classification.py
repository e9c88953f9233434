"""Single-label classification losses."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from emoframe.registry import LOSSES, RecipeError


def inverse_frequency(counts: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Weights proportional to 1/count, normalised to mean 1 over classes (absent classes get 0)."""
    c = torch.as_tensor(counts, dtype=torch.float64)
    w = torch.where(c > 0, 1.0 / c.clamp(min=1), torch.zeros_like(c))
    return (w * (c > 0).sum() / w.sum()).float()


@LOSSES.register("ce")
class CrossEntropy(nn.Module):
    """Cross entropy with optional class weights (a list, or inverse_frequency from the train split)."""

    def __init__(
        self,
        class_weights: list[float] | Literal["inverse_frequency"] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise RecipeError(f"loss.label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.mode = class_weights if isinstance(class_weights, str) else None
        weight = torch.tensor(class_weights, dtype=torch.float32) if isinstance(class_weights, list) else None
        self.register_buffer("weight", weight, persistent=False)

    def set_class_counts(self, counts: np.ndarray | torch.Tensor) -> None:
        """Called by the task with the train split's class counts before fitting."""
        if self.mode == "inverse_frequency":
            self.weight = inverse_frequency(counts).to(self.weight.device if self.weight is not None else "cpu")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.weight is not None and self.weight.numel() != logits.shape[-1]:
            raise RecipeError(
                f"loss.class_weights has {self.weight.numel()} values but the model has {logits.shape[-1]} classes"
            )
        return F.cross_entropy(logits, target, weight=self.weight, label_smoothing=self.label_smoothing)
