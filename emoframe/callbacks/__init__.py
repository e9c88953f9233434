"""Callbacks and loggers named in recipes: Lightning's own under short names, and emoframe's output components.

- ``emoframe.callbacks.writers``: prediction writers (``BasePredictionWriter``), one per output kind;
- ``emoframe.callbacks.reports``: the report files ``emoframe test`` (and ``fit``) write;
- ``emoframe.callbacks.calibration``: fitted post-processing (valence/arousal) and threshold tuning (multi-label).

These sit below the tasks (they read a task's attributes, never import one); ``freeze_unfreeze``, which builds
optimizers for a task, lives above them in ``emoframe.finetune``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from pytorch_lightning.callbacks import (
    EarlyStopping,
    EMAWeightAveraging,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
    TQDMProgressBar,
)
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from emoframe.callbacks import calibration, reports, writers  # noqa: F401  (registers the output components)
from emoframe.callbacks.resume import ContinuedCSVLogger, wandb_run_id
from emoframe.registry import CALLBACKS, LOGGERS, Probability

CALLBACKS.register("model_checkpoint")(ModelCheckpoint)
CALLBACKS.register("early_stopping")(EarlyStopping)
CALLBACKS.register("lr_monitor")(LearningRateMonitor)
CALLBACKS.register("progress_bar")(TQDMProgressBar)
CALLBACKS.register("rich_progress_bar")(RichProgressBar)


def warmed_up_ema(decay: float) -> Any:
    """The EMA update with timm's (and TensorFlow's) warm-up: after ``n`` updates the decay is
    ``min(decay, (1 + n) / (10 + n))``, so the average forgets the initial weights within the first few hundred
    steps instead of the first few thousand, and the first epochs validate what the network has learned."""

    @torch.no_grad()
    def update(average: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = torch.clamp((1 + num_averaged) / (10 + num_averaged), max=decay).to(current.device)
        return d * average + (1 - d) * current

    return update


@CALLBACKS.register("ema")
class EMA(EMAWeightAveraging):
    """An exponential moving average of the weights (BatchNorm statistics included), Lightning's own: validation,
    the checkpoints' weights and the final model are the average, which is why it helps short CPU schedules
    (a smoother optimum for free). ``decay`` 0.999 averages over about the last 1000 steps. ``warmup`` (default)
    lowers the decay for the first updates (``warmed_up_ema``); without it the average of the first epochs is
    mostly the initial weights and validates near chance (decay 0.999 keeps 64% of them after 450 steps, one
    FER2013 epoch at batch 64)."""

    def __init__(
        self,
        decay: Probability = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_epoch: int | None = None,
        warmup: bool = True,
    ) -> None:
        super().__init__(
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_epoch=update_starting_at_epoch,
        )
        if warmup:
            self._kwargs["avg_fn"] = warmed_up_ema(decay)  # what setup() hands torch's AveragedModel

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Outside fit (``emoframe test``/``validate``/``predict``) the checkpoint's ``state_dict``, the average, is
        all there is to load: no average model to restore, and no warning saying so."""
        if self._average_model is not None:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def wandb_offline_by_default() -> bool:
    """Offline unless the user has an API key or asked for online mode (tests never touch the network)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("online", "run"):
        return False
    if mode in ("offline", "dryrun", "disabled"):
        return True
    return not os.environ.get("WANDB_API_KEY")


@LOGGERS.register("wandb")
def wandb_logger(
    save_dir: str,
    project: str = "emoframe",
    name: str | None = None,
    offline: bool | None = None,
    tags: list[str] | None = None,
    log_model: bool = False,
    entity: str | None = None,
    resume_epoch: int | None = None,
) -> WandbLogger:
    """Weights & Biases run; offline (synced later with `wandb sync`) unless a key or WANDB_MODE=online.

    The run's id is kept in the run directory (``wandb_run_id``); a resumed fit (``resume_epoch`` set by the
    builder) continues that W&B run (``resume="allow"``) instead of opening another."""
    offline = wandb_offline_by_default() if offline is None else offline
    name = os.environ.get("WANDB_NAME") or name  # W&B's own variable (a sweep names each trial's run with it)
    if rank_zero_only.rank == 0:  # the other ranks never open a run (Lightning gives them a dummy), nor its folder
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    run_id, resume = wandb_run_id(save_dir, resume_epoch is not None)
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        offline=offline,
        tags=tags,
        log_model=log_model,
        entity=entity,
        id=run_id,
        resume=resume,
    )


@LOGGERS.register("csv")
def csv_logger(save_dir: str, flush_logs_every_n_steps: int = 100, resume_epoch: int | None = None) -> CSVLogger:
    """<run>/csv/version_<n>/metrics.csv: every logged value; a resumed fit continues the same file."""
    return ContinuedCSVLogger(
        save_dir=save_dir, name="csv", flush_logs_every_n_steps=flush_logs_every_n_steps, resume_epoch=resume_epoch
    )
