"""Multi-label losses: sigmoid BCE with per-label weights (Tzirakis et al.'s class-weighted BCE)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from emoframe.losses.classification import inverse_frequency
from emoframe.registry import LOSSES, RecipeError

LabelWeights = list[float] | Literal["inverse_frequency"] | None
PosWeight = list[float] | Literal["balanced"] | None


@LOSSES.register("weighted_bce")
class WeightedBCE(nn.Module):
    """Sigmoid binary cross entropy per (frame, label), weighted per label, averaged over labelled entries:

        loss = sum_{n,k} m_nk w_k l_nk / sum_{n,k} m_nk,   l_nk = BCE(sigmoid(x_nk), z_nk) [pos_weight p_k]

    ``label_weights``: ``inverse_frequency`` (w_k proportional to 1 / frames showing label k in what a
    training epoch serves, mean 1 over the labels: the paper's reciprocal of each emotion's frame count),
    an explicit list, or ``null`` (all 1). ``pos_weight``: ``balanced`` (negatives / positives of each
    label, torch's ``pos_weight``), a list, or ``null``. NaN targets (m_nk = 0) are left out. Soft targets
    in [0, 1] are allowed. Counts arrive from the datamodule at fit start (``set_class_counts``); before
    that (``emoframe test`` from a checkpoint) ``inverse_frequency``/``balanced`` weigh every label 1.
    """

    def __init__(self, label_weights: LabelWeights = "inverse_frequency", pos_weight: PosWeight = None) -> None:
        super().__init__()
        if isinstance(label_weights, str) and label_weights != "inverse_frequency":
            raise RecipeError(
                f"loss.label_weights: expected 'inverse_frequency', a list or null, got {label_weights!r}"
            )
        if isinstance(pos_weight, str) and pos_weight != "balanced":
            raise RecipeError(f"loss.pos_weight: expected 'balanced', a list or null, got {pos_weight!r}")
        self.label_mode = label_weights if isinstance(label_weights, str) else None
        self.pos_mode = pos_weight if isinstance(pos_weight, str) else None
        self.register_buffer("label_weight", _tensor(label_weights, "label_weights"), persistent=False)
        self.register_buffer("pos_weight", _tensor(pos_weight, "pos_weight"), persistent=False)

    def set_class_counts(self, counts: np.ndarray | torch.Tensor, total: int | None = None) -> None:
        """Per-label positive frame counts (and labelled frames, for ``balanced``) of the training split."""
        c = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
        if self.label_mode == "inverse_frequency":
            self.label_weight = inverse_frequency(c)
        if self.pos_mode == "balanced":
            if total is None:
                raise RecipeError("loss.pos_weight: balanced needs the number of labelled training frames")
            self.pos_weight = torch.where(c > 0, (float(total) - c) / c.clamp(min=1), torch.ones_like(c)).float()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = logits.shape[-1]
        if target.shape != logits.shape:
            raise RecipeError(f"weighted_bce: logits {tuple(logits.shape)} and targets {tuple(target.shape)} differ")
        for key, w in (("label_weights", self.label_weight), ("pos_weight", self.pos_weight)):
            if w is not None and w.numel() != k:
                raise RecipeError(f"loss.{key} has {w.numel()} values but the model has {k} labels")
        labelled = torch.isfinite(target)
        pos = None if self.pos_weight is None else self.pos_weight.to(logits)
        per = F.binary_cross_entropy_with_logits(
            logits, torch.where(labelled, target, 0.0).to(logits), pos_weight=pos, reduction="none"
        )
        weight = labelled.to(logits)
        if self.label_weight is not None:
            weight = weight * self.label_weight.to(logits)
        return (per * weight).sum() / labelled.sum().clamp(min=1)


def _tensor(value: object, key: str) -> torch.Tensor | None:
    if not isinstance(value, (list, tuple)):
        return None
    if not value or any(not isinstance(v, (int, float)) or v < 0 for v in value):
        raise RecipeError(f"loss.{key}: expected non-negative numbers, one per label, got {value!r}")
    return torch.tensor([float(v) for v in value], dtype=torch.float32)
