"""Temporal models over per-frame features (B, T, F) -> (B, T, F'): plain torch, used by sequence tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emoframe.registry import RecipeError

TemporalKind = Literal["lstm", "gru", "mean", "none"]
KINDS = ("lstm", "gru", "mean", "none")


def temporal_width(kind: str, in_features: int, hidden_size: int, bidirectional: bool) -> int:
    """Feature width out of the temporal model (what the head gets)."""
    if kind not in KINDS:
        raise RecipeError(f"model.temporal: expected one of {', '.join(KINDS)}, got {kind!r}")
    return hidden_size * (2 if bidirectional else 1) if kind in ("lstm", "gru") else in_features


class TemporalModel(nn.Module):
    """``lstm``/``gru`` (Tzirakis et al.: a 2-layer LSTM), ``mean`` (the window's masked mean at every
    frame: a context-only baseline) or ``none`` (each frame alone: the frame model baseline).

    Frames where ``mask`` is False get zero features. A bidirectional RNN packs each window to its last
    unmasked frame, so the padding after a recording's end does not leak backwards into real frames.
    """

    def __init__(
        self,
        kind: TemporalKind,
        in_features: int,
        hidden_size: int = 256,
        num_layers: int = 2,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.out_features = temporal_width(kind, in_features, hidden_size, bidirectional)
        self.bidirectional = bidirectional
        self.rnn: nn.LSTM | nn.GRU | None = None
        if kind in ("lstm", "gru"):
            if hidden_size < 1 or num_layers < 1:
                raise RecipeError(f"model: hidden_size and num_layers must be >= 1, got {hidden_size}, {num_layers}")
            rnn = nn.LSTM if kind == "lstm" else nn.GRU
            self.rnn = rnn(
                in_features,
                hidden_size,
                num_layers=num_layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=dropout if num_layers > 1 else 0.0,
            )

    def xavier_(self) -> None:
        """Xavier-uniform weights and zero biases (the paper's random initialisation)."""
        if self.rnn is not None:
            for name, p in self.rnn.named_parameters():
                if name.startswith("weight"):
                    nn.init.xavier_uniform_(p)
                else:
                    nn.init.zeros_(p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x * mask.unsqueeze(-1).to(x.dtype)
        if self.kind == "none":
            return x
        if self.kind == "mean":
            weights = mask.to(x.dtype).unsqueeze(-1)
            mean = (x * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1.0)
            return mean.expand_as(x)
        assert self.rnn is not None
        if not self.bidirectional:
            return self.rnn(x)[0]
        steps = torch.arange(1, x.shape[1] + 1, device=x.device)
        lengths = (mask.long() * steps).amax(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return out


def per_frame_outputs(
    backbone: nn.Module,
    temporal: TemporalModel,
    head: nn.Module,
    frames: torch.Tensor,
    mask: torch.Tensor | None,
    memory_format: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
) -> torch.Tensor:
    """(B, T, C, H, W) frames, (B, T) mask -> (B, T, outputs): the backbone on the unmasked frames only
    (zero features elsewhere), the temporal model over every step, the head per frame."""
    b, t = frames.shape[:2]
    mask = torch.ones((b, t), dtype=torch.bool, device=frames.device) if mask is None else mask
    flat, keep = frames.reshape(b * t, *frames.shape[2:]), mask.reshape(-1)
    width = int(backbone.num_features)  # type: ignore[arg-type]
    features = frames.new_zeros((b * t, width))
    if bool(keep.any()):
        features = features.index_put((keep,), backbone(memory_format(flat[keep])).to(features))
    sequence = temporal(features.reshape(b, t, width), mask)
    return head(sequence.reshape(b * t, -1)).reshape(b, t, -1)
