"""``emoframe test``/``predict`` with ``--tta``, ``--save-probs``, or an ensemble file as ``--ckpt``.

These run outside Lightning's loops (one process): a forward callable (``emoframe.tta.TTA`` around the task,
or the members of an ensemble) over the datamodule's split, scored with the tasks' own metrics
(``emoframe.eval.probabilities``) and written with the task's prediction writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from emoframe.ensemble.files import read_ensemble
from emoframe.ensemble.members import ensemble_probabilities, frame_task, probability_model, split_loader
from emoframe.eval.probabilities import (
    ProbabilityFile,
    SplitProbabilities,
    collect,
    confusion,
    save_probabilities,
    score,
)
from emoframe.eval.reports import write_confusion_reports, write_rows
from emoframe.tta import TTATransform, describe_views


def tta_comparison(
    task: Any, datamodule: Any, views: Sequence[TTATransform], report_dir: Path | None, device: torch.device
) -> tuple[list[dict[str, Any]], dict[str, SplitProbabilities]]:
    """The test split scored without and with TTA (same batches, same metrics): two rows, written to
    ``test_tta.csv`` with the TTA confusion matrix (``test_tta_confusion.csv/png``) in ``report_dir``."""
    task = frame_task(task, "--tta").eval().to(device)
    loader = split_loader(datamodule, "test")
    found = {
        "none": collect(probability_model(task, None), loader, task.inputs, device, desc="test"),
        "tta": collect(probability_model(task, views), loader, task.inputs, device, desc=f"test, {len(views)} views"),
    }
    rows = []
    for name, probs in found.items():
        s = score(probs.probs, probs.labels)
        rows.append({"tta": name if name == "none" else describe_views(views), **s})
    if report_dir is not None:
        write_rows(rows, report_dir / "test_tta.csv")
        cm = confusion(found["tta"].probs, found["tta"].labels)
        write_confusion_reports(cm, list(task.class_names), report_dir, prefix="test_tta")
    return rows, found


def save_test_probabilities(
    task: Any,
    datamodule: Any,
    path: Path,
    views: Sequence[TTATransform] | None,
    device: torch.device,
    meta: dict[str, Any],
    known: dict[str, SplitProbabilities] | None = None,
) -> Path:
    """``path`` (``*.probs.npz``): the task's validation and test probabilities (with ``views`` when given),
    for ``emoframe ensemble``; ``known`` are splits computed already."""
    task = frame_task(task, "--save-probs").eval().to(device)
    model = probability_model(task, views)
    splits = dict(known or {})
    for split in ("val", "test"):
        if split not in splits:
            splits[split] = collect(model, split_loader(datamodule, split), task.inputs, device, desc=split)
    tta = [v.settings() for v in views] if views else None
    return save_probabilities(path, ProbabilityFile(splits, list(task.class_names), {**meta, "tta": tta}))


def predict_outputs(probs: SplitProbabilities) -> list[dict[str, torch.Tensor]]:
    """Probabilities as the one-batch ``predict_step`` outputs a class-probability writer takes."""
    p = torch.from_numpy(np.asarray(probs.probs, dtype=np.float32))
    out = {"probs": p, "pred": p.argmax(dim=-1)}
    if (probs.labels >= 0).all() and len(probs.labels):
        out["target"] = torch.from_numpy(probs.labels)
    return [out]


def predict_with_tta(
    task: Any, datamodule: Any, views: Sequence[TTATransform], writer: Any, device: torch.device
) -> list[Path]:
    """``emoframe predict --tta``: the predict split's probabilities averaged over ``views``, written by ``writer``."""
    task = frame_task(task, "--tta").eval().to(device)
    probs = collect(probability_model(task, views), split_loader(datamodule, "predict"), task.inputs, device, "predict")
    return writer.write(predict_outputs(probs), task, datamodule)


def test_ensemble(
    path: str | Path, overrides: Sequence[str], report_dir: Path, device: torch.device
) -> tuple[dict[str, float], Path]:
    """``emoframe test --ckpt x.ensemble.yaml``: the ensemble and each member on the test split; writes
    ``test_ensemble.csv`` (one row per member and the ensemble) and the ensemble's confusion matrix."""
    spec = read_ensemble(path)
    found, members = ensemble_probabilities(spec, ["test"], overrides, device)
    test = found["test"]
    rows = []
    for ckpt, weight, probs in members:
        s = score(probs.splits["test"].probs, probs.splits["test"].labels)
        rows.append({"model": str(ckpt), "weight": weight, **s})
    result = score(test.probs.astype(np.float32), test.labels)
    rows.append({"model": "ensemble", "weight": None, **result})
    report_dir.mkdir(parents=True, exist_ok=True)
    write_rows(rows, report_dir / "test_ensemble.csv")
    write_confusion_reports(confusion(test.probs, test.labels), list(spec.class_names), report_dir, prefix="test")
    return result, report_dir


def predict_ensemble(path: str | Path, overrides: Sequence[str], writer: Any, device: torch.device) -> list[Path]:
    """``emoframe predict --ckpt x.ensemble.yaml``: the ensemble's probabilities on the predict split."""
    spec = read_ensemble(path)
    found, _ = ensemble_probabilities(spec, ["predict"], overrides, device)
    return writer.write(predict_outputs(found["predict"]), SimpleNamespace(class_names=list(spec.class_names)), None)
