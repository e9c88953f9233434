"""A trial's command: the sweep file's ``command:`` with W&B's macros filled in, as the W&B agent fills them.

``${interpreter}`` is this Python (the agent says ``python``), ``${env}`` is dropped (the environment is passed
directly), ``${program}`` is the file's ``program``, and ``${args_no_hyphens}`` (or the Hydra forms ``+k=v``,
``++k=v``) the sampled values as recipe overrides, followed by the engine's own (where the run goes). The
hyperparameters reach the trial only on its command line, so every DDP rank (Lightning re-runs the same argv
per rank, torchrun starts it per rank) reads the same values.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from emoframe.errors import RecipeError
from emoframe.sweeps.schema import DEFAULT_COMMAND, OVERRIDE_MACROS, RECIPE_SUFFIXES, Sweep

ENVVAR = re.compile(r"\$\{envvar:([A-Za-z0-9_]*)\}")


def _expand_chunk(chunk: str, sweep: Sweep) -> str:
    chunk = ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), chunk)
    return chunk.replace("${program}", sweep.program or "")


def trial_command(sweep: Sweep, overrides: list[str], resume: Path | None = None) -> list[str]:
    """The argv of one trial: the file's command, ``overrides`` where the args macro stands, ``--resume`` last."""
    check_command(sweep)
    out: list[str] = []
    for chunk in sweep.command:
        if chunk == "${env}":
            continue
        if chunk == "${interpreter}":
            out.append(sys.executable)
        elif chunk[2:-1] in OVERRIDE_MACROS and chunk.startswith("${"):
            prefix = {"args_no_hyphens": "", "args_append_hydra": "+", "args_override_hydra": "++"}[chunk[2:-1]]
            out += [prefix + o for o in overrides]
        else:
            out.append(_expand_chunk(chunk, sweep))
    if resume is not None:
        out += ["--resume", str(resume)]
    return out


def check_command(sweep: Sweep) -> None:
    """The command must run ``emoframe fit RECIPE`` with the values as ``key=value`` (one line otherwise)."""
    where = f"{sweep.path}: command"
    suggestion = f"command: [{', '.join(DEFAULT_COMMAND)}] with program: recipes/x.yaml"
    if not sweep.command:
        raise RecipeError(
            f"{where}: missing; W&B's default runs `python PROGRAM --key=value`, which a recipe is not: add {suggestion}"
        )
    macros = [c[2:-1] for c in sweep.command if c.startswith("${") and c.endswith("}")]
    if not any(m in OVERRIDE_MACROS for m in macros):
        bad = next((m for m in macros if m.startswith("args")), None)
        got = f" (${{{bad}}} gives --key=value flags)" if bad else ""
        raise RecipeError(f"{where}: emoframe fit takes key=value overrides: put ${{args_no_hyphens}} in it{got}")
    recipe_of(sweep)


def recipe_of(sweep: Sweep) -> Path:
    """The recipe the trials train: the first ``.yaml`` after ``fit`` in the command (``${program}`` counts)."""
    chunks = [_expand_chunk(c, sweep) for c in sweep.command]
    if "fit" not in chunks:
        raise RecipeError(f"{sweep.path}: command: expected `emoframe fit RECIPE ${{args_no_hyphens}}`, got {chunks}")
    after = chunks[chunks.index("fit") + 1 :]
    recipe = next((c for c in after if c.endswith(RECIPE_SUFFIXES) and "=" not in c), None)
    if recipe is None:
        raise RecipeError(f"{sweep.path}: command: no recipe (.yaml) after fit; set program: recipes/x.yaml")
    path = Path(recipe)
    if not path.is_file():
        raise RecipeError(
            f"{sweep.path}: recipe {recipe} not found (the W&B agent runs the command in the current folder, "
            f"{Path.cwd()}; start the sweep from there)"
        )
    return path
