"""A VGG-style CNN sized for 48x48 faces: fast enough to train on a CPU in an hour."""

from __future__ import annotations

from typing import Annotated

import annotated_types
import torch
from torch import nn

from emoframe.backbones.weights import load_pretrained
from emoframe.registry import BACKBONES, MAX_WIDTH, Probability, RecipeError


def _block(c_in: int, c_out: int, convs: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    return [*layers, nn.MaxPool2d(2)]


@BACKBONES.register("small_cnn")
class SmallCNN(nn.Module):
    """VGG-style stages (two 3x3 convs + BN + ReLU, then 2x2 max-pool) and global average pooling."""

    def __init__(
        self,
        in_chans: int = 1,
        widths: list[int] = (32, 64, 128, 256),  # type: ignore[assignment]
        convs_per_stage: Annotated[int, annotated_types.Interval(ge=1, le=64)] = 2,
        drop_rate: Probability = 0.0,
        weights: str | None = None,
        partial_weights: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(widths, (list, tuple)) or not all(
            isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WIDTH for w in widths
        ):
            raise RecipeError(
                f"model.backbone.widths: expected a list of integers from 1 to {MAX_WIDTH}, got {widths!r}"
            )
        layers: list[nn.Module] = []
        c = in_chans
        for w in widths:
            layers += _block(c, int(w), convs_per_stage)
            c = int(w)
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop_rate))
        self.num_features: int = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if weights:
            load_pretrained(self, weights, partial=partial_weights, flag="model.backbone.partial_weights")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))
