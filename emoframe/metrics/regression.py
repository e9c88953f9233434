"""Epoch-level concordance (CCC) for valence/arousal, computed the way AVEC scores it.

AVEC scores a partition by the CCC over *all* its frames at once (recordings concatenated), not by
averaging per-batch values, so this metric keeps every prediction and target of the epoch in list
states reduced by ``cat``: torchmetrics gathers them from every DDP process before ``compute``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from emoframe.errors import DataError
from emoframe.functional.concordance import Estimator, concordance
from emoframe.registry import RecipeError


class ConcordanceMetric(Metric):
    """CCC per target dimension over every frame of the epoch; ``compute()`` gives ``{name: ccc, ..., "mean": ...}``.

    Frames whose target is NaN (missing label, sequence padding) are left out per dimension. The
    default ``estimator="avec"`` is the AVEC scripts' (covariance over N, variances over N-1).
    Inputs are ``(..., D)`` with ``D = len(target_names)``; a ``(N,)`` input is accepted when D is 1.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    preds: list[torch.Tensor] | torch.Tensor
    target: list[torch.Tensor] | torch.Tensor

    def __init__(
        self,
        target_names: Sequence[str] = ("arousal", "valence"),
        estimator: Estimator = "avec",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        names = [str(n) for n in target_names]
        if not names or len(set(names)) != len(names) or "mean" in names:
            raise RecipeError(f"ConcordanceMetric.target_names: expected distinct names other than 'mean', got {names}")
        if estimator not in ("avec", "unbiased"):
            raise RecipeError(f"ConcordanceMetric.estimator: expected 'avec' or 'unbiased', got {estimator!r}")
        self.target_names = names
        self.estimator: Estimator = estimator
        # Flattened 1-D states: torchmetrics substitutes a 1-D empty tensor for a DDP rank that saw no
        # data, which only concatenates with other ranks' states if those are 1-D too.
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Store a batch; ``preds`` and ``target`` have the same shape, the last dimension being the targets."""
        d = len(self.target_names)
        if preds.shape != target.shape:
            raise RecipeError(
                f"ConcordanceMetric: predictions {tuple(preds.shape)} and targets {tuple(target.shape)} differ in shape"
            )
        if not (preds.dim() >= 1 and preds.shape[-1] == d) and not (d == 1 and preds.dim() == 1):
            raise RecipeError(
                f"ConcordanceMetric: expected predictions of shape (..., {d}) for targets {self.target_names}, "
                f"got {tuple(preds.shape)}"
            )
        keep = torch.promote_types(preds.dtype, torch.float32)  # bf16/fp16 outputs are stored as float32
        self.preds.append(preds.detach().to(keep).reshape(-1))
        self.target.append(target.detach().to(keep).reshape(-1))

    def compute(self) -> dict[str, torch.Tensor]:
        """CCC of the concatenated epoch per target, plus their mean (synced across processes first)."""
        d = len(self.target_names)
        preds = dim_zero_cat(self.preds).reshape(-1, d)
        target = dim_zero_cat(self.target).reshape(-1, d)
        labelled = (~torch.isnan(target)).sum(dim=0).tolist()
        for name, n in zip(self.target_names, labelled):
            if n < 2:
                raise DataError(
                    f"ConcordanceMetric: target '{name}' has {n} labelled frame(s) this epoch; CCC needs at least 2"
                )
        work = torch.float32 if preds.device.type == "mps" else torch.float64  # MPS has no float64
        ccc = concordance(preds.to(work), target.to(work), estimator=self.estimator)
        out = {name: ccc[i] for i, name in enumerate(self.target_names)}
        out["mean"] = ccc.mean()
        return out
