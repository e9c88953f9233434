"""Heads: map backbone features to outputs; ``in_features`` and ``num_outputs`` come from the builder."""

from __future__ import annotations

import torch
from torch import nn

from emoframe.registry import HEADS, Probability


@HEADS.register("linear")
class LinearHead(nn.Module):
    """Dropout then one linear layer."""

    def __init__(self, in_features: int, num_outputs: int, dropout: Probability = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@HEADS.register("mlp")
class MLPHead(nn.Module):
    """Hidden layers (linear, BN, ReLU, dropout) then a linear output."""

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        hidden: list[int] = (512,),
        dropout: Probability = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_features
        for h in hidden:
            layers += [nn.Linear(c, int(h)), nn.BatchNorm1d(int(h)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            c = int(h)
        layers.append(nn.Linear(c, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
