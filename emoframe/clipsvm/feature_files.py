"""Feature files: one ``<split>.npz`` per split, the per-frame features of its clips as a ragged set.

    features     float32 (F, D)  one row per frame, the clips' frames concatenated in clip order
    offsets      int64   (N+1,)  clip i is features[offsets[i]:offsets[i + 1]]
    labels       int64   (N,)    EMOTIONS ids; -1 for unlabelled clips
    names        str     (N,)    clip names (AFEW: ``Happy/000100003``; images: their file names)
    frame_index  int64   (F,)    each row's frame number in its clip (0 for images)
    meta         str     ()      JSON: format, version, split, checkpoint (path, sha256), backbone, data, tta

Uncompressed, so ``features`` is memory-mapped when read. Written atomically (a temporary file renamed into
place), so a file that reads as complete is complete.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoframe.errors import DataError
from emoframe.files.lazy import NpzMember

FILE_FORMAT = "emoframe-frame-features"
FILE_VERSION = 1
SPLIT_NAMES = ("train", "val", "test", "predict")
MEMBERS = ("features", "offsets", "labels", "names", "frame_index", "meta")
IGNORED_DATA_KEYS = ("loader", "workers", "cache_dir", "augment")
"""Data settings that do not change the features (with ``clip.transforms``, training-only augmentation): a rerun
with other values still skips finished splits."""


@dataclass
class FeatureFile:
    """One ``<split>.npz``: ragged per-frame features of N clips (``features`` is memory-mapped)."""

    path: Path
    features: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    frame_index: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def clips(self) -> list[np.ndarray]:
        """``(T_i, D)`` float32 arrays, one per clip (views of the mapped file)."""
        return [self.features[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def settings(self) -> dict[str, Any]:
        return settings_key(self.meta)


def settings_key(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two extractions comparable: checkpoint contents, data settings that shape frames, TTA."""
    data = {k: v for k, v in (meta.get("data") or {}).items() if k not in IGNORED_DATA_KEYS}
    if isinstance(data.get("clip"), Mapping):
        data["clip"] = {k: v for k, v in data["clip"].items() if k != "transforms"}
    return {"checkpoint_sha256": (meta.get("checkpoint") or {}).get("sha256"), "data": data, "tta": meta.get("tta")}


def load_features(path: str | Path) -> FeatureFile:
    """A complete file written by ``emoframe extract``, or a one-line ``DataError`` (missing, truncated, foreign)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Feature file not found: {path} (write it with emoframe extract)")
    try:
        with zipfile.ZipFile(path) as z:
            present = {n.removesuffix(".npy") for n in z.namelist()}
        missing = [m for m in MEMBERS if m not in present]
        if missing:
            raise DataError(f"{path}: not a complete emoframe feature file (no '{missing[0]}'); extract it again")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            small = {k: z[k] for k in ("offsets", "labels", "names", "frame_index")}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise DataError(
            f"{path}: incomplete or damaged feature file ({type(err).__name__}); extract it again"
        ) from None
    if meta.get("format") != FILE_FORMAT or meta.get("version") != FILE_VERSION:
        raise DataError(f"{path}: not an emoframe feature file of version {FILE_VERSION} ({FILE_FORMAT})")
    features = NpzMember(path, "features").array()
    offsets = small["offsets"]
    n = len(small["labels"])
    if (
        features.ndim != 2
        or offsets.shape != (n + 1,)
        or len(small["names"]) != n
        or offsets[0] != 0
        or offsets[-1] != len(features)
        or len(small["frame_index"]) != len(features)
        or (np.diff(offsets) < 1).any()
    ):
        raise DataError(
            f"{path}: inconsistent feature file (offsets, labels, names and rows disagree); extract it again"
        )
    return FeatureFile(path, features, offsets, small["labels"], small["names"], small["frame_index"], meta)


def write_features(
    path: Path,
    features: np.ndarray,
    lengths: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    frame_index: np.ndarray,
    meta: Mapping[str, Any],
) -> Path:
    """Write one split atomically: a temporary file in the same folder, flushed, then renamed into place."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            np.savez(
                f,
                features=features,
                offsets=offsets,
                labels=np.asarray(labels, dtype=np.int64),
                names=np.array(list(names), dtype=str) if len(names) else np.zeros(0, dtype="<U1"),
                frame_index=np.asarray(frame_index, dtype=np.int64),
                meta=np.array(json.dumps(dict(meta), sort_keys=True)),
            )
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
