"""Optimizers and learning-rate schedules named in recipes.

Optimizers are factories ``f(params, **recipe_args)``; schedules are factories
``f(optimizer, total_steps, steps_per_epoch, **recipe_args)`` returning Lightning's scheduler dict,
so the task can build both once the trainer knows how many steps it will take.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import annotated_types
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau, StepLR

from emoframe.registry import OPTIMIZERS, SCHEDULERS, NonNegative, Positive, PositiveInt, Probability, RecipeError

Fraction = Annotated[float, annotated_types.Interval(gt=0, lt=1)]
"""A factor strictly between 0 and 1 (reduce-on-plateau's)."""

Params = Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]]


@OPTIMIZERS.register("sgd")
def sgd(
    params: Params,
    lr: NonNegative,
    momentum: NonNegative = 0.9,
    nesterov: bool = False,
    weight_decay: NonNegative = 0.0,
) -> Optimizer:
    """SGD with (Nesterov) momentum, as Ng et al. and Knyazev et al. fine-tune."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


def _betas(betas: list[float]) -> tuple[float, float]:
    """A recipe's ``[b1, b2]`` list as the tuple torch takes."""
    b1, b2 = betas
    return float(b1), float(b2)


@OPTIMIZERS.register("adam")
def adam(
    params: Params,
    lr: NonNegative = 1e-3,
    betas: list[float] = (0.9, 0.999),  # type: ignore[assignment]
    weight_decay: NonNegative = 0.0,
) -> Optimizer:
    """Adam (Kumari's frozen-backbone stage, Tzirakis' CCC fine-tuning)."""
    return torch.optim.Adam(params, lr=lr, betas=_betas(betas), weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(
    params: Params,
    lr: NonNegative = 1e-3,
    betas: list[float] = (0.9, 0.999),  # type: ignore[assignment]
    weight_decay: NonNegative = 0.01,
) -> Optimizer:
    """AdamW: Adam with decoupled weight decay."""
    return torch.optim.AdamW(params, lr=lr, betas=_betas(betas), weight_decay=weight_decay)


@SCHEDULERS.register("poly")
def poly(optimizer: Optimizer, total_steps: int, steps_per_epoch: int, power: NonNegative = 0.9) -> dict[str, Any]:
    """Polynomial decay to zero over the whole run, per step (Knyazev et al.)."""

    def factor(step: int) -> float:
        return max(0.0, 1.0 - step / max(1, total_steps)) ** power

    return {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}


@SCHEDULERS.register("step")
def step(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    step_epochs: PositiveInt = 10,
    gamma: Positive = 0.1,
) -> dict[str, Any]:
    """Multiply the learning rate by ``gamma`` every ``step_epochs`` epochs (Ng et al.: x0.1 every 10)."""
    return {"scheduler": StepLR(optimizer, step_size=step_epochs, gamma=gamma), "interval": "epoch"}


@SCHEDULERS.register("plateau")
def plateau(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    monitor: str = "val/loss",
    mode: Literal["min", "max"] = "min",
    factor: Fraction = 0.1,
    patience: Annotated[int, annotated_types.Ge(0)] = 3,
    min_lr: NonNegative = 0.0,
) -> dict[str, Any]:
    """Reduce on plateau of a logged validation metric (Kumari)."""
    sched = ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr)
    return {"scheduler": sched, "interval": "epoch", "monitor": monitor}


@SCHEDULERS.register("cosine")
def cosine(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: NonNegative = 0.0,
    min_factor: Probability = 0.0,
) -> dict[str, Any]:
    """Linear warm-up for ``warmup_epochs`` then cosine decay to ``min_factor`` x lr, per step."""
    warmup = int(warmup_epochs * steps_per_epoch)

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        progress = min(1.0, (s - warmup) / max(1, total_steps - warmup))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}


def try_optimizer(optimizer: Any, scheduler: Any, where: str, scheduler_where: str) -> None:
    """Build ``optimizer`` (a factory of params) and ``scheduler`` (of an optimizer) on one stand-in parameter;
    their own checks fail as one ``RecipeError`` naming ``where``/``scheduler_where``."""
    if optimizer is None:
        return
    try:
        built = optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as err:
        raise RecipeError(f"{where}: {str(err).strip().splitlines()[0]}") from None
    if scheduler is None:
        return
    try:
        scheduler(built, total_steps=100, steps_per_epoch=10)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"{scheduler_where}: {str(err).strip().splitlines()[0]}") from None
