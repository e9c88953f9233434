"""Concordance correlation coefficient (CCC) as a loss, for valence/arousal regression (Tzirakis et al.).

``1 - concordance`` (emoframe.functional.concordance, where the estimators are described) per target
dimension, (weighted) averaged.
"""

from __future__ import annotations

import torch
from torch import nn

from emoframe.functional.concordance import Estimator, concordance
from emoframe.registry import LOSSES, RecipeError


@LOSSES.register("ccc")
class CCCLoss(nn.Module):
    """1 - concordance correlation coefficient per target dimension, (weighted) averaged."""

    def __init__(self, weights: list[float] | None = None, estimator: Estimator = "avec") -> None:
        super().__init__()
        if estimator not in ("avec", "unbiased"):
            raise RecipeError(f"loss.estimator: expected 'avec' or 'unbiased', got {estimator!r}")
        self.estimator = estimator
        self.register_buffer("weights", None if weights is None else torch.tensor(weights), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ccc = concordance(pred, target, self.estimator)
        if self.weights is None:
            return 1 - ccc.mean()
        if self.weights.numel() != ccc.numel():
            raise RecipeError(f"loss.weights has {self.weights.numel()} values for {ccc.numel()} targets")
        w = self.weights.to(ccc)
        return 1 - (ccc * w).sum() / w.sum()
