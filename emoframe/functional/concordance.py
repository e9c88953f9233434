"""Concordance correlation coefficient (CCC) of predictions and targets, per target dimension (Lin 1989).

The functional half of a torchmetrics-style pair: ``emoframe.metrics.ConcordanceMetric`` keeps an epoch's
frames and calls this; ``CCCLoss`` trains on ``1 - concordance``; post-processing and reports score with it.

Estimator: ``"avec"`` follows the AVEC scripts (covariance over N, variances with N-1, as MATLAB's
``nanvar``); ``"unbiased"`` uses N-1 throughout, as torchmetrics' ``ConcordanceCorrCoef``.
Frames whose label is NaN are left out per target dimension.
"""

from __future__ import annotations

from typing import Literal

import torch

from emoframe.errors import RecipeError

Estimator = Literal["avec", "unbiased"]


def concordance(pred: torch.Tensor, target: torch.Tensor, estimator: Estimator = "avec") -> torch.Tensor:
    """CCC per column of (N, D) predictions and targets; NaN targets are masked out per column."""
    if pred.shape != target.shape:
        raise RecipeError(f"CCC: predictions {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape")
    if pred.dim() == 1:
        pred, target = pred[:, None], target[:, None]
    pred, target = pred.reshape(-1, pred.shape[-1]), target.reshape(-1, target.shape[-1])
    mask = ~torch.isnan(target)
    n = mask.sum(dim=0).to(pred.dtype)
    if bool((n < 2).any()):
        raise RecipeError(f"CCC needs at least 2 labelled frames per target; got {n.tolist()}")
    t = torch.where(mask, target, torch.zeros_like(target))
    p = torch.where(mask, pred, torch.zeros_like(pred))
    mp, mt = p.sum(0) / n, t.sum(0) / n
    dp, dt = torch.where(mask, p - mp, 0.0), torch.where(mask, t - mt, 0.0)
    cov_div = n if estimator == "avec" else n - 1
    cov = (dp * dt).sum(0) / cov_div
    vp, vt = (dp**2).sum(0) / (n - 1), (dt**2).sum(0) / (n - 1)
    denom = vp + vt + (mp - mt) ** 2
    # Both constant and equal: a perfect (if uninformative) match; defined as 1 instead of 0/0.
    return torch.where(denom > 0, 2 * cov / denom.clamp(min=torch.finfo(pred.dtype).tiny), torch.ones_like(denom))
