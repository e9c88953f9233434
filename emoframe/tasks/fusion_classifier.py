"""Kumari's two-input model: a CNN on the face and an MLP on hand-crafted features, fused before the head."""

from __future__ import annotations

from typing import Any, Unpack

import torch
from torch import nn

from emoframe.registry import TASKS
from emoframe.tasks.base import TaskParts
from emoframe.tasks.frame_classifier import FrameClassifier

DEFAULT_MLP = (256,)


def feature_mlp(feature_dim: int, hidden: list[int] | tuple[int, ...], dropout: float) -> nn.Sequential:
    """Linear, BatchNorm, ReLU, dropout per hidden size (identity for an empty list)."""
    layers: list[nn.Module] = []
    width = feature_dim
    for size in hidden:
        layers += [nn.Linear(width, int(size)), nn.BatchNorm1d(int(size)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = int(size)
    return nn.Sequential(*layers)


@TASKS.register("fusion_classifier")
class FusionClassifier(FrameClassifier):
    """Image -> backbone and features -> MLP, concatenated -> head (Kumari's CNN + HOG/landmark fusion).

    Batches are ``(image, features, label)`` from a datamodule with ``features:``; ``feature_dim`` comes
    from the datamodule and the head's ``in_features`` is ``backbone.num_features`` + the MLP's output.
    Metrics, logging and reports are the frame classifier's.
    """

    kind = "fusion"
    inputs = 2

    def __init__(
        self,
        feature_dim: int,
        mlp: list[int] = DEFAULT_MLP,  # type: ignore[assignment]
        mlp_dropout: float = 0.5,
        **parts: Unpack[TaskParts],
    ) -> None:
        if not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(f"feature_dim: expected an integer >= 1 (the datamodule's features), got {feature_dim!r}")
        super().__init__(**parts)
        self.feature_dim = feature_dim
        self.mlp = feature_mlp(feature_dim, list(mlp), mlp_dropout)

    @classmethod
    def head_in_features(cls, backbone_features: int, **task_args: Any) -> int:
        hidden = list(task_args.get("mlp", DEFAULT_MLP))
        return backbone_features + (int(hidden[-1]) if hidden else int(task_args["feature_dim"]))

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        fused = torch.cat([self.backbone(self.to_memory_format(x)), self.mlp(features)], dim=1)
        return self.head(fused)
