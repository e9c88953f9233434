"""Any timm model as a feature extractor (classifier removed); weights from a local file only."""

from __future__ import annotations

import difflib

import timm
import torch
from torch import nn

from emoframe.backbones.weights import load_pretrained
from emoframe.registry import BACKBONES, RecipeError


@BACKBONES.register("timm")
class TimmBackbone(nn.Module):
    """A timm model by name (e.g. resnet18), pooled features out; `weights` is a local file."""

    def __init__(
        self,
        model: str,
        in_chans: int = 1,
        weights: str | None = None,
        drop_rate: float = 0.0,
        drop_path_rate: float | None = None,
        partial_weights: bool = False,
    ) -> None:
        super().__init__()
        if not timm.is_model(model):
            close = difflib.get_close_matches(model, timm.list_models(), n=5)
            raise RecipeError(f"model.backbone.model: unknown timm model '{model}'. Similar: {', '.join(close)}")
        extra = {} if drop_path_rate is None else {"drop_path_rate": drop_path_rate}
        # pretrained=False always: timm would download from a hub; weights come from `weights`.
        self.model = timm.create_model(
            model, pretrained=False, num_classes=0, in_chans=in_chans, drop_rate=drop_rate, **extra
        )
        # the pooled output's width: models with a conv head after pooling (MobileNetV3) report it separately
        self.num_features: int = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)
        if weights:
            load_pretrained(self.model, weights, partial=partial_weights, flag="model.backbone.partial_weights")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
