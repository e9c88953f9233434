"""Per-frame labelled sequence data: face crops of whole recordings, cut into windows for CNN + LSTM models.

A subclass (``recola``, ``afew_va``: (arousal, valence); ``multilabel_video``: one 0/1 column per
emotion) says which recordings make each split, what its targets are called and how to align their
labels to frames; its ``Recordings`` object (``emoframe.data.video.recordings``) runs the face pipeline
through the face-track cache and memory-maps the crops; this class cuts windows and serves loaders.
Every batch, in every split, is the tuple

    frames     float32 (B, T, C, H, W)  normalised crops; zeros where ``mask`` is False
    targets    float32 (B, T, K)        K = len(class_names), (arousal, valence) by default; NaN where
                                        unlabelled or masked
    mask       bool    (B, T)           a real frame with a crop (a face, or the whole frame under
                                        ``faces.fallback: frame``); False for padding and dropped frames
    recording  int64   (B,)             index into ``datamodule.recordings(split)``
    start      int64   (B,)             the window's first frame in that recording

Training windows are ``windows.size`` frames every ``windows.stride`` frames (one more ending at the last
frame, so the tail is seen). Validation, test and predict windows do not overlap and cover every frame
exactly once; the last one is padded and masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Unpack

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from emoframe.data.common import (
    MOVED_KEYS,
    FrameCount,
    Section,
    check,
    crops_to_tensor,
    is_count,
    normaliser,
    section,
)
from emoframe.data.video.base import VideoDataModule, VideoOptions
from emoframe.data.video.recordings import SPLITS, OnBad, Recording, Source, stem
from emoframe.errors import DataError

TARGETS = ("arousal", "valence")


def window_starts(length: int, window: int, stride: int, cover: bool) -> list[int]:
    """First frames of the windows of a recording; ``cover``: non-overlapping, every frame once."""
    if cover:
        return list(range(0, length, window))
    last = max(length - window, 0)
    starts = list(range(0, last + 1, stride))
    return starts if starts[-1] == last else [*starts, last]


def seed_and_ratios(split: Any, where: str, default_ratios: tuple[float, ...]) -> tuple[int, list[float]]:
    """``(seed, ratios)`` of a ``{seed, ratios}`` split section, each checked with a one-line error naming it."""
    seed = split.get("seed")
    seed = 0 if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise DataError(f"{where}.seed: expected an integer >= 0, got {seed!r}")
    ratios = split.get("ratios")
    ratios = default_ratios if ratios is None else ratios
    numbers = isinstance(ratios, (list, tuple)) and all(
        isinstance(r, (int, float)) and not isinstance(r, bool) for r in ratios
    )
    if not numbers:
        raise DataError(f"{where}.ratios: expected three non-negative numbers for train, val, test, got {ratios!r}")
    return seed, [float(r) for r in ratios]


def split_by_ratio(names: list[str], ratios: list[float], seed: int, where: str) -> dict[str, list[str]]:
    """Whole recordings (subjects) shuffled with ``seed`` and dealt to train/val/test by ``ratios``."""
    if len(ratios) != 3 or not all(0 <= r < float("inf") for r in ratios) or sum(ratios) <= 0:
        raise DataError(f"{where}.ratios: expected three non-negative numbers for train, val, test, got {ratios}")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    total = float(sum(ratios))
    n_val = round(len(order) * ratios[1] / total)
    n_test = round(len(order) * ratios[2] / total)
    n_train = len(order) - n_val - n_test
    out = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    for split, picked in out.items():
        if not picked and ratios[SPLITS.index(split)] > 0:
            raise DataError(f"{where}: {len(names)} recordings are too few for ratios {ratios} (no {split} recording)")
    return {split: sorted(picked) for split, picked in out.items()}


class WindowDataset(Dataset[tuple[Any, ...]]):
    """Windows ``(recording index, start)`` over recordings, each item padded to ``window`` frames."""

    def __init__(
        self, recordings: list[Recording], window: int, starts: list[tuple[int, int]], mean: Any, std: Any
    ) -> None:
        self.recordings = recordings
        self.window = window
        self.starts = starts
        self.mean = normaliser(mean)
        self.std = normaliser(std)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        r, start = self.starts[index]
        rec = self.recordings[r]
        stop = min(start + self.window, len(rec))
        x = crops_to_tensor(np.array(rec.crops[start:stop]), self.mean, self.std)  # a copy: the map is read-only
        frames = torch.zeros((self.window, *x.shape[1:]), dtype=torch.float32)
        mask = torch.zeros(self.window, dtype=torch.bool)
        targets = torch.full((self.window, rec.labels.shape[1]), float("nan"))
        n = stop - start
        mask[:n] = torch.from_numpy(rec.valid[start:stop].copy())
        frames[:n] = x
        frames[~mask] = 0.0
        targets[:n] = torch.from_numpy(rec.labels[start:stop].copy())
        targets[~mask] = float("nan")
        return frames, targets, mask, r, start


@dataclass(frozen=True)
class WindowSettings:
    """``data.windows``: frames per window, and how far apart training windows start (null: ``size``)."""

    size: FrameCount = 150
    stride: FrameCount | None = None

    def __post_init__(self) -> None:
        check(is_count(self.size, 1), "windows.size", "an integer >= 1 (frames)", self.size)
        check(self.stride is None or is_count(self.stride, 1), "windows.stride", "null or >= 1", self.stride)


class WindowOptions(VideoOptions, total=False):
    """Keyword arguments every window datamodule takes, declared once (defaults: ``WindowDataModule``)."""

    windows: Section
    on_bad_recording: OnBad


class WindowDataModule(VideoDataModule):
    """Base class: recordings -> face tracks (cached) -> windows of crops with per-frame targets.

    Targets are ``class_names`` ((arousal, valence) here; subclasses may name others).
    ``windows: {size, stride}``; ``on_bad_recording: skip`` counts and reports unreadable videos, bad label
    files and recordings missing their video or labels instead of stopping at the first. The other options
    (``loader``, ``image``, ``faces``, ``cache_dir``, ``workers``, ``predict_videos``) are
    ``VideoDataModule``'s.
    """

    moved_keys: ClassVar[dict[str, str]] = {**MOVED_KEYS, "window": "windows.size", "stride": "windows.stride"}
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "windows": {"size": 150},
        "loader": {"batch_size": 2, "num_workers": 2},
        "image": {"size": 150, "channels": 3},
    }

    def __init__(
        self, *, windows: Section = None, on_bad_recording: OnBad = "error", **options: Unpack[VideoOptions]
    ) -> None:
        super().__init__(on_bad=on_bad_recording, policy_key="on_bad_recording", **options)
        self.windows = section(WindowSettings, windows, "windows", self.section_defaults.get("windows"))
        self.window, self.stride = self.windows.size, self.windows.stride or self.windows.size
        self.on_bad_recording = on_bad_recording

    @property
    def frames_per_item(self) -> int:
        return self.window

    @property
    def class_names(self) -> list[str]:
        return list(TARGETS)

    def predict_sources(self) -> list[Source]:
        return [Source(stem(v), v) for v in self.predict_videos]

    def _windows(self, split: str, cover: bool) -> list[tuple[int, int]]:
        out = []
        for r, rec in enumerate(self.recordings(split)):
            labelled = rec.valid & np.isfinite(rec.labels).any(axis=1)
            for start in window_starts(len(rec), self.window, self.stride, cover):
                if cover or labelled[start : start + self.window].any():  # a training window needs a target
                    out.append((r, start))
        return out

    def dataset(self, split: str) -> WindowDataset:
        recordings = self.recordings(split)
        return WindowDataset(recordings, self.window, self._windows(split, split != "train"), self.mean, self.std)

    def test_dataloader(self) -> DataLoader:
        recordings = self.recordings("test")
        if not any(np.isfinite(r.labels).any() for r in recordings):
            raise DataError(
                f"{type(self).__name__}: the test split has no labelled recordings (AVEC 2016 withholds the test "
                "gold standard): set data.resplit to test on labelled ones, or run `emoframe predict`"
            )
        return self._loader("test", shuffle=False)
