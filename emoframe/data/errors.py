"""The data layer's error type."""

from __future__ import annotations

from emoframe.registry import RecipeError


class DataError(RecipeError):
    """Bad or missing data, reported in one line saying what was expected and where.

    A subclass of ``RecipeError`` (itself a ``ValueError``) so the CLI prints it as one line like any
    other recipe mistake: the data path and options come from the recipe.
    """
