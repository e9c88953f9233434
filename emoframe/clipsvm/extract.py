"""Per-frame penultimate-layer features of a trained backbone, with test-time augmentation (Knyazev et al. 2.5).

``emoframe extract --ckpt X [recipe.yaml] [overrides]`` runs the checkpoint's backbone (the layer before the
head) over every frame of every item of the chosen splits (the datamodule's ``frame_source(split)``,
emoframe.data.frame_sources) and writes ``<output>/<split>.npz`` (emoframe.clipsvm.feature_files), each
frame's features averaged over the TTA views (emoframe.tta).

**Resumable.** Each split is written to a temporary file and renamed into place once complete (features
stream to disk first, so memory stays bounded), so a killed run never leaves a ``<split>.npz`` that reads as
complete; a rerun skips the splits whose files are complete and were made with the same checkpoint, data
and TTA (other settings are an error unless ``overwrite``). One extraction per output folder at a time.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emoframe.clipsvm.feature_files import (
    FILE_FORMAT,
    FILE_VERSION,
    SPLIT_NAMES,
    load_features,
    settings_key,
    write_features,
)
from emoframe.data.frame_sources import FrameSource
from emoframe.devices import resolve_device
from emoframe.errors import DataError, RecipeError
from emoframe.tta import TTATransform, tta_views


def tta_features(
    backbone: nn.Module, x: torch.Tensor, transforms: Sequence[TTATransform], channels_last: bool = False
) -> torch.Tensor:
    """``(B, C, H, W)`` frames -> ``(B, D)`` backbone features averaged over the views, in one forward pass."""
    views = tta_views(x, transforms)
    if channels_last:
        views = views.contiguous(memory_format=torch.channels_last)
    out = backbone(views)
    if out.ndim != 2:
        raise RecipeError(f"model.backbone: expected (batch, features) outputs, got shape {tuple(out.shape)}")
    return out.reshape(len(x), len(transforms), -1).mean(dim=1)


@dataclass
class ExtractResult:
    path: Path
    skipped: bool
    clips: int
    frames: int
    dim: int


def extract_split(
    source: FrameSource,
    backbone: nn.Module,
    transforms: Sequence[TTATransform],
    path: Path,
    meta: dict[str, Any],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> ExtractResult:
    """Stream ``source``'s frames through ``backbone`` (TTA-averaged) into a raw temporary file, then write
    ``path`` atomically; the temporary files are removed whatever happens."""
    total = int(source.lengths.sum())
    if total == 0:
        raise DataError(f"{meta.get('split')}: no frames to extract (no clips, or none with a face crop)")
    raw = path.with_name(f".{path.stem}.frames.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, dim = 0, 0
    bar = tqdm(total=total, desc=f"extract {meta.get('split')} ({len(transforms)} views)", unit="frame")
    try:
        with raw.open("wb") as f, torch.inference_mode():
            for x in source.batches(batch_size):
                try:
                    out = tta_features(backbone, x.to(device), transforms, channels_last)
                except torch.OutOfMemoryError:
                    raise  # the real cause; lower --batch-size (the forward pass sees batch size x views)
                except RuntimeError as err:  # e.g. 3-channel frames into a 1-channel stem
                    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    raise RecipeError(
                        f"model.backbone cannot read frames of shape {tuple(x.shape[1:])} from the data: {first}"
                    ) from None
                block = out.float().cpu().numpy()
                dim = block.shape[1]
                f.write(np.ascontiguousarray(block).tobytes())
                rows += len(block)
                bar.update(len(block))
        bar.close()
        if rows != total:
            raise DataError(f"{meta.get('split')}: the datamodule gave {rows} frames, expected {total}")
        features = np.memmap(raw, np.float32, "r", shape=(rows, dim))
        meta = {**meta, "clips": len(source.names), "frames": rows, "dim": dim}
        write_features(path, features, source.lengths, source.labels, source.names, source.frame_index, meta)
        del features
    finally:
        bar.close()
        raw.unlink(missing_ok=True)
    return ExtractResult(path, False, len(source.names), rows, dim)


def check_request(splits: Sequence[str], batch_size: Any) -> None:
    """One-line ``RecipeError`` for an unknown split or a bad batch size (``--splits``, ``--batch-size``)."""
    for split in splits:
        if split not in SPLIT_NAMES:
            raise RecipeError(f"--splits: unknown split '{split}'. Known: {', '.join(SPLIT_NAMES)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise RecipeError(f"--batch-size: expected an integer >= 1, got {batch_size!r}")


def run_extract(
    datamodule: Any,
    backbone: nn.Module,
    output: Path,
    splits: Sequence[str],
    transforms: Sequence[TTATransform],
    source: Mapping[str, Any],
    batch_size: int = 64,
    device: str | torch.device = "auto",
    overwrite: bool = False,
    channels_last: bool = False,
) -> list[ExtractResult]:
    """Extract every split not already complete under ``output``.

    ``datamodule`` offers ``frame_source(split)``; ``backbone`` is the trained one (eval mode, on the CPU);
    ``source`` says what the features are of, as plain data stored in every file's meta:
    ``{"checkpoint": {"path": ..., "sha256": ...}, "backbone": <model.backbone>, "data": <data section>}``.
    """
    check_request(splits, batch_size)
    if not callable(getattr(datamodule, "frame_source", None)):
        raise RecipeError(
            "data: emoframe extract reads frame datamodules (fer2013, image_folder: one image = one clip) and clip "
            f"datamodules (afew, video_folder); {type(datamodule).__name__} is neither"
        )
    base_meta: dict[str, Any] = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "checkpoint": source.get("checkpoint"),
        "backbone": source.get("backbone"),
        "data": source.get("data"),
        "tta": [t.settings() for t in transforms],
        "class_names": list(getattr(datamodule, "class_names", [])),
    }
    base_meta = json.loads(json.dumps(base_meta))  # as it will read back from the file (tuples become lists)
    wanted = settings_key(base_meta)
    results: list[ExtractResult] = []
    todo = []
    for split in splits:
        path = output / f"{split}.npz"
        if path.exists() and not overwrite:
            try:
                done = load_features(path)
            except DataError as err:
                print(f"Re-extracting {split}: {err}", file=sys.stderr, flush=True)
            else:
                if done.settings() != wanted:
                    differs = [k for k in wanted if done.settings()[k] != wanted[k]]
                    raise DataError(
                        f"{path} holds features of other settings ({', '.join(differs)} differ); "
                        "give another --output, or --overwrite to replace it"
                    )
                print(f"Skipping {split}: {path} is complete ({len(done)} clips)", file=sys.stderr, flush=True)
                results.append(ExtractResult(path, True, len(done), len(done.features), done.dim))
                continue
        todo.append(split)
    if not todo:
        return results
    target = resolve_device(device)
    backbone = backbone.to(target)
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    for split in todo:
        for stale in output.glob(f".{split}.*tmp-*"):  # left by a killed run
            stale.unlink(missing_ok=True)
        frames = datamodule.frame_source(split)
        meta = {**base_meta, "split": split}
        results.append(
            extract_split(
                frames, backbone, transforms, output / f"{split}.npz", meta, batch_size, target, channels_last
            )
        )
    return results
