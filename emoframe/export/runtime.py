"""Exported models read back: ``load_exported("model.onnx")`` (onnxruntime, CPU) or ``("model.ts")`` (TorchScript).

An exported file carries what ``emoframe.load_model`` reads from a checkpoint: the resolved recipe, the DataSpec
(``emoframe_data``: channels, classes, image size, normalisation, face settings), the task name and class names,
the emoframe version that wrote it. ONNX keeps them as ``metadata_props`` (one JSON string per key below),
TorchScript as ``_extra_files`` (``<key>.json``). ``ExportedModel(*tensors)`` returns what the task's
``forward(*tensors)`` returns (logits for classifiers, values for regressors), as a CPU float tensor.

This module imports neither Lightning nor onnxruntime at import time (onnxruntime only when an ONNX file is
loaded), so a predictor that only runs exported files stays light.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emoframe.errors import DataError, WeightsError
from emoframe.spec import PREPROCESSING_KEYS

RECIPE = "emoframe_recipe"
DATA = "emoframe_data"
TASK = "emoframe_task"
CLASS_NAMES = "emoframe_class_names"
VERSION = "emoframe_version"
INPUTS = "emoframe_inputs"
OUTPUT = "emoframe_output"
EXTRAS = "emoframe_extras"
METADATA_KEYS = (RECIPE, DATA, TASK, CLASS_NAMES, VERSION, INPUTS, OUTPUT, EXTRAS)
"""Every key an exported file carries, each a JSON string. ``emoframe_inputs``: the input names in ``forward``'s
order (``image``; ``image, features``; ``frames, mask``); ``emoframe_output``: how scores are read from the
output (``softmax``, ``sigmoid`` or ``identity``); ``emoframe_extras``: task state that is not in the graph
(multi-label ``thresholds``, valence/arousal ``postprocess``)."""
REQUIRED_KEYS = (RECIPE, DATA, TASK, INPUTS)

ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".ts", ".pt")
SUFFIXES = ONNX_SUFFIXES + TORCHSCRIPT_SUFFIXES


@dataclass
class ExportedModel:
    """A model exported by ``emoframe export``, callable like its task's ``forward``.

    ``task_name``: the recipe's ``model.name``; ``recipe``: the resolved recipe stored in the checkpoint;
    ``data``: the ``emoframe.spec.ModelSpec`` fields (only the data's, in files of emoframe before it); ``class_names``: what each output means (None if the task named none);
    ``inputs``: input names in order; ``output``: ``softmax``/``sigmoid``/``identity``; ``extras``: thresholds or
    post-processing; ``format``: ``onnx`` or ``torchscript``.
    """

    path: Path
    format: str
    task_name: str
    recipe: dict[str, Any]
    data: dict[str, Any]
    class_names: list[str] | None
    inputs: list[str]
    output: str = "identity"
    extras: dict[str, Any] = field(default_factory=dict)
    emoframe_version: str | None = None
    _run: Any = field(default=None, repr=False)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """How inputs were made in training (as ``emoframe.load_model(ckpt).preprocessing``)."""
        return {k: self.data.get(k) for k in PREPROCESSING_KEYS}

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        """Probabilities (``softmax``/``sigmoid``) or values (``identity``) of an output of this model."""
        if self.output == "softmax":
            return output.softmax(dim=-1)
        if self.output == "sigmoid":
            return torch.sigmoid(output)
        return output

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        """The task's ``forward(*tensors)``: a sequence model given frames alone treats every frame as real.

        Inputs are cast to the graph's types (float32; bool for ``mask``); a shape the model cannot take is a
        one-line ``DataError`` naming the input and the shape expected.
        """
        given = [torch.as_tensor(t) for t in tensors]
        if len(given) == len(self.inputs) - 1 and self.inputs[-1] == "mask" and given:
            given.append(torch.ones(given[0].shape[:2], dtype=torch.bool))
        if len(given) != len(self.inputs):
            raise WeightsError(
                f"{self.path}: expected {len(self.inputs)} input(s) ({', '.join(self.inputs)}), got {len(tensors)}"
            )
        cast = [t.bool() if name == "mask" else t.float() for name, t in zip(self.inputs, given)]
        self._check_shapes(cast)
        return self._run(cast)

    def expected_shape(self, name: str) -> tuple[int | str, ...]:
        """The shape input ``name`` must have, ``B``/``T`` for the dynamic batch and time axes."""
        size, channels = self.data.get("image_size"), self.data.get("channels")
        image = (channels or "C", size or "H", size or "W")
        if name == "image":
            return ("B", *image)
        if name == "features":
            return ("B", self.data.get("feature_dim") or "F")
        if name == "frames":
            return ("B", "T", *image)
        return ("B", "T")

    def _check_shapes(self, tensors: Sequence[torch.Tensor]) -> None:
        first = None
        for name, t in zip(self.inputs, tensors):
            want = self.expected_shape(name)
            shape = tuple(t.shape)
            lead = shape[: 2 if name in ("frames", "mask") else 1]
            fits = len(shape) == len(want) and all(isinstance(w, str) or w == d for w, d in zip(want, shape))
            if fits and first is not None and lead != first[: len(lead)]:
                fits = False
            if not fits:
                wanted = "(" + ", ".join(str(w) for w in want) + ")"
                raise DataError(f"{self.path}: input '{name}' is {shape}; the model takes {wanted}")
            first = first or shape[:2]


def read_metadata(found: dict[str, str], path: Path) -> dict[str, Any]:
    """The JSON values of an exported file's metadata, or a one-line error for a file emoframe did not export."""
    missing = [k for k in REQUIRED_KEYS if k not in found]
    if missing:
        raise WeightsError(
            f"{path}: not exported by emoframe (no {missing[0]} metadata); export it with emoframe export"
        )
    try:
        return {k: json.loads(v) for k, v in found.items() if k in METADATA_KEYS and v != ""}
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path}: its emoframe metadata is not valid JSON ({err.msg})") from None


def _model(path: Path, fmt: str, meta: dict[str, Any], run: Any) -> ExportedModel:
    names = meta.get(CLASS_NAMES)
    return ExportedModel(
        path=path,
        format=fmt,
        task_name=str(meta[TASK]),
        recipe=dict(meta[RECIPE]),
        data=dict(meta[DATA]),
        class_names=list(names) if names else None,
        inputs=[str(n) for n in meta[INPUTS]],
        output=str(meta.get(OUTPUT) or "identity"),
        extras=dict(meta.get(EXTRAS) or {}),
        emoframe_version=meta.get(VERSION),
        _run=run,
    )


def load_onnx(path: Path, threads: int | None = None) -> ExportedModel:
    """An ONNX file on onnxruntime's CPU provider; ``threads``: intra-op threads (None: onnxruntime's default)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise WeightsError(f"{path}: running ONNX models needs onnxruntime (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a missing-metadata warning is not the user's concern
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # truncated or foreign files fail in many ways inside onnxruntime
        raise WeightsError(f"{path}: not a readable ONNX model ({type(err).__name__})") from None
    meta = read_metadata(dict(session.get_modelmeta().custom_metadata_map), path)
    names = [i.name for i in session.get_inputs()]
    if names != list(meta[INPUTS]):
        raise WeightsError(f"{path}: its graph takes {names} but its metadata names {meta[INPUTS]}")

    def run(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        feed = {n: t.detach().cpu().contiguous().numpy() for n, t in zip(names, tensors)}
        return torch.from_numpy(session.run(None, feed)[0])

    return _model(path, "onnx", meta, run)


def load_torchscript(path: Path) -> ExportedModel:
    """A TorchScript file written by ``emoframe export --format torchscript``, on the CPU."""
    extra = {f"{k}.json": "" for k in METADATA_KEYS}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's note that torch.export succeeds it
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:  # a torch.save pickle, a truncated zip, another file altogether
        raise WeightsError(f"{path}: not a readable TorchScript model ({type(err).__name__})") from None
    found = {k.removesuffix(".json"): v.decode() if isinstance(v, bytes) else v for k, v in extra.items() if v}
    meta = read_metadata(found, path)
    module.eval()

    def run(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return module(*(t.detach().cpu() for t in tensors))

    return _model(path, "torchscript", meta, run)


def load_exported(path: str | Path, threads: int | None = None) -> ExportedModel:
    """The model in an exported file, by suffix: ``.onnx`` (onnxruntime, CPU), ``.ts``/``.pt`` (TorchScript).

    A missing, truncated or foreign file, or one emoframe did not export, fails in one line (``WeightsError``).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Exported model not found: {path}")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return load_onnx(path, threads)
    if suffix in TORCHSCRIPT_SUFFIXES:
        return load_torchscript(path)
    raise WeightsError(f"{path}: expected an exported model (.onnx, or .ts/.pt for TorchScript), got '{suffix}'")


def is_exported(path: str | Path) -> bool:
    """Whether ``emoframe.load_model`` should read ``path`` as an exported model rather than a checkpoint: any
    ``.onnx`` or ``.ts`` file, and a ``.pt`` file that is a TorchScript archive (it holds code, a pickle does not)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (*ONNX_SUFFIXES, ".ts"):
        return True
    if suffix != ".pt" or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n for n in z.namelist())


__all__ = ["METADATA_KEYS", "ExportedModel", "is_exported", "load_exported"]
