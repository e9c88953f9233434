"""``lstm``/``gru`` (Tzirakis et al.: a 2-layer LSTM), ``mean`` (the window's masked mean at every frame: a
context-only baseline) and ``none`` (each frame alone: the frame model baseline).

Frames where ``mask`` is False get zero features. A bidirectional RNN packs each window to its last unmasked
frame, so the padding after a recording's end does not leak backwards into real frames.
"""

from __future__ import annotations

from typing import Annotated, Any

import annotated_types
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emoframe.registry import TEMPORAL, Probability, RecipeError, Width


class TemporalModel(nn.Module):
    """Base: (B, T, F) features and a (B, T) mask -> (B, T, ``out_features``); masked frames are zeros."""

    kind = "none"
    bidirectional = False

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = self.in_features

    @classmethod
    def output_width(cls, in_features: int, **args: Any) -> int:
        """The width ``out_features`` will have for these recipe arguments (without building the model)."""
        return int(in_features)

    def xavier_(self) -> None:
        """Xavier-uniform weights and zero biases (the paper's random initialisation); nothing to do here."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x * mask.unsqueeze(-1).to(x.dtype)


@TEMPORAL.register("none")
class NoTemporal(TemporalModel):
    """Each frame alone (the frame model baseline): the features pass through, masked frames zeroed."""


@TEMPORAL.register("mean")
class MeanPool(TemporalModel):
    """The window's masked mean feature at every frame (a context-only baseline)."""

    kind = "mean"

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = super().forward(x, mask)
        weights = mask.to(x.dtype).unsqueeze(-1)
        mean = (x * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1.0)
        return mean.expand_as(x)


class RNNTemporal(TemporalModel):
    """A (stacked, optionally bidirectional) recurrent network over the frames; ``rnn_class`` is LSTM or GRU."""

    rnn_class: type[nn.LSTM] | type[nn.GRU] = nn.LSTM

    def __init__(
        self,
        in_features: int,
        hidden_size: Width = 256,
        num_layers: Annotated[int, annotated_types.Interval(ge=1, le=64)] = 2,
        bidirectional: bool = False,
        dropout: Probability = 0.0,
    ) -> None:
        super().__init__(in_features)
        if hidden_size < 1 or num_layers < 1:
            raise RecipeError(
                f"model.temporal: hidden_size and num_layers must be >= 1, got {hidden_size}, {num_layers}"
            )
        self.bidirectional = bidirectional
        self.out_features = self.output_width(in_features, hidden_size=hidden_size, bidirectional=bidirectional)
        self.rnn = self.rnn_class(
            in_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    @classmethod
    def output_width(cls, in_features: int, hidden_size: int = 256, bidirectional: bool = False, **args: Any) -> int:
        return int(hidden_size) * (2 if bidirectional else 1)

    def xavier_(self) -> None:
        for name, p in self.rnn.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(p)
            else:
                nn.init.zeros_(p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = super().forward(x, mask)
        if not self.bidirectional:
            return self.rnn(x)[0]
        steps = torch.arange(1, x.shape[1] + 1, device=x.device)
        lengths = (mask.long() * steps).amax(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return out


@TEMPORAL.register("lstm")
class LSTM(RNNTemporal):
    """A stacked LSTM (Tzirakis et al.: 2 layers); ``bidirectional`` packs each window to its last real frame."""

    kind = "lstm"
    rnn_class = nn.LSTM


@TEMPORAL.register("gru")
class GRU(RNNTemporal):
    """A stacked GRU; ``bidirectional`` packs each window to its last real frame."""

    kind = "gru"
    rnn_class = nn.GRU
