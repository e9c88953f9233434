"""Per-frame labelled sequence data: face crops of whole recordings, cut into windows for CNN + LSTM models.

A subclass (``recola``, ``afew_va``: (arousal, valence); ``multilabel_video``: one 0/1 column per
emotion) says which recordings make each split, what its targets are called and how to align their
labels to frames; this class runs the face pipeline through the face-track cache, memory-maps the
crops from the cache entries (a RECOLA-sized set does not fit in memory), cuts windows and serves
loaders. Every batch, in every split, is the tuple

    frames     float32 (B, T, C, H, W)  normalised crops; zeros where ``mask`` is False
    targets    float32 (B, T, K)        K = len(class_names), (arousal, valence) by default; NaN where
                                        unlabelled or masked
    mask       bool    (B, T)           a real frame with a crop (a face, or the whole frame under
                                        ``faces.fallback: frame``); False for padding and dropped frames
    recording  int64   (B,)             index into ``datamodule.recordings(split)``
    start      int64   (B,)             the window's first frame in that recording

Training windows are ``window`` frames every ``stride`` frames (one more ending at the last frame, so
the tail is seen). Validation, test and predict windows do not overlap and cover every frame exactly
once; the last one is padded and masked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from emoframe.errors import DataError
from emoframe.faces.folders import FolderTrackCache
from emoframe.faces.pipeline import FacePipeline
from emoframe.faces.tracks import FaceTrackCache
from emoframe.files.lazy import NpzMember
from emoframe.files.video import VIDEO_SUFFIXES
from emoframe.registry import TRANSFORMS

TARGETS = ("arousal", "valence")
SPLITS = ("train", "val", "test")
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
OnBad = Literal["error", "skip"]
Aligner = Callable[[int, float], np.ndarray]
"""(frame count, fps) -> float32 (frames, K) labels, NaN where unlabelled."""


@dataclass
class Source:
    """A recording before its faces are extracted: a video file or a frame folder, and its labels."""

    name: str
    path: str
    align: Aligner | None = None  # None: unlabelled (predict)
    fps: float | None = None  # None: the video's own rate (frame folders need it)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. AFEW-VA's annotated landmarks


@dataclass
class Recording:
    """One recording ready for windows: crops (memory-mapped), per-frame validity, labels and frame rate."""

    name: str
    source: str
    crops: np.ndarray | NpzMember  # (N, S, S) gray or (N, S, S, 3) RGB uint8
    valid: np.ndarray  # (N,) bool
    labels: np.ndarray  # (N, K) float32, NaN where unlabelled
    fps: float
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.valid)

    @property
    def times(self) -> np.ndarray:
        """Seconds of each frame (frame index / fps)."""
        return np.arange(len(self)) / self.fps


def window_starts(length: int, window: int, stride: int, cover: bool) -> list[int]:
    """First frames of the windows of a recording; ``cover``: non-overlapping, every frame once."""
    if cover:
        return list(range(0, length, window))
    last = max(length - window, 0)
    starts = list(range(0, last + 1, stride))
    return starts if starts[-1] == last else [*starts, last]


def split_by_ratio(names: list[str], ratios: list[float], seed: int, where: str) -> dict[str, list[str]]:
    """Whole recordings (subjects) shuffled with ``seed`` and dealt to train/val/test by ``ratios``."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
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
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        r, start = self.starts[index]
        rec = self.recordings[r]
        stop = min(start + self.window, len(rec))
        crops = np.array(rec.crops[start:stop])  # a copy: the memory map is read-only
        crops = crops[..., None] if crops.ndim == 3 else crops
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std
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


class SequenceRegressionDataModule(pl.LightningDataModule):
    """Base class: recordings -> face tracks (cached) -> windows of crops with per-frame targets.

    Targets are ``class_names`` ((arousal, valence) here; subclasses may name others).

    ``faces`` are ``face_crop`` settings (size and grayscale follow ``image_size`` and ``channels``).
    ``predict_videos`` (video files or frame folders) are what ``emoframe predict`` runs on; without
    them it predicts the test split. ``on_bad_recording: skip`` counts and reports unreadable videos,
    bad label files and recordings missing their video or labels instead of stopping at the first.
    """

    extract_chunk = 4
    """Videos per face-track extraction round: ``build()`` holds a round's tracks in memory (0.5 GB per RECOLA
    video); subclasses with short clips raise it."""

    def __init__(
        self,
        window: int = 150,
        stride: int | None = None,
        batch_size: int = 2,
        num_workers: int = 2,
        image_size: int = 150,
        channels: int = 3,
        mean: float | list[float] = 0.5,
        std: float | list[float] = 0.5,
        faces: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        workers: int = 1,
        on_bad_recording: OnBad = "error",
        predict_videos: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check(isinstance(window, int) and window >= 1, "window", "an integer >= 1 (frames)", window)
        _check(stride is None or (isinstance(stride, int) and stride >= 1), "stride", "null or >= 1", stride)
        _check(isinstance(batch_size, int) and batch_size >= 1, "batch_size", "an integer >= 1", batch_size)
        _check(isinstance(num_workers, int) and num_workers >= 0, "num_workers", "an integer >= 0", num_workers)
        _check(isinstance(image_size, int) and image_size >= 8, "image_size", "an integer >= 8", image_size)
        _check(channels in (1, 3), "channels", "1 (gray) or 3 (RGB)", channels)
        _check(on_bad_recording in ("error", "skip"), "on_bad_recording", "'error' or 'skip'", on_bad_recording)
        self.window, self.stride = window, stride or window
        self.batch_size, self.num_workers = batch_size, num_workers
        self.image_size, self._channels = image_size, channels
        self.mean = _per_channel(mean, channels, "mean")
        self.std = _per_channel(std, channels, "std")
        _check(all(s > 0 for s in self.std), "std", "values > 0", std)
        self.cache_dir, self.workers, self.on_bad_recording = cache_dir, max(1, int(workers)), on_bad_recording
        self.predict_videos = [str(Path(v).expanduser()) for v in (predict_videos or [])]
        self.seed = seed
        spec = {"name": "face_crop", **(faces or {})}  # built now: a typo in data.faces fails before any data
        self.faces: FacePipeline = TRANSFORMS.build(spec, "data.faces", size=image_size, grayscale=channels == 1)
        if self.faces.size != image_size:
            raise DataError(f"data.faces.size: {self.faces.size} differs from data.image_size {image_size}")
        if self.faces.grayscale != (channels == 1):
            raise DataError(f"data.faces.grayscale: {self.faces.grayscale} contradicts data.channels {channels}")
        self._recordings: dict[str, list[Recording]] = {}
        self.skipped: dict[str, str] = {}  # source or recording -> reason (on_bad_recording: skip)

    # --- what subclasses provide -------------------------------------------------------------
    def sources(self) -> dict[str, list[Source]]:
        """The recordings of ``train``, ``val`` and ``test`` with their label aligners."""
        raise NotImplementedError

    # --- bookkeeping the builder and tasks read -------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(TARGETS)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self._channels

    def recordings(self, split: str) -> list[Recording]:
        """The recordings of a split (``predict``: ``predict_videos``, else the test split), loaded on first use."""
        if split == "predict" and self.predict_videos:
            self.setup("predict")
            return self._recordings["predict"]
        split = "test" if split == "predict" else split
        self._ensure((split,))
        return self._recordings[split]

    def bad(self, what: str, reason: str) -> None:
        """A bad recording: a one-line error, or counted under ``on_bad_recording: skip``."""
        if self.on_bad_recording == "error":
            hint = "" if "set data." in reason else ". Fix or remove it, or set data.on_bad_recording: skip"
            raise DataError(f"{reason}{hint}")
        self.skipped[what] = reason

    # --- Lightning hooks -----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Face tracks of the splits a stage needs (extracted once, cached), labels aligned to frames."""
        if stage == "predict" and self.predict_videos:
            if "predict" not in self._recordings:
                sources = [Source(_stem(v), v) for v in self.predict_videos]
                self._recordings["predict"] = self._load({"predict": sources})["predict"]
            return
        self._ensure(STAGE_SPLITS.get(stage or "fit", SPLITS))

    def prepare_data(self) -> None:
        """Extract the needed face tracks on one process per node first; DDP ranks then read the cache."""
        fn = getattr(getattr(self.trainer, "state", None), "fn", None)
        self.setup(str(getattr(fn, "value", fn) or "fit"))

    def _ensure(self, splits: tuple[str, ...]) -> None:
        todo = [s for s in splits if s not in self._recordings]
        if not todo:
            return
        plan = self.sources()
        loaded = self._load({s: plan.get(s, []) for s in todo})
        for split in todo:
            if not loaded[split] and split != "test":  # a test split may be absent (predict-only data)
                raise DataError(f"{type(self).__name__}: the {split} split has no usable recordings")
            self._recordings[split] = loaded[split]

    def _load(self, plan: dict[str, list[Source]]) -> dict[str, list[Recording]]:
        videos = [s.path for ss in plan.values() for s in ss if not Path(s.path).is_dir()]
        folders = [s.path for ss in plan.values() for s in ss if Path(s.path).is_dir()]
        entries: dict[str, Path] = {}
        for cls, paths in ((FaceTrackCache, videos), (FolderTrackCache, folders)):
            if paths:
                entries.update(self._extract(cls, list(dict.fromkeys(paths))))
        out: dict[str, list[Recording]] = {}
        for split, sources in plan.items():
            out[split] = []
            for source in sources:
                if source.path in entries:
                    rec = self._recording(source, entries[source.path])
                    if rec is not None:
                        out[split].append(rec)
        if self.skipped:
            first = next(iter(self.skipped.items()))
            print(f"Skipped {len(self.skipped)} recordings (first: {first[1]})", file=sys.stderr, flush=True)
        return out

    def _extract(self, cls: type, paths: list[str]) -> dict[str, Path]:
        """Cache entries of the face tracks of ``paths``, extracting missing ones a few at a time."""
        for path in [p for p in paths if not Path(p).exists()]:
            self.bad(path, f"Video not found: {path} (expected a video file or a folder of frames)")
        paths = [p for p in paths if Path(p).exists()]
        cache = cls(self.faces, self.cache_dir, self.workers, on_bad_video="skip")  # our policy applies below
        missing = [p for p in paths if not cache.cache.path(cache.label, cache.parts(p)).is_file()]
        step = max(self.extract_chunk, self.workers)  # build() holds a chunk's tracks in memory
        for i in range(0, len(missing), step):
            cache.build(missing[i : i + step], desc=f"Face tracks ({type(self).__name__})")
        for path, reason in cache.skipped.items():
            self.bad(path, reason)
        found = {p: cache.cache.path(cache.label, cache.parts(p)) for p in paths if p not in cache.skipped}
        return {p: entry for p, entry in found.items() if entry.is_file()}

    def _recording(self, source: Source, entry: Path) -> Recording | None:
        with np.load(entry, allow_pickle=False) as z:
            status, track_fps = z["status"], float(z["fps"])
        fps = float(source.fps or track_fps)
        if fps <= 0:
            raise DataError(f"{source.path}: unknown frame rate; set the datamodule's fps")
        labels = np.full((len(status), self.num_classes), np.nan, np.float32)
        if source.align is not None:
            try:
                labels = np.asarray(source.align(len(status), fps), dtype=np.float32)
            except DataError as err:
                self.bad(source.path, str(err))
                return None
        valid = status <= 1  # face, or the whole frame under fallback: frame (emoframe.faces.tracks.STATUSES)
        crops = NpzMember(entry, "crops")
        return Recording(source.name, source.path, crops, valid, labels, fps, source.extra)

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

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        recordings = self.recordings("test")
        if not any(np.isfinite(r.labels).any() for r in recordings):
            raise DataError(
                f"{type(self).__name__}: the test split has no labelled recordings (AVEC 2016 withholds the test "
                "gold standard): set data.resplit to test on labelled ones, or run `emoframe predict`"
            )
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        if not len(dataset):
            raise DataError(f"{type(self).__name__}: no {split} windows (no recording with labelled frames)")
        sampler = None
        trainer = self.trainer
        if not shuffle and trainer is not None and getattr(trainer, "world_size", 1) > 1:
            kwargs = getattr(trainer, "distributed_sampler_kwargs", None) or {}
            replicas = kwargs.get("num_replicas", trainer.world_size)
            rank = kwargs.get("rank", trainer.global_rank)
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _stem(path: str) -> str:
    p = Path(path)
    return p.name if p.is_dir() else p.stem


def _per_channel(value: float | list[float], channels: int, key: str) -> list[float]:
    values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
    _check(len(values) == channels, key, f"one number or {channels} (one per channel)", value)
    return values


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise DataError(f"data.{key}: expected {expected}, got {value!r}")
