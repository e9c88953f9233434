"""``emoframe export``: a task to an ONNX or TorchScript file with its preprocessing described, checked at once.

The file is written under a temporary name beside the output, read back with ``load_exported`` (as ``predict``
reads it), compared with the PyTorch task on real inputs (a datamodule batch the caller gives) or on random
ones, and moved into place only when every case is within the tolerance: a failed export leaves no file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoframe import __version__
from emoframe.errors import RecipeError, WeightsError
from emoframe.export import runtime
from emoframe.export.graph import Graph, Inputs, extras_of, graph_of
from emoframe.export.onnx import OPSET, write_onnx
from emoframe.export.parity import TOLERANCE, Parity, check_parity
from emoframe.export.torchscript import write_torchscript
from emoframe.tasks.base import Task

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
EXAMPLE_BATCH, EXAMPLE_TIME = 2, 3
"""The traced example's shape; parity runs other batch sizes and lengths, so a fixed axis would show."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    parity: Parity
    inputs: str  # what parity ran on, in words
    tolerance: float = TOLERANCE

    def summary(self) -> str:
        return (
            f"Parity: max abs difference {self.parity.max_diff:.1e} (<= {self.tolerance:g}) on {self.inputs}; "
            f"input shapes {self.parity.describe()}"
        )


def default_output(ckpt: Path, fmt: str) -> Path:
    """``best.ckpt`` -> ``best.onnx`` / ``best.ts`` beside it."""
    return ckpt.with_suffix(FORMATS[fmt])


def metadata(task: Task, graph: Graph, payload: dict[str, Any]) -> dict[str, str]:
    """The JSON strings stored in the file (``runtime.METADATA_KEYS``)."""
    recipe = dict(task.recipe or {})
    model = recipe.get("model") or {}
    values = {
        runtime.RECIPE: recipe,
        runtime.DATA: task.spec.to_dict() if task.spec is not None else {},
        runtime.TASK: str(model.get("name") or model.get("class_path") or type(task).__name__),
        runtime.CLASS_NAMES: list(task.class_names) or None,
        runtime.VERSION: __version__,
        runtime.INPUTS: list(graph.inputs),
        runtime.OUTPUT: graph.output,
        runtime.EXTRAS: extras_of(task, payload),
    }
    return {k: json.dumps(v, default=str) for k, v in values.items()}


def parity_cases(graph: Graph, real: Inputs) -> list[Inputs]:
    """The real inputs and a second shape: another length (sequences) or batch size (frames)."""
    if graph.sequential:
        return [real, graph.other_length(real)]
    return [real, tuple(t[:1] for t in real)]


def export_task(
    task: Task,
    fmt: str,
    output: Path,
    payload: dict[str, Any] | None = None,
    batch: Sequence[Any] | None = None,
    batch_source: str = "",
    items: int = 8,
    opset: int = OPSET,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Export ``task`` to ``output`` as ``fmt`` (``onnx``/``torchscript``) and check it.

    ``batch``: a datamodule batch (real inputs; its first ``items`` items are used), ``batch_source`` says what it
    is; without one parity runs on random inputs of the trained size. ``payload``: the checkpoint's contents (for
    the extras: thresholds, post-processing).
    """
    if fmt not in FORMATS:
        raise RecipeError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    graph = graph_of(task)
    meta = metadata(task, graph, dict(payload or {}))
    example = graph.random_inputs(EXAMPLE_BATCH, EXAMPLE_TIME)
    if batch is not None:
        real, words = graph.batch_inputs(batch, items), batch_source
    else:
        real, words = graph.random_inputs(4, 7, seed=1), batch_source or "random inputs"
    output = Path(output)
    allowed = runtime.ONNX_SUFFIXES if fmt == "onnx" else runtime.TORCHSCRIPT_SUFFIXES
    if output.suffix.lower() not in allowed:
        raise RecipeError(
            f"--output: an exported {fmt} file must end in {' or '.join(allowed)} (load_model reads it by suffix)"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial-{os.getpid()}{output.suffix}")
    try:
        try:
            if fmt == "onnx":
                write_onnx(task, graph, example, partial, meta, opset)
            else:
                write_torchscript(task, example, partial, meta)
        except (RecipeError, WeightsError):
            raise
        except Exception as err:  # the tracer and exporter fail in many ways on a forward they cannot record
            lines = str(err).strip().splitlines()
            raise WeightsError(
                f"{output}: {fmt} export of {type(task).__name__} failed ({type(err).__name__}: "
                f"{lines[0][:200] if lines else ''})"
            ) from None
        exported = runtime.load_exported(partial)
        exported.path = output
        parity = check_parity(task, exported, parity_cases(graph, real), tolerance)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(output, fmt, parity, words, tolerance)
