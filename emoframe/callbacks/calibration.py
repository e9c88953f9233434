"""Components fitted on validation data that a task uses: valence/arousal post-processing and multi-label
decision thresholds (anomalib's post-processor/evaluator split: the task computes and logs its metrics, these
fit what is derived from them).

Both act at ``on_validation_end``: after the task's ``on_validation_epoch_end`` has computed the epoch's scores,
before ``ModelCheckpoint`` (which Lightning always runs last) saves them with the weights. What they fit is
stored on the task, which saves it in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from emoframe.eval.reports import write_rows
from emoframe.eval.va_postprocessing import fit_postprocessors
from emoframe.eval.va_reports import Window, assemble, postprocess_steps
from emoframe.registry import CALLBACKS


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread: the post-processing search is hundreds of small reductions, which torch's thread
    pool slows tenfold on a busy machine (RECOLA-sized dev split: 1.1 s on one thread, 47 s on two threads
    of two loaded cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gather_recordings(
    windows: list[Window], datamodule: Any, split: str, dims: int
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Whole-recording predictions and labels of a split (windows from every DDP rank), and the fps.

    Recordings some window of which was not evaluated (a shortened epoch) are left out.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, windows)
        windows = [w for part in parts for w in part]
    recordings = datamodule.recordings(split)
    preds = assemble(windows, [len(r) for r in recordings], dims)
    labels = [np.where(r.valid[:, None], r.labels, np.nan) for r in recordings]
    keep = [i for i, p in enumerate(preds) if np.isfinite(p).all()]
    return [preds[i] for i in keep], [labels[i] for i in keep], float(recordings[0].fps)


@CALLBACKS.register("va_postprocess")
class ValenceArousalPostProcessing(Callback):
    """Fits median filter, centring, scaling and time shift (``emoframe.eval.va_postprocessing``) on the whole
    development split each time the task's ``val/ccc`` improves (``task.val_improved``), into
    ``task.postprocessors``; at ``test``, logs the CCC after each step (``test/ccc_after_*``, ``test/ccc_post*``)
    and writes ``test_postprocess.csv``.

    Reads from the task: ``postprocess_options`` (None: off), ``class_names``, ``windows`` (the epoch's
    ``(recording, start, predictions)``), ``val_improved``, ``postprocessors``, ``report_dir``.
    """

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        task: Any = pl_module
        if trainer.sanity_checking or task.postprocess_options is None or not task.val_improved:
            return
        preds, labels, fps = gather_recordings(task.windows, trainer.datamodule, "val", len(task.class_names))
        if preds:  # none complete when validation is cut short (fast_dev_run, limit_val_batches)
            with one_thread():
                options = task.postprocess_options
                task.postprocessors = fit_postprocessors(preds, labels, task.class_names, fps, **options)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        task: Any = pl_module
        if not task.postprocessors:
            return
        preds, labels, _ = gather_recordings(task.windows, trainer.datamodule, "test", len(task.class_names))
        if not preds:
            return
        with one_thread():
            rows = postprocess_steps(task.postprocessors, preds, labels)
        for row in rows[1:]:
            task.log(f"test/ccc_after_{row['step'][1:]}", row["ccc"], sync_dist=False)
        final = rows[-1]
        task.log("test/ccc_post", final["ccc"], sync_dist=False)
        for name in task.class_names:
            task.log(f"test/ccc_post_{name}", final[f"ccc_{name}"], sync_dist=False)
        if task.report_dir is not None and trainer.is_global_zero:
            write_rows(rows, Path(task.report_dir) / "test_postprocess.csv")


@CALLBACKS.register("threshold_tuning")
class ThresholdTuning(Callback):
    """After each validation epoch, each label's best-F1 threshold on the validation frames (the task's
    ``results['val']['scores'].best_thresholds``) into the task's ``thresholds`` buffer, which the checkpoint
    of that epoch carries to ``test`` and ``predict``."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        task: Any = pl_module
        scores = (task.results.get("val") or {}).get("scores")
        if trainer.sanity_checking or scores is None:
            return
        task.thresholds.copy_(scores.best_thresholds.to(task.thresholds))


__all__ = ["ThresholdTuning", "ValenceArousalPostProcessing", "gather_recordings", "one_thread"]
