"""Freeze-then-unfreeze fine-tuning (Kumari): a frozen pretrained submodule first, then everything, new optimizer.

Phase 1 trains with the named submodule frozen (``requires_grad`` off, eval mode so its BatchNorm
statistics and dropout stay as pretrained) using the task's own ``optimizer:``/``scheduler:``.  At the
start of epoch ``epochs`` the submodule is unfrozen and a second optimizer and schedule, built from the
callback's own recipe entries, replace the first over all parameters.

Why not Lightning's ``BaseFinetuning``: its ``freeze(train_bn=False)`` only switches off
``track_running_stats``, so in training mode BatchNorm still normalises with batch statistics instead of
the pretrained running ones; and it unfreezes by adding a parameter group to the *same* optimizer,
whereas Kumari switches from Adam to SGD.  So this callback freezes by hand and swaps the optimizer
through Lightning's own ``strategy.setup_optimizers`` (the path ``configure_optimizers`` takes at fit
start), which also parses and validates the scheduler dict (e.g. reduce-on-plateau's ``monitor``).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.strategies import DDPStrategy
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from emoframe.optim import try_optimizer
from emoframe.registry import CALLBACKS, OPTIMIZERS, SCHEDULERS, RecipeError
from emoframe.tasks.base import OptimizerFactory, SchedulerFactory, Task

SCHEDULER_PROVIDED = ("optimizer", "total_steps", "steps_per_epoch")  # as the builder's top-level scheduler


@CALLBACKS.register("freeze_unfreeze")
class FreezeUnfreeze(Callback):
    """Train with a submodule frozen for `epochs` epochs, then all of it with a second optimizer (Kumari)."""

    def __init__(
        self,
        optimizer: dict[str, Any],
        module: str = "backbone",
        epochs: int = 5,
        scheduler: dict[str, Any] | None = None,
        recipe_key: str = "callbacks.freeze_unfreeze",
    ) -> None:
        """``optimizer``/``scheduler``: phase-2 recipe mappings, checked now so a typo fails before any data is read.

        ``recipe_key`` is this entry's key path, set by the builder, so errors name the key the user wrote.
        """
        super().__init__()
        where = recipe_key
        if epochs < 0:
            raise RecipeError(f"{where}.epochs must be >= 0 (0: no frozen phase), got {epochs}")
        if not module:
            raise RecipeError(f"{where}.module: name a submodule of the task, e.g. 'backbone'")
        self.module = module
        self.epochs = epochs
        self.where = where
        self.optimizer_factory: OptimizerFactory = OPTIMIZERS.partial(
            optimizer, f"{where}.optimizer", provided=("params",)
        )
        self.scheduler_factory: SchedulerFactory | None = (
            SCHEDULERS.partial(scheduler, f"{where}.scheduler", provided=SCHEDULER_PROVIDED) if scheduler else None
        )
        # built now on a stand-in parameter: a bad phase-2 optimizer fails at build time (and in `emoframe config`),
        # not after the frozen epochs have trained
        try_optimizer(self.optimizer_factory, self.scheduler_factory, f"{where}.optimizer", f"{where}.scheduler")
        self.phase = 1
        self._task: Task | None = None
        self._target: nn.Module | None = None
        self._frozen: list[nn.Parameter] = []

    # -- set-up: before configure_optimizers ------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Freeze before ``configure_optimizers``, so phase 1's optimizer only gets the trainable rest."""
        if stage != "fit":
            return
        self.phase = 1  # a resumed run's phase comes from load_state_dict, which Lightning calls next
        if not isinstance(pl_module, Task):
            raise RecipeError(f"{self.where}: needs an emoframe Task, got {type(pl_module).__name__}")
        if trainer.strategy.restore_checkpoint_after_setup:
            raise RecipeError(f"{self.where}: not supported with {type(trainer.strategy).__name__}")
        if sum(isinstance(c, FreezeUnfreeze) for c in trainer.callbacks) > 1:
            raise RecipeError(f"{self.where}: only one freeze_unfreeze callback per run (they share the optimizer)")
        # First in line, so that at the switch epoch lr_monitor (earlier in the base recipe) sees phase 2's
        # optimizer.  Moving the current element to the front keeps Lightning's loop over this list intact.
        trainer.callbacks.remove(self)
        trainer.callbacks.insert(0, self)
        self._task = pl_module
        self._target = resolve_submodule(pl_module, self.module, f"{self.where}.module")
        self._frozen = [p for p in self._target.parameters() if p.requires_grad]
        if not self._frozen:
            raise RecipeError(f"{self.where}.module: '{self.module}' has no trainable parameters to freeze")
        if self.epochs == 0:
            self._use_phase2_factories()
            return
        for p in self._frozen:
            p.requires_grad_(False)
        if not any(p.requires_grad for p in pl_module.parameters()):
            raise RecipeError(f"{self.where}.module: freezing '{self.module}' leaves nothing to train in phase 1")

    def _use_phase2_factories(self) -> None:
        """The task's ``configure_optimizers`` builds phase 2 from now on (at the switch and on resume)."""
        assert self._task is not None
        self._task.optimizer_factory = self.optimizer_factory
        self._task.scheduler_factory = self._phase2_schedule if self.scheduler_factory else None
        self.phase = 2

    def _phase2_schedule(self, optimizer: Any, total_steps: int, steps_per_epoch: int) -> dict[str, Any]:
        """Phase 2's schedule spans the steps left after the frozen epochs (a cosine ends at the run's end)."""
        assert self.scheduler_factory is not None
        remaining = max(1, total_steps - self.epochs * steps_per_epoch)
        return self.scheduler_factory(optimizer, total_steps=remaining, steps_per_epoch=steps_per_epoch)

    def _unfreeze(self) -> None:
        assert self._target is not None
        for p in self._frozen:
            p.requires_grad_(True)
        self._target.train()

    # -- checkpoints: the phase decides which optimizer the saved state belongs to -----------------
    def state_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "module": self.module, "epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resuming after the switch: unfreeze now, before ``configure_optimizers`` builds the optimizer.

        Lightning restores callback state after ``setup`` and before ``strategy.setup`` calls
        ``configure_optimizers`` and loads the optimizer state, so the saved SGD state meets an SGD optimizer.
        """
        if state_dict.get("phase") == 2 and self.phase == 1 and self._task is not None:
            self._unfreeze()
            self._use_phase2_factories()

    # -- training ----------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One line on where training starts (after any resume), so a log shows which phase ran."""
        if self.phase == 2:
            self._check_and_report(trainer, "no frozen phase (epochs: 0)" if self.epochs == 0 else "resumed in phase 2")
        elif trainer.is_global_zero:
            max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
            never = f"; max_epochs is {max_epochs}, so it stays frozen" if 0 <= max_epochs <= self.epochs else ""
            print(
                f"freeze_unfreeze: {self.module} frozen ({_numel(self._frozen):,} parameters, eval mode)"
                f" until epoch {self.epochs}{never}",
                file=sys.stderr,
            )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.phase == 1 and trainer.current_epoch >= self.epochs:
            self._switch(trainer)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Frozen means eval mode; Lightning (re)sets train mode at fit start and after each validation."""
        if self.phase == 1 and self._target is not None and self._target.training:
            self._target.eval()

    def _switch(self, trainer: pl.Trainer) -> None:
        """Unfreeze and install phase 2's optimizer and schedule the way Lightning does at fit start."""
        self._unfreeze()
        self._use_phase2_factories()
        strategy = trainer.strategy
        if isinstance(strategy, DDPStrategy) and isinstance(strategy.model, DistributedDataParallel):
            # DDP all-reduces gradients only of parameters that required grad when it wrapped the model
            # (Lightning issue #20340): without a new wrapper the unfrozen ones would drift apart per process.
            strategy.model = strategy.lightning_module
            strategy.configure_ddp()
        strategy.setup_optimizers(trainer)  # configure_optimizers -> phase 2; also wraps as LightningOptimizer
        self._check_and_report(trainer, f"epoch {trainer.current_epoch}: unfroze {self.module}")

    def _check_and_report(self, trainer: pl.Trainer, what: str) -> None:
        optimizer = trainer.strategy.optimizers[0]
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not all(id(p) in optimized for p in self._frozen):
            raise RuntimeError(
                f"{self.where}: {type(self._task).__name__}.configure_optimizers does not use the task's "
                "optimizer factory, so phase 2 would not train the unfrozen parameters"
            )
        if trainer.is_global_zero:
            schedules = ", ".join(type(c.scheduler).__name__ for c in trainer.strategy.lr_scheduler_configs)
            print(
                f"freeze_unfreeze: {what}; optimizer {type(optimizer).__name__} "
                f"lr={optimizer.param_groups[0]['lr']:g} over "
                f"{_numel(p for g in optimizer.param_groups for p in g['params']):,} parameters; "
                f"schedule {schedules or 'none'}",
                file=sys.stderr,
            )


def resolve_submodule(root: nn.Module, path: str, where: str) -> nn.Module:
    """``backbone`` or ``backbone.features``; an unknown name lists the children where the path broke off."""
    module, walked = root, type(root).__name__
    for name in path.split("."):
        children = dict(module.named_children())
        if name not in children:
            close = difflib.get_close_matches(name, children, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RecipeError(
                f"Unknown module '{path}' at {where}: {walked} has no '{name}'.{hint}"
                f" Its modules: {', '.join(children) or '(none)'}"
            )
        module, walked = children[name], f"{walked}.{name}"
    return module


def _numel(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)
