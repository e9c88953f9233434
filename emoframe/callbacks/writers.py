"""Prediction writers: one ``BasePredictionWriter`` per kind of output, registered as callbacks.

A task names its default in ``Task.prediction_writer``; a recipe's ``predict: {writer: {name: ...}}`` picks
another. ``emoframe predict`` builds the writer with ``path`` (``--output``, or ``<run>/predict/predictions.csv``)
and rank 0 writes it at the end of the predict epoch from every batch's ``predict_step`` outputs.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from emoframe.eval.probabilities import SplitProbabilities
from emoframe.eval.va_postprocessing import apply_postprocessors
from emoframe.eval.va_reports import assemble, at_rate, write_va_predictions
from emoframe.registry import CALLBACKS

Outputs = list[dict[str, Any]]


class PredictionWriter(BasePredictionWriter):
    """Base: ``write`` the outputs of a whole predict epoch to ``path`` (rank 0 only); ``paths`` lists the files."""

    def __init__(self, path: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.path = Path(path)
        self.paths: list[Path] | None = None

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        if trainer.is_global_zero:
            self.write_all(trainer, pl_module, list(predictions))

    def write_all(self, trainer: pl.Trainer, task: pl.LightningModule, outputs: Outputs) -> list[Path]:
        self.paths = self.write(outputs, task, trainer.datamodule)
        return self.paths

    def write(self, outputs: Outputs, task: Any, datamodule: Any) -> list[Path]:
        raise NotImplementedError

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.path.open("w", newline="")


def recording_outputs(outputs: Outputs, key: str, recordings: Sequence[Any], dims: int) -> list[np.ndarray]:
    """Per-frame ``outputs[key]`` of windows ``(recording, start)`` put back into one (frames, dims) array per
    recording (frames no window covered are NaN)."""
    windows = [
        (int(r), int(s), p.float().cpu().numpy())
        for batch in outputs
        for r, s, p in zip(batch["recording"], batch["start"], batch[key])
    ]
    return assemble(windows, [len(r) for r in recordings], dims)


@CALLBACKS.register("class_probabilities")
class ClassProbabilities(PredictionWriter):
    """One CSV row per example: index, predicted class, the target if known, the probability of every class."""

    def write(self, outputs: Outputs, task: Any, datamodule: Any) -> list[Path]:
        class_names = list(task.class_names)
        with self._open() as f:
            w = csv.writer(f)
            has_target = bool(outputs) and "target" in outputs[0]
            w.writerow(["index", "pred", *(["target"] if has_target else []), *[f"p_{c}" for c in class_names]])
            i = 0
            for batch in outputs:
                for j in range(len(batch["pred"])):
                    row: list[Any] = [i, class_names[int(batch["pred"][j])]]
                    if has_target:
                        row.append(class_names[int(batch["target"][j])])
                    row += [f"{p:.5f}" for p in batch["probs"][j].tolist()]
                    w.writerow(row)
                    i += 1
        return [self.path]


@CALLBACKS.register("clip_predictions")
class ClipPredictions(PredictionWriter):
    """One CSV row per clip, in clip order: name, file, frames used, true class (empty if unknown), prediction,
    and the probability of every class."""

    def write(self, outputs: Outputs, task: Any, datamodule: Any) -> list[Path]:
        class_names = list(task.class_names)
        recordings = datamodule.recordings("predict")
        rows = sorted(
            (int(c), int(n), int(t), int(p), probs.tolist())
            for batch in outputs
            for c, n, t, p, probs in zip(batch["clip"], batch["frames"], batch["target"], batch["pred"], batch["probs"])
        )
        with self._open() as f:
            w = csv.writer(f)
            w.writerow(["clip", "video", "frames", "target", "pred", *[f"p_{c}" for c in class_names]])
            for clip, frames, target, pred, probs in rows:
                rec = recordings[clip]
                truth = class_names[target] if target >= 0 else ""
                w.writerow([rec.name, rec.source, frames, truth, class_names[pred], *[f"{p:.5f}" for p in probs]])
        return [self.path]


@CALLBACKS.register("va_predictions")
class ValenceArousalPredictions(PredictionWriter):
    """Per-frame CSV of every predicted recording (post-processed when the checkpoint has it) and PNG plots."""

    def write(self, outputs: Outputs, task: Any, datamodule: Any) -> list[Path]:
        recordings = datamodule.recordings("predict")
        raw = recording_outputs(outputs, "preds", recordings, len(task.class_names))
        processors = dict(task.postprocessors)
        processed = [
            apply_postprocessors({n: at_rate(p, rec.fps) for n, p in processors.items()}, [pred])[0]
            if processors
            else pred
            for rec, pred in zip(recordings, raw)
        ]
        return write_va_predictions(recordings, raw, processed, self.path, task.class_names)


@CALLBACKS.register("multilabel_predictions")
class MultilabelPredictions(PredictionWriter):
    """One CSV row per frame of every predicted recording: probabilities and 0/1 at the saved thresholds."""

    def write(self, outputs: Outputs, task: Any, datamodule: Any) -> list[Path]:
        class_names = list(task.class_names)
        recordings = datamodule.recordings("predict")
        probs = recording_outputs(outputs, "probs", recordings, len(class_names))
        thresholds = task.thresholds.cpu().numpy()
        with self._open() as f:
            w = csv.writer(f)
            w.writerow(["recording", "frame", "time", "face", *[f"p_{c}" for c in class_names], *class_names])
            for rec, p in zip(recordings, probs):
                for i in range(len(rec)):
                    decided = (p[i] >= thresholds).astype(int) if rec.valid[i] else [""] * len(thresholds)
                    values = [f"{v:.4f}" if np.isfinite(v) and rec.valid[i] else "" for v in p[i]]
                    w.writerow([rec.name, i, f"{i / rec.fps:.3f}", int(rec.valid[i]), *values, *decided])
        return [self.path]


__all__ = [
    "ClassProbabilities",
    "ClipPredictions",
    "MultilabelPredictions",
    "PredictionWriter",
    "ValenceArousalPredictions",
    "recording_outputs",
]


class ProbabilityRecorder(pl.Callback):
    """The class probabilities and labels a frame task's ``validation_step``/``test_step`` return, kept per split
    (``val``, ``test``) in order: what ``emoframe test --save-probs`` writes, from the same passes that score."""

    def __init__(self) -> None:
        self.found: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def _keep(self, split: str, outputs: Any) -> None:
        if not isinstance(outputs, dict) or "probs" not in outputs:
            return
        probs, labels = self.found.setdefault(split, ([], []))
        probs.append(outputs["probs"].detach().float().cpu().numpy())
        labels.append(outputs["target"].detach().cpu().numpy().astype(np.int64))

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, *args: Any) -> None:
        if not trainer.sanity_checking:
            self._keep("val", outputs)

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, *args: Any) -> None:
        self._keep("test", outputs)

    def splits(self) -> dict[str, SplitProbabilities]:
        return {s: SplitProbabilities(np.concatenate(p), np.concatenate(y)) for s, (p, y) in self.found.items()}
