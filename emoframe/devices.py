"""Where a network runs: one resolver for every verb (``--device auto|cpu|cuda|cuda:N``)."""

from __future__ import annotations

import torch

from emoframe.errors import RecipeError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:N``; else one line naming what is expected."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RecipeError(f"--device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(f"--device {name}: no CUDA device is available here (use --device cpu)")
    return device
