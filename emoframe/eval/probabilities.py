"""Class probabilities of a split: collected from any forward callable, scored, and saved to a file.

``collect`` runs a callable (a task, ``emoframe.tta.TTA`` around one, an ensemble) over a DataLoader of
``(inputs..., label)`` batches in inference mode and returns the probabilities and labels as arrays; ``score``
gives the figures ``emoframe test`` reports (accuracy, macro F1, balanced accuracy) from the same torchmetrics
objects the tasks use, so the two agree exactly. A probability file (``*.probs.npz``) holds the probabilities
of one model on one or more splits with their labels and class names: what ``emoframe test --save-probs``
writes and ``emoframe ensemble`` reads.

    class_names  str (C,)     the classes, in column order
    meta         str ()       JSON: format, version, and what made them (checkpoint path, tta views, ...)
    <split>_probs  float32 (N, C)   rows sum to 1
    <split>_labels int64 (N,)       -1 where unknown
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from emoframe.errors import DataError
from emoframe.files.atomic import atomic_write
from emoframe.metrics import ClassificationMetrics

PROBS_FORMAT = "emoframe-probabilities"
PROBS_VERSION = 1
PROBS_SUFFIX = ".probs.npz"


@dataclass
class SplitProbabilities:
    """One split's ``(N, C)`` probabilities and ``(N,)`` labels (``-1``: unknown)."""

    probs: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.probs = np.asarray(self.probs, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)


@dataclass
class ProbabilityFile:
    """A model's probabilities on named splits (``val``, ``test``, ...), with the class names and a meta dict."""

    splits: dict[str, SplitProbabilities]
    class_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def collect(
    forward: Callable[..., torch.Tensor],
    batches: Iterable[Any],
    inputs: int = 1,
    device: torch.device | str = "cpu",
    probabilities: bool = True,
    desc: str | None = None,
) -> SplitProbabilities:
    """``forward(*batch[:inputs])`` over every batch (no grad): its outputs (softmax first unless
    ``probabilities``) and the labels (the batch entry after the inputs; -1 when there is none)."""
    probs, labels = [], []
    total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
    with torch.inference_mode():
        for batch in tqdm(batches, total=total, desc=desc, unit="batch", disable=desc is None, leave=False):
            x = [t.to(device) for t in batch[:inputs]]
            out = forward(*x)
            out = out if probabilities else out.softmax(dim=-1)
            probs.append(out.float().cpu().numpy())
            if len(batch) > inputs:
                labels.append(np.asarray(batch[inputs].cpu().numpy(), dtype=np.int64))
            else:
                labels.append(np.full(len(out), -1, dtype=np.int64))
    if not probs:
        return SplitProbabilities(np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
    return SplitProbabilities(np.concatenate(probs), np.concatenate(labels))


def score(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``acc``, ``macro_f1``, ``balanced_acc`` and ``samples`` of the argmax of ``probs``: the tasks' own
    ``ClassificationMetrics``, so the figures equal ``emoframe test``'s."""
    known = labels >= 0
    if not known.any():
        raise DataError("no labelled examples to score: this split has no labels")
    metrics = ClassificationMetrics(probs.shape[1])
    metrics.update(torch.from_numpy(probs[known]), torch.from_numpy(labels[known]))
    scalars, _, _ = metrics.compute()
    return {k: float(v) for k, v in scalars.items()}


def confusion(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts, rows = true class, columns = the argmax of ``probs``."""
    known = labels >= 0
    n = probs.shape[1]
    out = np.zeros((n, n), dtype=np.int64)
    np.add.at(out, (labels[known], probs[known].argmax(axis=1)), 1)
    return out


def save_probabilities(path: str | Path, data: ProbabilityFile) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "class_names": np.asarray(data.class_names, dtype=str),
        "meta": np.asarray(json.dumps({"format": PROBS_FORMAT, "version": PROBS_VERSION, **data.meta})),
    }
    for split, values in data.splits.items():
        arrays[f"{split}_probs"] = values.probs
        arrays[f"{split}_labels"] = values.labels
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def read_probabilities(path: str | Path) -> ProbabilityFile:
    """A probability file, or one ``DataError`` line naming it: missing, unreadable, foreign, inconsistent."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Probability file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:
        raise DataError(f"{path}: not a readable probability file ({type(err).__name__})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
        class_names = [str(c) for c in arrays.pop("class_names")]
    except (KeyError, ValueError):
        raise DataError(
            f"{path}: not an emoframe probability file (no meta/class_names; write it with emoframe test --save-probs)"
        ) from None
    if meta.get("format") != PROBS_FORMAT:
        raise DataError(f"{path}: not an emoframe probability file (format {meta.get('format')!r})")
    splits = {}
    for key in sorted(arrays):
        if not key.endswith("_probs"):
            continue
        split = key.removesuffix("_probs")
        probs, labels = arrays[key], arrays.get(f"{split}_labels")
        if probs.ndim != 2 or probs.shape[1] != len(class_names) or labels is None or labels.shape != probs.shape[:1]:
            raise DataError(
                f"{path}: split '{split}' has probabilities of shape {probs.shape} and labels "
                f"{None if labels is None else labels.shape} for {len(class_names)} classes"
            )
        splits[split] = SplitProbabilities(probs, labels)
    if not splits:
        raise DataError(f"{path}: holds no split's probabilities")
    return ProbabilityFile(splits, class_names, meta, path)


def probabilities_path(path: str | Path) -> Path:
    """``path`` with the ``.probs.npz`` suffix when it has none (``out`` -> ``out.probs.npz``)."""
    path = Path(path)
    return path if path.name.endswith(".npz") else path.with_name(path.name + PROBS_SUFFIX)


def as_meta(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as plain JSON data (tuples become lists), as they will read back from a file."""
    return json.loads(json.dumps(dict(values), default=str))
