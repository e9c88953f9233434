"""``extract``: per-frame backbone features of a checkpoint, averaged over TTA views, for the clip SVMs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoframe.builder import backbone_inputs, build_datamodule
from emoframe.checkpoints import load_backbone, read_checkpoint, run_dir_of_checkpoint, warn_data_differs
from emoframe.clipsvm.extract import ExtractResult, check_request, run_extract
from emoframe.config import checkpoint_recipe, load_recipe
from emoframe.devices import resolve_device
from emoframe.engine.recipes import NAMED_CHECKPOINTS, resolve_checkpoint, stored_recipe
from emoframe.engine.runs import check_output
from emoframe.errors import RecipeError
from emoframe.registry import load_plugins
from emoframe.tta import parse_tta


def extract(
    recipe: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    ckpt: str | Path,
    output: str | Path | None = None,
    splits: str | list[str] = "train,val",
    tta: Any = "18",
    batch_size: int = 64,
    device: str = "auto",
    overwrite: bool = False,
) -> list[ExtractResult]:
    """``<output>/<split>.npz`` for each split: the checkpoint's backbone on ``recipe``'s data (default: the data
    it was trained on), each frame's features averaged over the ``tta`` views."""
    overrides = list(overrides or [])
    transforms = parse_tta(tta or "18", "--tta")
    chosen = [s.strip() for s in splits.split(",")] if isinstance(splits, str) else list(splits)
    chosen = [s for s in chosen if s]
    if str(ckpt) in NAMED_CHECKPOINTS and not recipe:
        raise RecipeError(f"--ckpt {ckpt} needs the recipe it was trained with; or give --ckpt PATH")
    path = resolve_checkpoint(ckpt, load_recipe(recipe, overrides) if str(ckpt) in NAMED_CHECKPOINTS else None)
    assert path is not None
    checkpoint = read_checkpoint(path)
    stored = stored_recipe(checkpoint, "the model comes from it; extract from a checkpoint written by emoframe fit")
    cfg = checkpoint_recipe(stored, overrides, data_from=recipe)  # the data: section may come from the recipe
    run_dir = run_dir_of_checkpoint(path)
    data = cfg.get("data") or {}
    if output is None and run_dir is None:
        raise RecipeError("--output: give the folder to write <split>.npz to")
    name = str(data.get("name") or str(data.get("class_path", "data")).rsplit(".")[-1])
    out = check_output(output, folder=True) or run_dir / "features" / name  # type: ignore[operator]
    check_request(chosen, batch_size)
    load_plugins(list(cfg.get("imports") or []))
    if data.get("features"):  # hand-crafted features (fusion recipes) are not the backbone's: not computed
        data = {**data, "features": None}
    datamodule = build_datamodule({**cfg, "data": data})
    trained_data = stored.get("data") or {}
    warn_data_differs(trained_data, data)
    model = cfg.get("model") or {}
    channels = int(getattr(datamodule, "channels", 3))
    trained_channels = (trained_data.get("image") or {}).get("channels")
    inputs = backbone_inputs(datamodule, model["backbone"]) if model.get("backbone") else None
    backbone = load_backbone(checkpoint, model.get("backbone"), channels, trained_channels, inputs)
    source = {
        "checkpoint": {"path": str(path.resolve()), "sha256": checkpoint.sha256()},
        "backbone": model.get("backbone"),
        "data": data,
    }
    return run_extract(
        datamodule,
        backbone,
        out,
        chosen,
        transforms,
        source,
        batch_size=batch_size,
        device=str(resolve_device(device)),
        overwrite=overwrite,
        channels_last=bool(model.get("channels_last", False)),
    )


def extract_lines(results: list[ExtractResult]) -> list[str]:
    """What ``emoframe extract`` prints: one line per split file."""
    state = {True: "already complete", False: "written"}
    return [f"{r.path}\t{r.clips} clips\t{r.frames} frames\t{r.dim} features\t{state[r.skipped]}" for r in results]
