"""Valence/arousal regression over frame sequences (Tzirakis et al.): CNN per frame -> LSTM -> 2 outputs, CCC loss.

Batches are ``emoframe.data.sequences``' ``(frames, targets, mask, recording, start)``. The backbone
runs on the unmasked frames of (B*T, C, H, W); the temporal model sees every step (masked ones as
zero features); the loss and the metrics use frames that are unmasked and labelled. Validation and
test CCC is the AVEC one over every frame of the epoch (``ConcordanceMetric``).

Post-processing (median filter, centring, scaling, time shift; ``emoframe.eval.postprocess``) is
fitted on the whole development split each time ``val/ccc`` improves, i.e. on the predictions of
the weights that ``best.ckpt`` then stores, and travels in the checkpoint under ``emoframe_postprocess``.
``test`` reports the CCC before and after each step; ``predict`` applies it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from emoframe.backbones.weights import load_pretrained
from emoframe.eval.postprocess import PostProcessor, apply_postprocessors, fit_postprocessors
from emoframe.eval.va_reports import assemble, at_rate, postprocess_steps, write_rows, write_va_predictions
from emoframe.metrics.regression import ConcordanceMetric
from emoframe.registry import TASKS, RecipeError
from emoframe.tasks.base import OptimizerFactory, SchedulerFactory, Task
from emoframe.tasks.temporal import KINDS, TemporalKind, TemporalModel, per_frame_outputs, temporal_width

POSTPROCESS_KEY = "emoframe_postprocess"


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


@TASKS.register("va_regressor")
class VARegressor(Task):
    """Frame backbone -> temporal model (2-layer LSTM by default) -> head with one output per target, CCC loss.

    ``init: xavier`` gives the temporal model and a linear head Xavier weights (the paper's random
    start); the backbone starts from its own ``weights:`` file (ImageNet, or an emoframe checkpoint).
    ``init_from`` loads a whole emoframe checkpoint (backbone, LSTM and head, where shapes match).
    ``postprocess``: PostProcessor search options (``max_median_s``, ``median_points``, ``max_shift_s``),
    ``true`` for the defaults, ``false`` to skip it.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        loss: nn.Module,
        class_names: list[str],
        temporal: TemporalKind = "lstm",
        hidden_size: int = 256,
        num_layers: int = 2,
        bidirectional: bool = False,
        dropout: float = 0.0,
        init: Literal["xavier", "default"] = "xavier",
        init_from: str | None = None,
        postprocess: bool | dict[str, Any] = True,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler, channels_last=channels_last)
        if init not in ("xavier", "default"):
            raise RecipeError(f"model.init: expected 'xavier' or 'default' (PyTorch's), got {init!r}")
        self.backbone = backbone
        in_features = int(backbone.num_features)  # type: ignore[arg-type]
        self.temporal = TemporalModel(temporal, in_features, hidden_size, num_layers, bidirectional, dropout)
        self.head = head
        self.loss = loss
        self.class_names = list(class_names)
        if init == "xavier":
            self.temporal.xavier_()
            for m in self.head.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        if init_from:
            load_pretrained(self, init_from)
        self.postprocess_options: dict[str, Any] | None = (
            None if postprocess is False else ({} if postprocess is True else dict(postprocess))
        )
        if self.postprocess_options is not None:
            PostProcessor(**self.postprocess_options)  # a typo fails now, not after the first epoch
        self.postprocessors: dict[str, PostProcessor] = {}
        self.best_val_ccc = -math.inf
        self.metrics = nn.ModuleDict(
            {f"{s}_ccc": ConcordanceMetric(self.class_names) for s in ("train", "val", "test")}
        )
        self._windows: list[tuple[int, int, np.ndarray]] = []

    @classmethod
    def head_in_features(
        cls,
        backbone_features: int,
        temporal: str = "lstm",
        hidden_size: int = 256,
        bidirectional: bool = False,
        **task_args: Any,
    ) -> int:
        return temporal_width(temporal, backbone_features, hidden_size, bidirectional)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C, H, W) frames, (B, T) mask -> (B, T, targets)."""
        return per_frame_outputs(self.backbone, self.temporal, self.head, frames, mask, self.to_memory_format)

    # -- steps -----------------------------------------------------------------------------------
    def _step(self, batch: Any, split: str) -> torch.Tensor | None:
        frames, targets, mask = batch[:3]
        preds = self(frames, mask)
        scored = mask & torch.isfinite(targets).any(dim=-1)
        p, y = preds[scored], targets[scored]
        if split != "train":
            recording, start = batch[3], batch[4]
            self._windows += [
                (int(r), int(s), w) for r, s, w in zip(recording, start, preds.detach().float().cpu().numpy())
            ]
        if len(y):
            self.metrics[f"{split}_ccc"].update(p.detach(), y)
        if len(y) == 0 or int((~torch.isnan(y)).sum(dim=0).min()) < 2:
            return None  # CCC needs two labelled frames per target; such a batch teaches nothing
        loss = self.loss(p, y)
        self.log(
            f"{split}/loss",
            loss,
            on_step=split == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=split != "train",
        )
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        frames, _, mask, recording, start = batch[:5]
        return {"preds": self(frames, mask), "recording": recording, "start": start}

    # -- epoch ends ------------------------------------------------------------------------------
    def _log_ccc(self, split: str) -> float:
        scores = self.metrics[f"{split}_ccc"].compute()
        self.metrics[f"{split}_ccc"].reset()
        logged = {f"{split}/ccc_{name}": scores[name] for name in self.class_names}
        self.log_dict(logged, sync_dist=False)  # already synced by torchmetrics
        self.log(f"{split}/ccc", scores["mean"], prog_bar=True, sync_dist=False)
        return float(scores["mean"])

    def on_train_epoch_end(self) -> None:
        if self.metrics["train_ccc"].preds:  # type: ignore[truthy-bool]
            self._log_ccc("train")

    def on_validation_epoch_start(self) -> None:
        self._windows = []

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.metrics["val_ccc"].reset()
            self._windows = []
            return
        ccc = self._log_ccc("val")
        if self.postprocess_options is not None and ccc > self.best_val_ccc:
            preds, labels, fps = self._gathered("val")  # every rank gathers all windows: same processors
            if preds:  # none complete when validation is cut short (fast_dev_run, limit_val_batches)
                with one_thread():
                    options = self.postprocess_options
                    self.postprocessors = fit_postprocessors(preds, labels, self.class_names, fps, **options)
        self.best_val_ccc = max(self.best_val_ccc, ccc)
        self._windows = []

    def on_test_epoch_start(self) -> None:
        self._windows = []

    def on_test_epoch_end(self) -> None:
        self._log_ccc("test")
        if not self.postprocessors:
            self._windows = []
            return
        preds, labels, _ = self._gathered("test")
        if not preds:
            self._windows = []
            return
        with one_thread():
            rows = postprocess_steps(self.postprocessors, preds, labels)
        for row in rows[1:]:
            self.log(f"test/ccc_after_{row['step'][1:]}", row["ccc"], sync_dist=False)
        final = rows[-1]
        self.log("test/ccc_post", final["ccc"], sync_dist=False)
        for name in self.class_names:
            self.log(f"test/ccc_post_{name}", final[f"ccc_{name}"], sync_dist=False)
        if self.report_dir is not None and self.trainer.is_global_zero:
            write_rows(rows, Path(self.report_dir) / "test_postprocess.csv")
        self._windows = []

    def _gathered(self, split: str) -> tuple[list[np.ndarray], list[np.ndarray], float]:
        """Whole-recording predictions and labels of a split (windows from every DDP rank), and the fps.

        Recordings some window of which was not evaluated (a shortened epoch) are left out.
        """
        windows = self._windows
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, windows)
            windows = [w for part in parts for w in part]
        recordings = self.trainer.datamodule.recordings(split)  # type: ignore[attr-defined]
        preds = assemble(windows, [len(r) for r in recordings], len(self.class_names))
        labels = [np.where(r.valid[:, None], r.labels, np.nan) for r in recordings]
        keep = [i for i, p in enumerate(preds) if np.isfinite(p).all()]
        return [preds[i] for i in keep], [labels[i] for i in keep], float(recordings[0].fps)

    # -- predictions -----------------------------------------------------------------------------
    def write_predictions(self, outputs: list[dict[str, torch.Tensor]], datamodule: Any, path: Path) -> list[Path]:
        """Per-frame CSV of every predicted recording (post-processed when the checkpoint has it) and PNG plots."""
        recordings = datamodule.recordings("predict")
        windows = [
            (int(r), int(s), p.float().cpu().numpy())
            for batch in outputs
            for r, s, p in zip(batch["recording"], batch["start"], batch["preds"])
        ]
        raw = assemble(windows, [len(r) for r in recordings], len(self.class_names))
        processed = [
            apply_postprocessors({n: at_rate(p, rec.fps) for n, p in self.postprocessors.items()}, [pred])[0]
            if self.postprocessors
            else pred
            for rec, pred in zip(recordings, raw)
        ]
        return write_va_predictions(recordings, raw, processed, path, self.class_names)

    # -- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[POSTPROCESS_KEY] = {
            "targets": {name: p.to_dict() for name, p in self.postprocessors.items()},
            "best_val_ccc": self.best_val_ccc,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        stored = checkpoint.get(POSTPROCESS_KEY) or {}
        self.postprocessors = {n: PostProcessor.from_dict(d) for n, d in (stored.get("targets") or {}).items()}
        self.best_val_ccc = float(stored.get("best_val_ccc", -math.inf))


__all__ = ["KINDS", "POSTPROCESS_KEY", "VARegressor"]
