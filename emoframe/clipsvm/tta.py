"""Test-time augmentation views of frames (Knyazev et al. 2.5): flips, rotations and scales, averaged features.

"frame-based augmentation in the form of horizontal flipping, rotation and scaling ... We compute 18
transformations per frame and average features of these transformations." The paper does not list them;
18 = 2 x 3 x 3 reads as {no flip, flip} x {0, -10, +10 degrees} x {1.0, 0.9, 1.1 scale}, the ranges of the
FER2013 training augmentation (rotation up to 10 degrees, zoom 0.9-1.1). ``PAPER_TTA`` holds them identity
first, so ``--tta N`` keeps the first N: 1 = none, 2 = + flip, 6 = flips x rotations, 18 = all. All views of
a batch are warped with one ``grid_sample`` (bilinear, edge pixels repeated) and go through the backbone in
one forward pass; identity and plain flips are copied exactly, not resampled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from emoframe.errors import RecipeError


@dataclass(frozen=True)
class TTATransform:
    """One view of a frame: horizontal flip first, then rotation (degrees, counter-clockwise as displayed,
    as OpenCV's ``getRotationMatrix2D``) and scale (> 1 zooms in) about the image centre."""

    flip: bool = False
    angle: float = 0.0
    scale: float = 1.0

    @property
    def exact(self) -> bool:
        """Identity or a plain flip: copied, not resampled."""
        return self.angle == 0.0 and self.scale == 1.0

    def sampling_matrix(self) -> np.ndarray:
        """2x2 map from output pixel offsets (x, y) about the centre to input offsets: (flip . A)^-1."""
        a = math.radians(self.angle)
        c, s = math.cos(a), math.sin(a)
        inverse = np.array([[c, -s], [s, c]]) / self.scale  # A = scale * [[c, s], [-s, c]] (OpenCV's)
        flip = np.diag([-1.0, 1.0]) if self.flip else np.eye(2)
        return flip @ inverse


PAPER_TTA: tuple[TTATransform, ...] = tuple(
    TTATransform(flip, angle, scale)
    for scale in (1.0, 0.9, 1.1)
    for angle in (0.0, -10.0, 10.0)
    for flip in (False, True)
)
"""Our reading of the paper's 18 views, identity first (prefixes: 1 none, 2 flip, 6 flips x rotations)."""


def parse_tta(spec: Any, where: str = "--tta") -> tuple[TTATransform, ...]:
    """``N`` (the first N of ``PAPER_TTA``) or a list of ``{flip, angle, scale}`` mappings; else a one-line error."""
    if isinstance(spec, str):
        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError:
            raise RecipeError(f"{where}: expected a number of views (1-18) or a YAML list, got {spec!r}") from None
    if isinstance(spec, int) and not isinstance(spec, bool):
        if not 1 <= spec <= len(PAPER_TTA):
            raise RecipeError(f"{where}: expected 1 to {len(PAPER_TTA)} views of the paper's set, got {spec}")
        return PAPER_TTA[:spec]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise RecipeError(
            f"{where}: expected a number of views (1-18) or a non-empty list like "
            f"'[{{flip: true}}, {{angle: 10, scale: 0.9}}]', got {spec!r}"
        )
    out = []
    for i, item in enumerate(spec):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise RecipeError(f"{at}: expected a mapping with flip, angle, scale, got {item!r}")
        unknown = sorted(set(item) - {"flip", "angle", "scale"})
        if unknown:
            raise RecipeError(f"{at}: unknown key '{unknown[0]}'. Accepted: flip, angle, scale")
        flip, angle, scale = item.get("flip", False), item.get("angle", 0.0), item.get("scale", 1.0)
        if not isinstance(flip, bool):
            raise RecipeError(f"{at}.flip: expected true or false, got {flip!r}")
        for key, value in (("angle", angle), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RecipeError(f"{at}.{key}: expected a number, got {value!r}")
        if scale <= 0:
            raise RecipeError(f"{at}.scale: expected a number > 0, got {scale!r}")
        out.append(TTATransform(flip, float(angle), float(scale)))
    return tuple(out)


def tta_views(x: torch.Tensor, transforms: Sequence[TTATransform]) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B * K, C, H, W)``, the K views of each frame adjacent (frame-major order).

    Resampled views share one ``affine_grid``/``grid_sample`` call (bilinear, ``align_corners=False``: pixel
    centres, so the centre is ((W-1)/2, (H-1)/2) as in OpenCV; out-of-image samples repeat the edge pixel).
    """
    b, c, h, w = x.shape
    k = len(transforms)
    if k == 1 and transforms[0] == TTATransform():
        return x
    views = x.new_empty((b, k, c, h, w))
    warped = []
    for i, t in enumerate(transforms):
        if t.exact:
            views[:, i] = x.flip(-1) if t.flip else x
        else:
            warped.append(i)
    if warped:
        to_norm = np.diag([2.0 / w, 2.0 / h])  # offsets in pixels -> grid units (align_corners=False)
        thetas = [to_norm @ transforms[i].sampling_matrix() @ np.linalg.inv(to_norm) for i in warped]
        theta = torch.zeros((len(warped), 2, 3), dtype=x.dtype, device=x.device)
        theta[:, :, :2] = torch.as_tensor(np.stack(thetas), dtype=x.dtype, device=x.device)
        m = len(warped)
        src = x.unsqueeze(1).expand(b, m, c, h, w).reshape(b * m, c, h, w)
        grid = F.affine_grid(theta.repeat(b, 1, 1), [b * m, c, h, w], align_corners=False)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        views[:, warped] = out.reshape(b, m, c, h, w)
    return views.reshape(b * k, c, h, w)


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
