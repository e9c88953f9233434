"""Test-time augmentation: views of a batch of frames, and ``TTA``, a model wrapper averaging its probabilities.

Knyazev et al. (2.5): "frame-based augmentation in the form of horizontal flipping, rotation and scaling ...
We compute 18 transformations per frame and average features of these transformations." The paper does not
list them; 18 = 2 x 3 x 3 reads as {no flip, flip} x {0, -10, +10 degrees} x {1.0, 0.9, 1.1 scale}, the ranges
of the FER2013 training augmentation (rotation up to 10 degrees, zoom 0.9-1.1). ``PAPER_TTA`` holds them
identity first, so ``--tta N`` keeps the first N: 1 = none, 2 = + flip, 6 = flips x rotations, 18 = all.
``TEN_CROP`` is the classic ten-crop (the four corners and the centre of each frame and of its mirror image, each
crop 7/8 of the side, resized back to the input size, so the network sees the input size it was trained on).

All views of a batch are warped with one ``grid_sample`` (bilinear, edge pixels repeated) and go through the
model in one forward pass (or chunks of ``max_batch``); identity and plain flips are copied exactly, not
resampled. This module depends on torch alone: ``emoframe extract`` averages backbone features over these views
(``emoframe.clipsvm.extract.tta_features``), ``emoframe test --tta``/``predict --tta`` and the ensembles average probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from emoframe.errors import RecipeError

VIEW_KEYS = ("flip", "angle", "scale", "shift_x", "shift_y")


@dataclass(frozen=True)
class TTATransform:
    """One view of a frame: horizontal flip first, then rotation (degrees, counter-clockwise as displayed,
    as OpenCV's ``getRotationMatrix2D``) and scale (> 1 zooms in) about the image centre, whose view is then
    centred at ``(shift_x, shift_y)`` (fractions of the width and height from the centre of the flipped frame;
    a crop of the top-left corner has negative shifts)."""

    flip: bool = False
    angle: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    @property
    def exact(self) -> bool:
        """Identity or a plain flip: copied, not resampled."""
        return self.angle == 0.0 and self.scale == 1.0 and self.shift_x == 0.0 and self.shift_y == 0.0

    def settings(self) -> dict[str, Any]:
        """``flip``, ``angle``, ``scale`` and the shifts that are not 0 (what files and reports record: the
        paper's 18 views read as they did before shifts existed)."""
        out: dict[str, Any] = {"flip": self.flip, "angle": self.angle, "scale": self.scale}
        out.update({k: getattr(self, k) for k in ("shift_x", "shift_y") if getattr(self, k) != 0.0})
        return out

    def sampling_matrix(self) -> np.ndarray:
        """2x2 map from output pixel offsets (x, y) about the centre to input offsets: (flip . A)^-1."""
        a = math.radians(self.angle)
        c, s = math.cos(a), math.sin(a)
        inverse = np.array([[c, -s], [s, c]]) / self.scale  # A = scale * [[c, s], [-s, c]] (OpenCV's)
        flip = np.diag([-1.0, 1.0]) if self.flip else np.eye(2)
        return flip @ inverse

    def grid_shift(self) -> np.ndarray:
        """Where the view's centre samples the input, in ``grid_sample`` units (-1..1 spans the frame)."""
        shift = np.array([2.0 * self.shift_x, 2.0 * self.shift_y])
        return np.diag([-1.0, 1.0]) @ shift if self.flip else shift


PAPER_TTA: tuple[TTATransform, ...] = tuple(
    TTATransform(flip, angle, scale)
    for scale in (1.0, 0.9, 1.1)
    for angle in (0.0, -10.0, 10.0)
    for flip in (False, True)
)
"""Our reading of the paper's 18 views, identity first (prefixes: 1 none, 2 flip, 6 flips x rotations)."""

TEN_CROP_FRACTION = 0.875
"""Side of each ten-crop crop as a fraction of the frame's (42 of 48 pixels for FER2013)."""


def ten_crop(fraction: float = TEN_CROP_FRACTION) -> tuple[TTATransform, ...]:
    """Centre and four corner crops of side ``fraction``, of the frame and of its mirror image (torchvision's
    ``TenCrop`` order: centre, then top-left, top-right, bottom-left, bottom-right), each resized to the input."""
    if not 0.0 < fraction <= 1.0:
        raise RecipeError(f"ten_crop: expected a crop fraction in (0, 1], got {fraction!r}")
    edge = (1.0 - fraction) / 2.0
    offsets = [(0.0, 0.0), (-edge, -edge), (edge, -edge), (-edge, edge), (edge, edge)]
    return tuple(
        TTATransform(flip, 0.0, 1.0 / fraction, dx, dy) if fraction != 1.0 else TTATransform(flip)
        for flip in (False, True)
        for dx, dy in offsets
    )


TEN_CROP: tuple[TTATransform, ...] = ten_crop()
NAMED_VIEWS: dict[str, tuple[TTATransform, ...]] = {
    "none": PAPER_TTA[:1],
    "flip": PAPER_TTA[:2],
    "paper": PAPER_TTA,
    "ten_crop": TEN_CROP,
}
"""View sets by name; ``a+b`` joins two (a view in both is kept once)."""


def parse_tta(spec: Any, where: str = "--tta") -> tuple[TTATransform, ...]:
    """``N`` (the first N of ``PAPER_TTA``), a name of ``NAMED_VIEWS`` or names joined by ``+``
    (``paper+ten_crop``: 27 views), or a list of ``{flip, angle, scale, shift_x, shift_y}`` mappings; else a
    one-line error."""
    if isinstance(spec, str):
        names = [n.strip() for n in spec.split("+")]
        if all(n in NAMED_VIEWS or n.isdigit() for n in names):
            views: list[TTATransform] = []
            for n in names:
                views += [v for v in NAMED_VIEWS.get(n) or parse_tta(int(n), where) if v not in views]
            return tuple(views)
        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError:
            raise RecipeError(
                f"{where}: expected a number of views (1-18), a view set or a YAML list, got {spec!r}"
            ) from None
    if isinstance(spec, int) and not isinstance(spec, bool):
        if not 1 <= spec <= len(PAPER_TTA):
            raise RecipeError(f"{where}: expected 1 to {len(PAPER_TTA)} views of the paper's set, got {spec}")
        return PAPER_TTA[:spec]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise RecipeError(
            f"{where}: expected a number of views (1-18), one of {', '.join(NAMED_VIEWS)} (joined by +), or a "
            f"non-empty list like '[{{flip: true}}, {{angle: 10, scale: 0.9}}]', got {spec!r}"
        )
    out = []
    for i, item in enumerate(spec):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise RecipeError(f"{at}: expected a mapping with {', '.join(VIEW_KEYS)}, got {item!r}")
        unknown = sorted(set(item) - set(VIEW_KEYS))
        if unknown:
            raise RecipeError(f"{at}: unknown key '{unknown[0]}'. Accepted: {', '.join(VIEW_KEYS)}")
        flip = item.get("flip", False)
        if not isinstance(flip, bool):
            raise RecipeError(f"{at}.flip: expected true or false, got {flip!r}")
        numbers = {k: item.get(k, 1.0 if k == "scale" else 0.0) for k in VIEW_KEYS[1:]}
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RecipeError(f"{at}.{key}: expected a number, got {value!r}")
        if numbers["scale"] <= 0:
            raise RecipeError(f"{at}.scale: expected a number > 0, got {numbers['scale']!r}")
        out.append(TTATransform(flip, *(float(numbers[k]) for k in VIEW_KEYS[1:])))
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
        thetas = [
            np.hstack(
                [
                    to_norm @ transforms[i].sampling_matrix() @ np.linalg.inv(to_norm),
                    transforms[i].grid_shift()[:, None],
                ]
            )
            for i in warped
        ]
        theta = torch.as_tensor(np.stack(thetas), dtype=x.dtype, device=x.device)
        m = len(warped)
        src = x.unsqueeze(1).expand(b, m, c, h, w).reshape(b * m, c, h, w)
        grid = F.affine_grid(theta.repeat(b, 1, 1), [b * m, c, h, w], align_corners=False)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        views[:, warped] = out.reshape(b, m, c, h, w)
    return views.reshape(b * k, c, h, w)


class TTA(nn.Module):
    """A model wrapped so that its class probabilities are averaged over views of its input.

    ``TTA(model, views)(x, *rest)`` takes the batch the model takes (frames ``(B, C, H, W)`` first; further
    inputs such as a fusion task's feature vectors are repeated for every view) and returns ``(B, classes)``
    **probabilities**: the softmax of each view's logits (``outputs="logits"``, a task's forward) or the
    model's own probabilities (``outputs="probs"``, e.g. an ensemble), averaged over the views. The views
    go through the model in one forward pass, or in chunks of at most ``max_batch`` images (whole frames'
    view sets per chunk). One identity view returns exactly ``softmax(model(x))``.
    """

    def __init__(
        self,
        module: nn.Module,
        views: Sequence[TTATransform] | str | int = PAPER_TTA,
        max_batch: int | None = None,
        outputs: Literal["logits", "probs"] = "logits",
    ) -> None:
        super().__init__()
        self.module = module
        self.views = tuple(parse_tta(views) if isinstance(views, (str, int)) else views)
        if not self.views:
            raise RecipeError("tta: expected at least one view")
        if outputs not in ("logits", "probs"):
            raise RecipeError(f"tta: outputs must be 'logits' or 'probs', got {outputs!r}")
        if max_batch is not None and max_batch < 1:
            raise RecipeError(f"tta: max_batch must be >= 1, got {max_batch!r}")
        self.max_batch = max_batch
        self.outputs = outputs

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return average_probabilities(self.module, self.views, x, *rest, max_batch=self.max_batch, outputs=self.outputs)

    def describe(self) -> str:
        """A short name of the view set, for reports (``18 views (paper)``)."""
        return describe_views(self.views)


def average_probabilities(
    model: Any,
    views: Sequence[TTATransform],
    x: torch.Tensor,
    *rest: torch.Tensor,
    max_batch: int | None = None,
    outputs: Literal["logits", "probs"] = "logits",
) -> torch.Tensor:
    """``model``'s class probabilities for ``x`` averaged over ``views`` (``TTA``'s forward, callable from inside
    a task's own step without wrapping the task in a module of its own)."""
    k = len(views)
    step = len(x) if max_batch is None else max(1, max_batch // k)
    parts = []
    for start in range(0, len(x), step):
        frames = x[start : start + step]
        extra = [r[start : start + step].repeat_interleave(k, dim=0) for r in rest]
        out = model(tta_views(frames, views), *extra)
        probs = out.softmax(dim=-1) if outputs == "logits" else out
        parts.append(probs.reshape(len(frames), k, -1).mean(dim=1))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def describe_views(views: Sequence[TTATransform]) -> str:
    """``TTA.describe`` for a view set without a model."""
    names = [n for n, v in NAMED_VIEWS.items() if tuple(v) == tuple(views)]
    return f"{len(views)} views" + (f" ({names[0]})" if names else "")
