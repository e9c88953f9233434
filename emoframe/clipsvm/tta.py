"""TTA for ``emoframe extract``: backbone features averaged over the views of ``emoframe.tta``.

The views themselves (the paper's 18 flips x rotations x scales, ten-crop, ``parse_tta``) live in
``emoframe.tta``, shared with ``emoframe test --tta``, ``predict --tta`` and the ensembles; they are
re-exported here for the extraction code and its callers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from emoframe.errors import RecipeError
from emoframe.tta import PAPER_TTA, TEN_CROP, TTATransform, parse_tta, tta_views

__all__ = ["PAPER_TTA", "TEN_CROP", "TTATransform", "parse_tta", "tta_features", "tta_views"]


def tta_features(
    backbone: nn.Module, x: torch.Tensor, transforms: Sequence[TTATransform], channels_last: bool = False
) -> torch.Tensor:
    """``(B, C, H, W)`` frames -> ``(B, D)`` backbone features averaged over the views, in one forward pass."""
    views = tta_views(x, transforms)
    if channels_last:
        views = views.contiguous(memory_format=torch.channels_last)
    out = backbone(views)
    if out.ndim != 2:
        raise RecipeError(f"model.backbone: expected (batch, features) outputs, got shape {tuple(out.shape)}")
    return out.reshape(len(x), len(transforms), -1).mean(dim=1)
