"""Multi-label emotion classifier over frames or sequences (Tzirakis et al.'s pre-training model).

Backbone per frame -> optional temporal model (``temporal: none`` scores each frame alone; ``lstm``
as the paper) -> one logit per label, sigmoid, ``weighted_bce``. Batches are ``emoframe.data.sequences``'
``(frames, targets, mask, recording, start)`` windows; a plain image batch ``(images, targets)`` with
(B, K) targets is read as windows of one frame.

Each validation epoch the ``threshold_tuning`` component (``emoframe.callbacks.calibration``) picks one
threshold per label (best F1 on the validation frames); they live in the ``thresholds`` buffer, so the checkpoint of the best epoch carries that epoch's thresholds and
``test`` and ``predict`` use them. The module names (``backbone``, ``temporal``, ``head``) are
``va_regressor``'s, so ``model.init_from`` of a valence/arousal recipe takes this model's backbone and
LSTM (the paper's "proposed model").
"""

from __future__ import annotations

from typing import Any, Unpack

import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from emoframe.callbacks.calibration import ThresholdTuning
from emoframe.callbacks.reports import LabelCounts, LabelReport
from emoframe.metrics.multilabel import MultilabelMetrics, MultilabelScores
from emoframe.registry import TASKS, RecipeError
from emoframe.tasks.sequence import SequenceParts, WindowTask


@TASKS.register("multilabel_classifier")
class MultilabelClassifier(WindowTask):
    """Frame backbone -> temporal model (``none``: frame model) -> one sigmoid output per label.

    ``threshold``: the decision threshold before any tuning (and for labels validation cannot tune).
    ``tune_thresholds``: pick each label's best-F1 threshold on validation each epoch.
    """

    prediction_writer = "multilabel_predictions"
    activation = "sigmoid"
    predict_key = "probs"

    def __init__(
        self,
        threshold: float = 0.5,
        tune_thresholds: bool = True,
        **parts: Unpack[SequenceParts],
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise RecipeError(f"model.threshold: expected a probability in (0, 1), got {threshold!r}")
        super().__init__(**parts)
        self.default_threshold = threshold
        self.tune_thresholds = tune_thresholds
        self.register_buffer("thresholds", torch.full((len(self.class_names),), float(threshold)))
        self.metrics = nn.ModuleDict({s: MultilabelMetrics(len(self.class_names)) for s in ("val", "test")})
        self.results: dict[str, dict[str, MultilabelScores]] = {}  # the last epoch's scores, for the components

    def configure_callbacks(self) -> list[Callback]:
        return [LabelCounts(), LabelReport(), *([ThresholdTuning()] if self.tune_thresholds else [])]

    def predict_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs)

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
        x, y = self.scored(logits, targets, mask)
        if split != "train" and len(y):
            self.metrics[split].update(torch.sigmoid(x.detach()), y)
        if not len(y):
            return None
        loss = self.loss(x, y)
        self.log_loss(split, loss, len(y))
        return loss

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

    def epoch_end(self, split: str) -> None:
        if split == "train":
            return
        metrics = self.metrics[split]
        default = torch.full_like(self.thresholds, self.default_threshold)
        if split == "val":  # scored at the default threshold; ThresholdTuning takes the best ones from here
            scores = metrics.compute(default)
            self._log_scores("val", scores)
            if self.tune_thresholds:
                self.log("val/f1_tuned", scores.mean(scores.best_f1).float(), sync_dist=False)
            self.results["val"] = {"scores": scores}
        else:
            scores = metrics.compute(self.thresholds)
            self._log_scores(split, scores)
            at_default = metrics.compute(default)
            self.log(f"{split}/f1_default", at_default.mean(at_default.f1).float(), sync_dist=False)
            self.results[split] = {"scores": scores, "at_default": at_default}
        metrics.reset()

    def reset_metrics(self, split: str) -> None:
        self.metrics[split].reset()
