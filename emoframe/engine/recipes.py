"""Which recipe a verb runs: a recipe file with ``key=value`` overrides, or the recipe stored in a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoframe.checkpoints import find_checkpoint, read_checkpoint
from emoframe.config import RECIPE_SUFFIXES, checkpoint_recipe, load_recipe
from emoframe.errors import RecipeError
from emoframe.models import stored_recipe

NAMED_CHECKPOINTS = ("best", "last")


def is_recipe_file(arg: str) -> bool:
    """A ``*.yaml`` argument that is not an override (``a.b=x.yaml``) nor a folder."""
    return arg.endswith(RECIPE_SUFFIXES) and "=" not in arg and not Path(arg).is_dir()


def split_args(args: list[str]) -> tuple[str | None, list[str]]:
    """The first recipe file of ``args``, and the rest (``key=value`` overrides)."""
    recipe = next((a for a in args if is_recipe_file(a)), None)
    rest = list(args)
    if recipe is not None:
        rest.remove(recipe)
    return recipe, rest


def resolve_checkpoint(ckpt: str | Path | None, recipe: dict[str, Any] | None = None) -> Path | None:
    """``best``/``last`` of the newest run of ``recipe``, or a path that must exist; None for no checkpoint."""
    if ckpt is None:
        return None
    if str(ckpt) in NAMED_CHECKPOINTS and recipe is None:
        raise RecipeError(f"--ckpt {ckpt} needs the recipe it was trained with; or give --ckpt PATH")
    return find_checkpoint(recipe or {}, str(ckpt))


def recipe_for(
    recipe: str | Path | dict[str, Any] | None, overrides: list[str] | None = None, ckpt: str | Path | None = None
) -> dict[str, Any]:
    """The recipe file's recipe (or a loaded one), else the one stored in ``ckpt``, with the overrides applied."""
    overrides = list(overrides or [])
    if isinstance(recipe, dict):
        if overrides:
            raise RecipeError("give overrides with a recipe path, or apply them with emoframe.load_recipe first")
        return recipe
    if recipe:
        return load_recipe(recipe, overrides)
    if ckpt is not None and str(ckpt) not in NAMED_CHECKPOINTS:
        return checkpoint_recipe(stored_recipe(read_checkpoint(ckpt)), overrides)
    raise RecipeError("Give a recipe file (recipes/*.yaml), or --ckpt PATH to a checkpoint written by emoframe")
