"""Report writers: the files ``emoframe test`` (and ``fit``) leave beside the run, written from what the task
computed (``task.results[split]``), never from inside the task.

A task returns the ones it wants from ``configure_callbacks``; each writes on rank 0 only, into the task's
``report_dir`` (set by the builder: ``<run>/<stage>``), and does nothing when that is unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from emoframe.eval.reports import write_confusion_reports, write_rows
from emoframe.metrics.multilabel import MultilabelScores
from emoframe.registry import CALLBACKS


def _report_dir(trainer: pl.Trainer, task: Any) -> Path | None:
    where = getattr(task, "report_dir", None)
    return Path(where) if where is not None and trainer.is_global_zero else None


@CALLBACKS.register("confusion_report")
class ConfusionReport(Callback):
    """``test_confusion.csv`` (counts, rows = true class) and ``test_confusion.png`` after ``test`` (and
    ``test_tta_confusion.*`` when it ran with TTA)."""

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out = _report_dir(trainer, pl_module)
        results = getattr(pl_module, "results", None) or {}
        for split in ("test", "test_tta"):  # test_tta: the same pass with test-time augmentation
            confusion = results.get(split, {}).get("confusion")
            if out is not None and confusion is not None:
                write_confusion_reports(confusion, list(pl_module.class_names), out, prefix=split)  # type: ignore[arg-type]


def write_label_report(scores: MultilabelScores, default: MultilabelScores, names: list[str], path: Path) -> Path:
    """Per-label test scores: AUROC, AP, F1 at the tuned and the default threshold, and the counts."""
    rows = [
        {
            "label": name,
            "positives": int(scores.positives[i]),
            "negatives": int(scores.negatives[i]),
            "auroc": float(scores.auroc[i]),
            "ap": float(scores.ap[i]),
            "threshold": float(scores.thresholds[i]),
            "f1": float(scores.f1[i]),
            "f1_default": float(default.f1[i]),
        }
        for i, name in enumerate(names)
    ]
    return write_rows(rows, path, float_format=None)


@CALLBACKS.register("label_report")
class LabelReport(Callback):
    """``test_labels.csv`` after a multi-label ``test``: per-label AUROC, AP, threshold, F1 (tuned and default)."""

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out = _report_dir(trainer, pl_module)
        results = (getattr(pl_module, "results", None) or {}).get("test") or {}
        if out is not None and "scores" in results:
            names = list(pl_module.class_names)  # type: ignore[arg-type]
            write_label_report(results["scores"], results["at_default"], names, out / "test_labels.csv")


@CALLBACKS.register("label_counts")
class LabelCounts(Callback):
    """``label_counts.csv`` beside the checkpoints at fit start: the training split's per-label counts before and
    after re-sampling (the datamodule's ``count_rows``)."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rows = getattr(getattr(trainer, "datamodule", None), "count_rows", None)
        if rows and trainer.is_global_zero and trainer.default_root_dir:
            write_rows(rows, Path(trainer.default_root_dir) / "label_counts.csv", float_format=None)


__all__ = ["ConfusionReport", "LabelCounts", "LabelReport", "write_label_report"]
