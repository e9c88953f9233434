"""TorchScript files of a task: ``torch.jit.trace`` of its ``forward``, metadata as ``_extra_files`` (``<key>.json``).

TorchScript is in maintenance in PyTorch (``torch.export`` is its successor) but is still what C++ (libtorch),
mobile and ``torch.jit.load`` without emoframe read; a trace records the packed LSTM and the dynamic batch and
time of sequence models (the parity check at export runs other shapes than the example).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from emoframe.export.graph import Inputs, traceable
from emoframe.tasks.base import Task


def write_torchscript(task: Task, example: Inputs, path: Path, metadata: dict[str, str]) -> None:
    """``task.forward`` traced on ``example``, saved at ``path`` with ``metadata`` as ``<key>.json`` extra files."""
    with traceable(task), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python values that are constants here
        traced = torch.jit.trace(task, example, check_trace=False)
        extra = {f"{key}.json": value for key, value in metadata.items()}
        torch.jit.save(traced, str(path), _extra_files=extra)  # (its FutureWarning: see the module's docstring)
