"""The export-time check: the exported file, read back as ``predict`` reads it, against the PyTorch task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from emoframe.errors import WeightsError
from emoframe.export.graph import Inputs
from emoframe.export.runtime import ExportedModel
from emoframe.tasks.base import Task

TOLERANCE = 1e-4
"""Largest absolute difference allowed between the exported model's and PyTorch's probabilities (values for
regressors)."""


@dataclass(frozen=True)
class Parity:
    """The largest absolute difference over every case, and the input shapes of each case."""

    max_diff: float
    shapes: tuple[tuple[int, ...], ...]

    def describe(self) -> str:
        return ", ".join("x".join(str(d) for d in s) for s in self.shapes)


def check_parity(task: Task, exported: ExportedModel, cases: Sequence[Inputs], tolerance: float = TOLERANCE) -> Parity:
    """``exported(*inputs)`` against ``task(*inputs)`` on each case: same shape and dtype, and probabilities (the
    exported model's ``output`` activation) within ``tolerance``; else one ``WeightsError`` line."""
    worst = 0.0
    task.eval()
    for inputs in cases:
        with torch.no_grad():
            want = task(*inputs)
        got = exported(*inputs)
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise WeightsError(
                f"{exported.path}: parity check failed: output {tuple(got.shape)} {got.dtype} for inputs "
                f"{tuple(inputs[0].shape)}, PyTorch gives {tuple(want.shape)} {want.dtype}"
            )
        if not want.numel():
            continue
        diff = float((exported.scores(got) - exported.scores(want)).abs().max())
        what = "probabilities" if exported.output != "identity" else "outputs"
        # the raw outputs too (logits: a shift leaves softmax unchanged), relative to their size
        raw = float(((got - want).abs() / want.abs().clamp(min=1.0)).max())
        if not raw <= tolerance and diff <= tolerance:
            diff, what = raw, "outputs (relative)"
        if not diff <= tolerance:  # NaN fails too
            raise WeightsError(
                f"{exported.path}: parity check failed: max abs difference {diff:.2e} > {tolerance:g} in "
                f"{what} on inputs {tuple(inputs[0].shape)}"
            )
        worst = max(worst, diff)
    return Parity(worst, tuple(tuple(c[0].shape) for c in cases))
