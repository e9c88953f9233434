"""Every swept key checked against the recipe before the first trial, as ``emoframe config`` checks a recipe.

A parameter naming a key the recipe does not have (``optimizer.lrr``), or a range whose end the recipe refuses
(``data.augment.0.p`` up to 1.5), would otherwise start trials that each fail with the same line. The recipe is
built (nothing trained, nothing written) with every parameter at the low end of its range, then at the high end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emoframe.errors import RecipeError, WeightsError
from emoframe.sweeps.command import recipe_of, trial_command
from emoframe.sweeps.schema import Sweep
from emoframe.sweeps.space import ends, override


def command_overrides(sweep: Sweep, overrides: list[str]) -> list[str]:
    """The ``key=value`` arguments a trial's ``emoframe fit`` gets: the command's own, then ``overrides``."""
    argv = trial_command(sweep, overrides)
    after = argv[argv.index("fit") + 1 :]
    recipe = str(recipe_of(sweep))
    rest = after[after.index(recipe) + 1 :] if recipe in after else after
    return [a for a in rest if "=" in a and not a.startswith("-")]


def end_overrides(sweep: Sweep) -> dict[str, list[str]]:
    """``{"low": [...], "high": [...]}``: every parameter as an override at that end of its range."""
    pairs = [(p.name, ends(p)) for p in sweep.parameters]
    return {end: [override(name, values[i]) for name, values in pairs] for i, end in enumerate(("low", "high"))}


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's "GPU available" lines belong to a run, not to a check of its recipe."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def check_recipe(sweep: Sweep) -> None:
    """Build the recipe with the parameters at each end of their ranges; the first refusal is one line."""
    from emoframe import builder
    from emoframe.config import load_recipe

    recipe = recipe_of(sweep)
    seen: set[tuple[str, ...]] = set()
    for end, overrides in end_overrides(sweep).items():
        args = command_overrides(sweep, overrides)
        if tuple(args) in seen:
            continue
        seen.add(tuple(args))
        try:
            cfg: dict[str, Any] = load_recipe(Path(recipe), args)
            with quiet_lightning():
                builder.check(cfg)
        except (RecipeError, WeightsError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RecipeError(f"{sweep.path}: parameters at the {end} end of their ranges: {first}") from None
