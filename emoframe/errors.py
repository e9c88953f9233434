"""The error types every layer raises: a leaf module that imports nothing from emoframe.

The CLI prints any of them as one line and exits 2, so a message must say what was expected and where.
"""

from __future__ import annotations


class RecipeError(ValueError):
    """A recipe mistake, reported in one line naming the key path."""


class DataError(RecipeError):
    """Bad or missing data, reported in one line saying what was expected and where.

    A subclass of ``RecipeError`` (itself a ``ValueError``) so the CLI prints it as one line like any
    other recipe mistake: the data path and options come from the recipe.
    """


class WeightsError(ValueError):
    """A weights or checkpoint file that is missing, unreadable or matches nothing in the model."""


__all__ = ["DataError", "RecipeError", "WeightsError"]
