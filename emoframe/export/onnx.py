"""ONNX files of a task: the TorchScript-based ``torch.onnx.export`` (``dynamo=False``), metadata in ``metadata_props``.

Why that exporter: in torch 2.14 the default ``dynamo=True`` exporter (which needs onnxscript) fails on the
bidirectional LSTM/GRU, whose ``pack_padded_sequence`` has data-dependent sizes, and takes about 8x longer on the
others; the TorchScript-based one exports every emoframe task, the packed RNNs included, with batch and time
dynamic, and needs no onnxscript. The ``onnx`` package writes the metadata into the file after export.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from emoframe.export.graph import Graph, Inputs, traceable
from emoframe.tasks.base import Task

OPSET = 17
"""Opset 17: LSTM, GRU and every op a timm CNN uses; onnxruntime 1.14 and later run it."""


def write_onnx(
    task: Task, graph: Graph, example: Inputs, path: Path, metadata: dict[str, str], opset: int = OPSET
) -> None:
    """``task.forward`` traced on ``example`` into an ONNX file at ``path`` with ``metadata`` (str -> str)."""
    import onnx
    import torch

    with traceable(task), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation note of the TorchScript-based exporter, tracer notes
        torch.onnx.export(
            task,
            example,
            str(path),
            dynamo=False,
            input_names=list(graph.inputs),
            output_names=["output"],
            dynamic_axes=graph.dynamic_axes(),
            opset_version=opset,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "emoframe"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def onnx_metadata(path: Path) -> dict[str, Any]:
    """The ``metadata_props`` of an ONNX file, as read by ``onnx`` (not onnxruntime)."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
