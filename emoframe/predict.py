"""``emoframe predict --ckpt X INPUT...``: a trained (or exported) model on pictures, folders, globs, videos,
cameras and stream URLs (the pipeline is ``emoframe.inference``; this is the command around it).

Without INPUTs, ``emoframe predict`` keeps predicting the datamodule's test split (``data.predict_videos`` for the
video regressors) through the prediction writers, as before.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from emoframe.api import load_model
from emoframe.checkpoints import run_dir_of_checkpoint
from emoframe.errors import RecipeError
from emoframe.inference.run import Options, check_options
from emoframe.inference.spec import ModelSpec
from emoframe.tta import TTA, TTATransform, parse_tta

OVERRIDE = re.compile(r"^[~+]?[A-Za-z_][\w.\-\[\]]*=")
RECIPE_SUFFIXES = (".yaml", ".yml")


def split_inputs(args: list[str]) -> tuple[list[str], list[str]]:
    """(INPUTs, recipe and ``key=value`` arguments) of ``predict``'s positional arguments."""
    inputs, rest = [], []
    for a in args:
        is_recipe = a.endswith(RECIPE_SUFFIXES) and "=" not in a and not Path(a).is_dir()
        (rest if is_recipe or OVERRIDE.match(a) else inputs).append(a)
    return inputs, rest


def with_tta(spec: ModelSpec, views: tuple[TTATransform, ...], where: Path) -> None:
    """``--tta``: the frame model's class probabilities averaged over ``views`` (``emoframe.tta.TTA``)."""
    if spec.kind not in ("frame", "fusion") or spec.activation != "softmax":
        raise RecipeError(f"--tta: {where} is a {spec.task_name} model; TTA averages frame classifiers' probabilities")
    spec.forward = TTA(spec.forward, views, outputs="logits")  # type: ignore[arg-type]
    spec.activation = "probs"


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RecipeError(f"--device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError("--device cuda: no CUDA device is available here")
    return device


def default_output(ckpt: Path) -> Path:
    """``<run>/predict/predictions.csv`` for a checkpoint of an emoframe run, else ``predictions.csv`` here."""
    run_dir = run_dir_of_checkpoint(ckpt)
    return run_dir / "predict" / "predictions.csv" if run_dir is not None else Path("predictions.csv")


def run_predict(ns: argparse.Namespace, inputs: list[str], rest: list[str]) -> None:
    """The command: load the model, run the pipeline, print where everything went and one summary line."""
    if rest:
        raise RecipeError(
            f"predict INPUT...: the model's recipe comes from --ckpt; drop {rest[0]!r} (recipes and overrides "
            "are for predicting a datamodule's split)"
        )
    if not ns.ckpt or ns.ckpt in ("best", "last"):
        raise RecipeError("predict INPUT...: give --ckpt PATH (a checkpoint, or a .onnx/.ts file of emoframe export)")
    ckpt = Path(ns.ckpt)
    if not ckpt.is_file():
        raise RecipeError(f"Checkpoint not found: {ckpt}")
    options = Options(
        faces=ns.faces,
        every=ns.every,
        fps=ns.fps,
        detect_every=ns.detect_every,
        batch_size=ns.batch_size,
        decode_side=ns.decode_side or None,
        output=Path(ns.output) if ns.output else default_output(ckpt),
        render=Path(ns.render) if ns.render else None,
        timeline=not ns.no_timeline,
        json_lines=True if ns.json else None,
        progress=not ns.no_progress,
    )
    check_options(options)
    model = load_model(ckpt, device_of(ns.device))
    if getattr(ns, "tta", None) is not None:
        with_tta(model.spec, parse_tta(ns.tta, "--tta"), ckpt)
    summary = model.run(inputs, options)
    live_out = options.json_lines or any(i.isdigit() or "://" in i for i in inputs)
    out = sys.stderr if live_out else sys.stdout  # stdout carries the JSON lines then
    for note in summary.notes:
        print(note, file=sys.stderr)
    print(summary.line(), file=sys.stderr, flush=True)
    for path in summary.paths:
        print(f"Predictions: {path}" if path == options.output else f"Wrote: {path}", file=out)
    if summary.interrupted:
        raise SystemExit(130)
