"""Multi-label emotion classifier over frames or sequences (Tzirakis et al.'s pre-training model).

Backbone per frame -> optional temporal model (``temporal: none`` scores each frame alone; ``lstm``
as the paper) -> one logit per label, sigmoid, ``weighted_bce``. Batches are ``emoframe.data.sequences``'
``(frames, targets, mask, recording, start)`` windows; a plain image batch ``(images, targets)`` with
(B, K) targets is read as windows of one frame.

Each validation epoch tunes one threshold per label (best F1 on the validation frames); they live in
the ``thresholds`` buffer, so the checkpoint of the best epoch carries that epoch's thresholds and
``test`` and ``predict`` use them. The module names (``backbone``, ``temporal``, ``head``) are
``va_regressor``'s, so ``model.init_from`` of a valence/arousal recipe takes this model's backbone and
LSTM (the paper's "proposed model").
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoframe.eval.va_reports import assemble
from emoframe.metrics.multilabel import MultilabelMetrics, MultilabelScores
from emoframe.registry import TASKS, RecipeError
from emoframe.tasks.base import OptimizerFactory, SchedulerFactory, Task
from emoframe.tasks.temporal import TemporalKind, TemporalModel, per_frame_outputs, temporal_width


@TASKS.register("multilabel_classifier")
class MultilabelClassifier(Task):
    """Frame backbone -> temporal model (``none``: frame model) -> one sigmoid output per label.

    ``threshold``: the decision threshold before any tuning (and for labels validation cannot tune).
    ``tune_thresholds``: pick each label's best-F1 threshold on validation each epoch.
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
        threshold: float = 0.5,
        tune_thresholds: bool = True,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler, channels_last=channels_last)
        if not 0.0 < threshold < 1.0:
            raise RecipeError(f"model.threshold: expected a probability in (0, 1), got {threshold!r}")
        self.backbone = backbone
        in_features = int(backbone.num_features)  # type: ignore[arg-type]
        self.temporal = TemporalModel(temporal, in_features, hidden_size, num_layers, bidirectional, dropout)
        self.head = head
        self.loss = loss
        self.class_names = list(class_names)
        self.default_threshold = threshold
        self.tune_thresholds = tune_thresholds
        self.register_buffer("thresholds", torch.full((len(self.class_names),), float(threshold)))
        self.metrics = nn.ModuleDict({s: MultilabelMetrics(len(self.class_names)) for s in ("val", "test")})

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
        """(B, T, C, H, W) frames, (B, T) mask -> (B, T, labels) logits."""
        return per_frame_outputs(self.backbone, self.temporal, self.head, frames, mask, self.to_memory_format)

    @staticmethod
    def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frames, targets, mask) of a window batch, or of an image batch read as one-frame windows."""
        if batch[0].dim() == 4:  # (images, targets): frames of their own
            images, targets = batch[0], batch[-1]
            mask = torch.ones((len(images), 1), dtype=torch.bool, device=images.device)
            return images[:, None], targets[:, None].float(), mask
        return batch[0], batch[1], batch[2]

    # -- steps -----------------------------------------------------------------------------------
    def _step(self, batch: Any, split: str) -> torch.Tensor | None:
        frames, targets, mask = self._unpack(batch)
        logits = self(frames, mask)
        if targets.shape[-1] != logits.shape[-1]:
            raise RecipeError(f"the data has {targets.shape[-1]} labels but the model {logits.shape[-1]}")
        scored = mask & torch.isfinite(targets).any(dim=-1)
        x, y = logits[scored], targets[scored]
        if split != "train" and len(y):
            self.metrics[split].update(torch.sigmoid(x.detach()), y)
        if not len(y):
            return None
        loss = self.loss(x, y)
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
        return {"probs": torch.sigmoid(self(frames, mask)), "recording": recording, "start": start}

    # -- epoch ends ------------------------------------------------------------------------------
    def _rare(self) -> list[int]:
        dm = getattr(self.trainer, "datamodule", None)
        names = getattr(dm, "rare_labels", None) if dm is not None and getattr(dm, "_resampling", None) else None
        return [self.class_names.index(n) for n in names or []]

    def _log_scores(self, split: str, scores: MultilabelScores) -> None:
        logged = {
            f"{split}/auroc": scores.mean(scores.auroc),
            f"{split}/ap": scores.mean(scores.ap),
            f"{split}/f1": scores.mean(scores.f1),
        }
        for i, name in enumerate(self.class_names):
            logged[f"{split}/auroc/{name}"] = scores.auroc[i]
            logged[f"{split}/ap/{name}"] = scores.ap[i]
            logged[f"{split}/f1/{name}"] = scores.f1[i]
        rare = self._rare()
        if rare:
            logged[f"{split}/auroc_rare"] = scores.mean(scores.auroc, rare)
        mean_auroc = logged.pop(f"{split}/auroc")
        self.log(f"{split}/auroc", mean_auroc.float(), prog_bar=True, sync_dist=False)  # synced by torchmetrics
        self.log_dict({k: v.float() for k, v in logged.items()}, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        metrics = self.metrics["val"]
        if self.trainer.sanity_checking:
            metrics.reset()
            return
        default = torch.full_like(self.thresholds, self.default_threshold)
        scores = metrics.compute(default)
        self._log_scores("val", scores)
        if self.tune_thresholds:
            self.thresholds.copy_(scores.best_thresholds.to(self.thresholds))
            self.log("val/f1_tuned", scores.mean(scores.best_f1).float(), sync_dist=False)
        metrics.reset()

    def on_test_epoch_end(self) -> None:
        metrics = self.metrics["test"]
        scores = metrics.compute(self.thresholds)
        self._log_scores("test", scores)
        at_default = metrics.compute(torch.full_like(self.thresholds, self.default_threshold))
        self.log("test/f1_default", at_default.mean(at_default.f1).float(), sync_dist=False)
        if self.report_dir is not None and self.trainer.is_global_zero:
            write_label_report(scores, at_default, self.class_names, Path(self.report_dir) / "test_labels.csv")
        metrics.reset()

    def on_fit_start(self) -> None:
        """The training split's per-label counts before and after re-sampling, beside the checkpoints."""
        dm = getattr(self.trainer, "datamodule", None)
        rows = getattr(dm, "count_rows", None)
        if rows and self.trainer.is_global_zero and self.trainer.default_root_dir:
            write_rows(rows, Path(self.trainer.default_root_dir) / "label_counts.csv")

    # -- predictions -----------------------------------------------------------------------------
    def write_predictions(self, outputs: list[dict[str, torch.Tensor]], datamodule: Any, path: Path) -> list[Path]:
        """One CSV row per frame of every predicted recording: probabilities and 0/1 at the saved thresholds."""
        recordings = datamodule.recordings("predict")
        windows = [
            (int(r), int(s), p.float().cpu().numpy())
            for batch in outputs
            for r, s, p in zip(batch["recording"], batch["start"], batch["probs"])
        ]
        probs = assemble(windows, [len(r) for r in recordings], len(self.class_names))
        thresholds = self.thresholds.cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["recording", "frame", "time", "face", *[f"p_{c}" for c in self.class_names], *self.class_names])
            for rec, p in zip(recordings, probs):
                for i in range(len(rec)):
                    decided = (p[i] >= thresholds).astype(int) if rec.valid[i] else [""] * len(thresholds)
                    values = [f"{v:.4f}" if np.isfinite(v) and rec.valid[i] else "" for v in p[i]]
                    w.writerow([rec.name, i, f"{i / rec.fps:.3f}", int(rec.valid[i]), *values, *decided])
        return [path]


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_label_report(scores: MultilabelScores, default: MultilabelScores, names: list[str], path: Path) -> None:
    """Per-label test scores: AUROC, AP, F1 at the tuned and the default threshold, and the counts."""
    rows = []
    for i, name in enumerate(names):
        rows.append(
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
        )
    write_rows(rows, path)
