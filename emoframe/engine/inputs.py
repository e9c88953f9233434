"""``predict`` on inputs: pictures, folders, globs, videos, cameras and stream URLs (``emoframe.inference``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from emoframe.checkpoints import run_dir_of_checkpoint
from emoframe.devices import resolve_device
from emoframe.engine.recipes import NAMED_CHECKPOINTS, is_recipe_file
from emoframe.engine.runs import check_output
from emoframe.errors import RecipeError
from emoframe.inference.run import Options, Summary, check_options
from emoframe.models import load_model

OVERRIDE = re.compile(r"^[~+]?[A-Za-z_][\w.\-\[\]]*=")
INPUT_OPTIONS = ("faces", "every", "fps", "detect_every", "batch_size", "decode_side", "render", "timeline")
INPUT_OPTIONS += ("json_lines", "progress")
"""``emoframe.inference.Options`` that ``predict`` on inputs takes (the CLI's flags of the same names)."""


def split_inputs(args: list[str]) -> tuple[list[str], list[str]]:
    """(INPUTs, recipe and ``key=value`` arguments) of ``predict``'s positional arguments."""
    inputs, rest = [], []
    for a in args:
        (rest if is_recipe_file(a) or OVERRIDE.match(a) else inputs).append(a)
    return inputs, rest


def default_output(ckpt: Path) -> Path:
    """``<run>/predict/predictions.csv`` for a checkpoint of an emoframe run, else ``predictions.csv`` here."""
    run_dir = run_dir_of_checkpoint(ckpt)
    return run_dir / "predict" / "predictions.csv" if run_dir is not None else Path("predictions.csv")


def predict_inputs(
    inputs: list[Any],
    *,
    ckpt: str | Path,
    tta: Any = None,
    output: str | Path | None = None,
    device: str | torch.device = "auto",
    render: str | Path | None = None,
    **options: Any,
) -> Summary:
    """A trained (or exported) model on ``inputs``; ``options`` are ``emoframe.inference.Options``' (``faces``,
    ``every``, ``fps``, ``detect_every``, ``batch_size``, ``decode_side``, ``timeline``, ``json_lines``,
    ``progress``). Returns the run's summary (counts, files written)."""
    if not ckpt or str(ckpt) in NAMED_CHECKPOINTS:
        raise RecipeError("predict INPUT...: give --ckpt PATH (a checkpoint, or a .onnx/.ts file of emoframe export)")
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise RecipeError(f"Checkpoint not found: {ckpt}")
    out = check_output(output) or default_output(ckpt)
    if "decode_side" in options:
        options["decode_side"] = options["decode_side"] or None  # 0: decode at full size
    chosen = Options(output=out, render=check_output(render, "--render"), **options)
    check_options(chosen)
    return load_model(ckpt, resolve_device(device)).run(inputs, chosen, tta)
