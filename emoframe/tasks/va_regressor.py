"""Valence/arousal regression over frame sequences (Tzirakis et al.): CNN per frame -> LSTM -> 2 outputs, CCC loss.

Batches are ``emoframe.data.sequences``' ``(frames, targets, mask, recording, start)``. The backbone
runs on the unmasked frames of (B*T, C, H, W); the temporal model sees every step (masked ones as
zero features); the loss and the metrics use frames that are unmasked and labelled. Validation and
test CCC is the AVEC one over every frame of the epoch (``ConcordanceMetric``).

Post-processing (median filter, centring, scaling, time shift; ``emoframe.eval.va_postprocessing``) is
fitted on the whole development split each time ``val/ccc`` improves, i.e. on the predictions of
the weights that ``best.ckpt`` then stores, by the ``va_postprocess`` component
(``emoframe.callbacks.calibration``); it travels in the checkpoint under ``emoframe_postprocess``.
``test`` reports the CCC before and after each step; ``predict`` (``va_predictions``) applies it.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Unpack

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from emoframe.backbones.weights import load_pretrained
from emoframe.callbacks.calibration import ValenceArousalPostProcessing
from emoframe.eval.va_postprocessing import PostProcessor
from emoframe.metrics.regression import ConcordanceMetric
from emoframe.registry import TASKS, RecipeError
from emoframe.tasks.sequence import SequenceParts, WindowTask

POSTPROCESS_KEY = "emoframe_postprocess"


@TASKS.register("va_regressor")
class VARegressor(WindowTask):
    """Frame backbone -> temporal model (2-layer LSTM by default) -> head with one output per target, CCC loss.

    ``init: xavier`` gives the temporal model and a linear head Xavier weights (the paper's random
    start); the backbone starts from its own ``weights:`` file (ImageNet, or an emoframe checkpoint).
    ``init_from`` loads a whole emoframe checkpoint (backbone, LSTM and head, where shapes match).
    ``postprocess``: PostProcessor search options (``max_median_s``, ``median_points``, ``max_shift_s``),
    ``true`` for the defaults, ``false`` to skip it.
    """

    prediction_writer = "va_predictions"
    activation = "none"  # valence and arousal values

    def __init__(
        self,
        init: Literal["xavier", "default"] = "xavier",
        init_from: str | None = None,
        postprocess: bool | dict[str, Any] = True,
        **parts: Unpack[SequenceParts],
    ) -> None:
        if init not in ("xavier", "default"):
            raise RecipeError(f"model.init: expected 'xavier' or 'default' (PyTorch's), got {init!r}")
        super().__init__(**parts)
        if init == "xavier":
            self.temporal.xavier_()
            for m in self.head.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        if init_from:
            load_pretrained(self, init_from, partial=True)  # a trained task: its backbone, at least
        self.postprocess_options: dict[str, Any] | None = (
            None if postprocess is False else ({} if postprocess is True else dict(postprocess))
        )
        if self.postprocess_options is not None:
            PostProcessor(**self.postprocess_options)  # a typo fails now, not after the first epoch
        self.postprocessors: dict[str, PostProcessor] = {}
        self.best_val_ccc = -math.inf
        self.val_improved = False  # the last validation epoch's val/ccc beat every earlier one
        self.metrics = nn.ModuleDict(
            {f"{s}_ccc": ConcordanceMetric(self.class_names) for s in ("train", "val", "test")}
        )
        self.windows: list[tuple[int, int, np.ndarray]] = []  # this evaluation epoch's, for post-processing

    def configure_callbacks(self) -> list[Callback]:
        return [ValenceArousalPostProcessing()]

    # -- steps -----------------------------------------------------------------------------------
    def _step(self, batch: Any, split: str) -> torch.Tensor | None:
        frames, targets, mask = batch[:3]
        preds = self(frames, mask)
        p, y = self.scored(preds, targets, mask)
        if split != "train":
            recording, start = batch[3], batch[4]
            self.windows += [
                (int(r), int(s), w) for r, s, w in zip(recording, start, preds.detach().float().cpu().numpy())
            ]
        if len(y):
            self.metrics[f"{split}_ccc"].update(p.detach(), y)
        if len(y) == 0 or int((~torch.isnan(y)).sum(dim=0).min()) < 2:
            return None  # CCC needs two labelled frames per target; such a batch teaches nothing
        loss = self.loss(p, y)
        self.log_loss(split, loss, len(y))
        return loss

    # -- epoch ends ------------------------------------------------------------------------------
    def _log_ccc(self, split: str) -> float:
        scores = self.metrics[f"{split}_ccc"].compute()
        self.metrics[f"{split}_ccc"].reset()
        logged = {f"{split}/ccc_{name}": scores[name] for name in self.class_names}
        self.log_dict(logged, sync_dist=False)  # already synced by torchmetrics
        self.log(f"{split}/ccc", scores["mean"], prog_bar=True, sync_dist=False)
        return float(scores["mean"])

    def epoch_end(self, split: str) -> None:
        if split == "train" and not self.metrics["train_ccc"].preds:  # type: ignore[truthy-bool]
            return
        ccc = self._log_ccc(split)
        if split == "val":
            self.val_improved = ccc > self.best_val_ccc
            self.best_val_ccc = max(self.best_val_ccc, ccc)

    def reset_metrics(self, split: str) -> None:
        self.metrics[f"{split}_ccc"].reset()

    def on_validation_epoch_start(self) -> None:
        self.windows = []

    def on_test_epoch_start(self) -> None:
        self.windows = []

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


__all__ = ["POSTPROCESS_KEY", "VARegressor"]
