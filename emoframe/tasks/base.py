"""The shared LightningModule base: optimizer/schedule factories, recipe in checkpoints, channels_last."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypedDict, Unpack

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import Optimizer
from torchmetrics import MeanMetric

from emoframe.checkpoints import RECIPE_KEY
from emoframe.spec import SPEC_KEY, ModelSpec

OptimizerFactory = Callable[..., Optimizer]
SchedulerFactory = Callable[..., dict[str, Any]]


# Epoch metrics come from torchmetrics, which syncs its states across processes itself.
warnings.filterwarnings("ignore", message=r".*sync_dist=True.* when logging on epoch level", category=Warning)


class TaskParts(TypedDict, total=False):
    """The keyword arguments every task takes, declared once (``**parts: Unpack[TaskParts]``; the registry checks
    them as if spelled out): the modules and factories the builder injects, and the recipe's ``channels_last``."""

    backbone: nn.Module
    head: nn.Module
    loss: nn.Module
    class_names: list[str]
    optimizer: OptimizerFactory | None
    scheduler: SchedulerFactory | None
    channels_last: bool


class Task(pl.LightningModule):
    """Base task.  Subclasses define the forward pass, ``_step`` (loss and metric updates of one batch) and
    ``epoch_end``/``reset_metrics``; this handles the plumbing (steps, loss logging, sanity-check resets).

    ``optimizer`` and ``scheduler`` are factories made by the builder from the recipe: the optimizer
    needs the parameters and the schedule needs the number of steps, both known only at fit time.

    Outputs are components, not task code: ``prediction_writer`` names the registered prediction writer
    ``emoframe predict`` uses unless the recipe's ``predict.writer`` names another; ``configure_callbacks``
    returns the task's report writers and fitted post-processing (``emoframe.callbacks``).
    """

    prediction_writer: ClassVar[str] = "class_probabilities"
    kind: ClassVar[str] = ""
    """What one forward pass maps (``emoframe.spec.KINDS``): a ``frame``, a ``fusion`` of a frame and its features,
    a ``clip`` to one output, a ``window`` of frames to one output per frame. Predict and export read it."""
    activation: ClassVar[str] = "softmax"
    """What turns the forward's outputs into the reported values: ``softmax``, ``sigmoid`` or ``none`` (values)."""
    window_key: ClassVar[str | None] = None
    """The data key whose value is the number of frames per forward pass (``clip.frames``, ``windows.size``)."""

    def __init__(self, **parts: Unpack[TaskParts]) -> None:
        """Keeps the parts given: ``backbone``, then (a sequence task's) ``temporal``, ``head``, ``loss``."""
        super().__init__()
        self.optimizer_factory = parts.get("optimizer")
        self.scheduler_factory = parts.get("scheduler")
        self.channels_last = bool(parts.get("channels_last", False))
        for name in ("backbone", "temporal", "head", "loss"):
            if parts.get(name) is not None:
                setattr(self, name, parts[name])  # type: ignore[literal-required]
        self.class_names = list(parts.get("class_names") or [])
        self.recipe: dict[str, Any] | None = None  # set by the builder; saved in every checkpoint
        self.spec: ModelSpec | None = None  # set by the builder; saved in every checkpoint and exported file
        self.report_dir: Path | None = None  # where `test` writes reports; set by the builder
        # val/test loss as a weighted mean torchmetrics syncs (float sums): Lightning's own epoch mean divides an
        # integer sample count by the world size under DDP, so an odd count skewed val/loss (1.9018 for 1.8955)
        self.loss_means = nn.ModuleDict({split: MeanMetric() for split in ("val", "test")})

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """How inputs were made in training (``ModelSpec.preprocessing``); None before the builder set the spec."""
        return self.spec.preprocessing if self.spec is not None else None

    @classmethod
    def head_in_features(cls, backbone_features: int, **task_args: Any) -> int:
        """Width of the head's input for these recipe arguments (the builder sizes the head with it)."""
        return backbone_features

    # -- steps and epochs ------------------------------------------------------------------------
    def _step(self, batch: Any, split: str) -> torch.Tensor | None:
        """Loss of one batch (None: nothing to learn from) after updating the split's metrics."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def log_loss(self, split: str, loss: torch.Tensor, batch_size: int) -> None:
        """``<split>/loss``: per step and epoch in training (this process's), per epoch otherwise: the mean over every
        example of the split, whichever process saw it."""
        if split not in self.loss_means:
            self.log(f"{split}/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch_size)
            return
        mean = self.loss_means[split]
        mean.update(loss.detach(), weight=batch_size)
        self.log(f"{split}/loss", mean, on_step=False, on_epoch=True, prog_bar=True)

    def epoch_end(self, split: str) -> None:
        """Compute, log and reset the split's epoch metrics."""

    def reset_metrics(self, split: str) -> None:
        """Forget the split's epoch metrics (after the sanity check, whose numbers mean nothing)."""

    def on_train_epoch_end(self) -> None:
        self.epoch_end("train")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.reset_metrics("val")
        else:
            self.epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self.epoch_end("test")

    # -- data layout -----------------------------------------------------------------------------
    def to_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """channels_last speeds CPU convolution up about threefold; inputs must match the weights."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if stage == "fit":
            self._hand_class_counts_to_loss()

    def _hand_class_counts_to_loss(self) -> None:
        """Losses that weight classes by frequency get the train split's counts from the datamodule."""
        loss = getattr(self, "loss", None)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if loss is None or not hasattr(loss, "set_class_counts") or not hasattr(dm, "train_label_counts"):
            return
        total = getattr(dm, "train_label_total", None)  # multi-label: labelled frames, for positive-class weights
        if total is not None and "total" in inspect.signature(loss.set_class_counts).parameters:
            loss.set_class_counts(dm.train_label_counts, total=total)
        else:
            loss.set_class_counts(dm.train_label_counts)

    # -- optimisation ----------------------------------------------------------------------------
    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.parameters() if p.requires_grad)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise RuntimeError("No optimizer: the recipe needs an 'optimizer:' section to fit")
        optimizer = self.optimizer_factory(self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        scheduler = self.scheduler_factory(optimizer, total_steps=total, steps_per_epoch=max(1, total // epochs))
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    # -- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The resolved recipe travels with the weights, so `emoframe test --ckpt X` needs nothing else."""
        if self.recipe is not None:
            checkpoint[RECIPE_KEY] = self.recipe
        if self.spec is not None:
            checkpoint[SPEC_KEY] = {**self.spec.to_dict(), **self._feature_statistics()}

    def _feature_statistics(self) -> dict[str, list[float]]:
        """The datamodule's hand-crafted feature statistics (``feature_mean``, ``feature_std``: every split is
        standardised with the train split's), so a predictor can standardise new faces' features the same way."""
        trainer = getattr(self, "_trainer", None)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        mean, std = getattr(datamodule, "feature_mean", None), getattr(datamodule, "feature_std", None)
        if mean is None or std is None:
            return {}
        return {"feature_mean": [float(v) for v in mean], "feature_std": [float(v) for v in std]}
