"""Video clip classification data: one emotion label per clip, a fixed number of face crops per clip.

Clips come from class folders (``<split>/<class>/<clip>.<ext>``, or ``<clip>/`` holding frame images);
``emoframe.data.afew`` gives the folder layouts (``afew``, ``video_folder``). The faces are the face-track
cache's (the pipeline runs once over every frame of a clip; ``emoframe.data.video.recordings`` does the loading),
so sampling only picks crops. Every split yields the tuple

    frames  float32 (B, T, C, H, W)  normalised crops in time order; zeros where ``mask`` is False
    mask    bool    (B, T)           True for the clip's sampled frames, False for padding (always at the end)
    label   int64   (B,)             index into ``emoframe.labels.EMOTIONS``; -1 for unlabelled predict clips
    clip    int64   (B,)             index into ``datamodule.recordings(split)`` (name, path, frame count)

``T`` is ``clip.frames``. Only frames with a crop are sampled (a face, or the whole frame under
``faces.fallback: frame``); a clip with fewer such frames is padded. ``sampling``:

* ``uniform``: ``frames`` frames spread evenly over the clip (training: a random frame in each of
  ``frames`` equal segments; evaluation: each segment's middle frame);
* ``all``: consecutive frames, up to ``frames``; a longer clip gives a window of ``frames`` consecutive
  frames (training: at a random start; evaluation: the middle of the clip);
* ``stride``: one frame every ``stride_s`` seconds of video (fps-aware), up to ``frames`` of them
  (training: a random start; evaluation: centred); picks that fell on a dropped frame are left out.

``clip.transforms`` (registered in ``TRANSFORMS``, e.g. ``frame_shuffle``) run on training clips only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Unpack

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from emoframe.data.common import (
    MOVED_KEYS,
    FrameCount,
    FrameRate,
    Section,
    check,
    check_class_map,
    class_index,
    crops_to_tensor,
    is_count,
    normaliser,
)
from emoframe.data.common import section as parse_section
from emoframe.data.frame_sources import FrameSource, clip_frame_source
from emoframe.data.video.base import VideoDataModule, VideoOptions
from emoframe.data.video.recordings import OnBad, Recording, Source, is_video, stem
from emoframe.errors import DataError
from emoframe.files.decode import is_image_name
from emoframe.files.lazy import NpzMember
from emoframe.files.video import VIDEO_SUFFIXES
from emoframe.labels import EMOTIONS
from emoframe.registry import TRANSFORMS, RecipeError

Sampling = Literal["uniform", "all", "stride"]
SAMPLINGS = ("uniform", "all", "stride")
UNLABELLED = -1


class ClipTransform:
    """A transform of one clip in training: ``(frames (T, C, H, W), mask (T,)) -> (frames, mask)``."""

    def __call__(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


@TRANSFORMS.register("frame_shuffle")
class FrameShuffle(ClipTransform):
    """Shuffle the order of a clip's real frames with probability ``p`` (Knyazev et al.'s LSTM augmentation).

    Only frames where ``mask`` is True move, among themselves; padding stays where it is (at the end).
    Knyazev et al. report 46.48 -> 50.39 validation accuracy on AFEW: a clip is closer to a set of frames
    than to a sequence.
    """

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise RecipeError(f"frame_shuffle.p: expected a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.p < 1.0 and float(torch.rand(())) >= self.p:
            return frames, mask
        real = torch.nonzero(mask, as_tuple=True)[0]
        frames = frames.clone()
        frames[real] = frames[real[torch.randperm(len(real))]]
        return frames, mask


def sample_frames(
    valid: np.ndarray, frames: int, sampling: str, step: int = 1, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Ascending frame indices (at most ``frames``) of one clip with validity ``valid``; ``rng`` jitters
    them (training), ``None`` picks the same ones every time (evaluation)."""
    candidates = np.flatnonzero(valid)
    n = len(candidates)
    if sampling == "stride":
        total, span = len(valid), frames * step
        if total > span:
            start = int(rng.integers(0, total - span + 1)) if rng is not None else (total - span) // 2
        else:
            start = int(rng.integers(0, min(step, total))) if rng is not None else 0
        picked = np.arange(start, total, step)[:frames]
        return picked[valid[picked]]
    if n <= frames:
        return candidates
    if sampling == "all":
        start = int(rng.integers(0, n - frames + 1)) if rng is not None else (n - frames) // 2
        return candidates[start : start + frames]
    edges = np.linspace(0.0, n, frames + 1)
    offsets = rng.random(frames) if rng is not None else np.full(frames, 0.5)
    positions = np.floor(edges[:-1] + offsets * np.diff(edges)).astype(int).clip(0, n - 1)
    return candidates[positions]


def read_frames(crops: np.ndarray | NpzMember, indices: np.ndarray) -> np.ndarray:
    """The crops at ``indices``; a cache entry is mapped only for this read, so thousands of clips never
    hold thousands of open maps (AFEW has 1,156 labelled clips)."""
    if isinstance(crops, NpzMember):
        order = "F" if crops.fortran else "C"
        mapped = np.memmap(crops.path, crops.dtype, "r", crops.offset, crops.shape, order=order)
        out = np.array(mapped[indices])
        del mapped
        return out
    return np.asarray(crops[indices])


class ClipDataset(Dataset[tuple[Any, ...]]):
    """One item per clip: ``(frames (T, C, H, W), mask (T,), label, clip index)``, padded to ``frames``."""

    def __init__(
        self,
        recordings: list[Recording],
        frames: int,
        sampling: str,
        stride_s: float | None,
        mean: list[float],
        std: list[float],
        train: bool = False,
        transforms: list[ClipTransform] | None = None,
    ) -> None:
        self.recordings = recordings
        self.frames, self.sampling, self.stride_s = frames, sampling, stride_s
        self.mean = normaliser(mean)
        self.std = normaliser(std)
        self.train = train
        self.transforms = list(transforms or []) if train else []

    def __len__(self) -> int:
        return len(self.recordings)

    def indices(self, index: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The frames of clip ``index`` an item shows (``rng``: training jitter)."""
        rec = self.recordings[index]
        step = max(1, round(self.stride_s * rec.fps)) if self.sampling == "stride" and self.stride_s else 1
        return sample_frames(rec.valid, self.frames, self.sampling, step, rng)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        rec = self.recordings[index]
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()))) if self.train else None
        picked = self.indices(index, rng)
        x = crops_to_tensor(read_frames(rec.crops, picked), self.mean, self.std)
        n = len(picked)
        frames = torch.zeros((self.frames, *x.shape[1:]), dtype=torch.float32)
        frames[:n] = x
        mask = torch.zeros(self.frames, dtype=torch.bool)
        mask[:n] = True
        for transform in self.transforms:
            frames, mask = transform(frames, mask)
        return frames, mask, int(rec.extra.get("label", UNLABELLED)), index


@dataclass(frozen=True)
class ClipSettings:
    """``data.clip``: frames per clip, how they are picked (``sampling``, ``stride_s`` seconds apart for
    ``stride``) and the training clip transforms (``transforms``, e.g. ``[{name: frame_shuffle}]``)."""

    frames: FrameCount = 16
    sampling: Sampling = "uniform"
    stride_s: float | None = None
    transforms: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        check(is_count(self.frames, 1), "clip.frames", ">= 1", self.frames)
        check(self.sampling in SAMPLINGS, "clip.sampling", "one of " + ", ".join(SAMPLINGS), self.sampling)
        ok = self.sampling != "stride" or (self.stride_s or 0) > 0
        check(ok, "clip.stride_s", "seconds > 0 with sampling: stride", self.stride_s)

    def build_transforms(self) -> list[ClipTransform]:
        """The registered clip transforms of ``transforms``, built now so a typo fails before any data."""
        out: list[ClipTransform] = []
        for i, spec in enumerate(self.transforms or []):
            where = f"data.clip.transforms[{i}]"
            transform = TRANSFORMS.build(spec, where)
            if not isinstance(transform, ClipTransform):
                raise RecipeError(f"{where}: '{spec.get('name', spec)}' is not a clip transform (e.g. frame_shuffle)")
            out.append(transform)
        return out


class ClipDataModule(VideoDataModule):
    """Base class: clips in ``<split folder>/<class>/<clip>`` -> face tracks (cached) -> sampled, padded clips.

    ``folders`` (split -> folder under ``root``) start from the class's ``default_folders``; ``layout`` (the
    expected layout, for error lines) is the subclass's. ``class_map`` maps class folder names onto
    ``EMOTIONS`` (``null`` drops a folder); names that are emotions (any case) need no entry. ``clip:
    {frames, sampling, stride_s, transforms}``; frame folders play at ``fps``. ``on_bad_video: skip`` counts
    and reports unreadable, truncated or empty clips, non-video files and unknown class folders instead of
    stopping at the first. A clip none of whose frames has a crop (``faces.fallback: drop`` and no face
    found) is always skipped and counted: the file is fine, there is just nothing to show the model. The
    other options (``loader``, ``image``, ``faces``, ``cache_dir``, ``workers``, ``predict_videos``) are
    ``VideoDataModule``'s.
    """

    moved_keys: ClassVar[dict[str, str]] = {
        **MOVED_KEYS,
        "frames": "clip.frames",
        "sampling": "clip.sampling",
        "stride_s": "clip.stride_s",
        "clip_transforms": "clip.transforms",
        "train_split": "folders.train",
        "val_split": "folders.val",
        "test_split": "folders.test",
    }
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "loader": {"batch_size": 8, "num_workers": 2},
        "image": {"size": 48, "channels": 1},
    }
    default_folders: ClassVar[dict[str, str | None]] = {"train": "train", "val": "val", "test": "test"}
    extract_chunk = 64  # clips are short: 64 five-second clips of 150 px RGB crops are about 0.5 GB
    require_face = True

    def __init__(
        self,
        root: str,
        folders: dict[str, str | None] | None = None,
        class_map: dict[str, str | None] | None = None,
        clip: Section = None,
        fps: FrameRate = 25.0,
        on_bad_video: OnBad = "error",
        **options: Unpack[VideoOptions],
    ) -> None:
        self.clip = parse_section(ClipSettings, clip, "clip")
        check(fps > 0, "fps", "a frame rate > 0 (used for frame folders)", fps)
        self.root = Path(root).expanduser()
        self.split_dirs = self.split_folders(folders)
        self.class_map = check_class_map(class_map)
        self.frames, self.sampling, self.stride_s = self.clip.frames, self.clip.sampling, self.clip.stride_s
        self.fps = float(fps)
        self.clip_transforms = self.clip.build_transforms()
        super().__init__(on_bad=on_bad_video, policy_key="on_bad_video", **options)
        self.on_bad_video = on_bad_video
        if not self.predict_videos:  # predicting on given videos needs no data set
            self.check_layout()

    @property
    def frames_per_item(self) -> int:
        return self.frames

    # --- layout --------------------------------------------------------------------------------
    def split_folders(self, folders: dict[str, str | None] | None) -> dict[str, str]:
        """Split -> folder name: the class's defaults, then ``data.folders``; a null test folder is val's."""
        unknown = sorted(set(folders or {}) - {"train", "val", "test"})
        if unknown:
            raise DataError(f"data.folders.{unknown[0]}: unknown split; expected train, val and test")
        merged = {**self.default_folders, **(folders or {})}
        for split in ("train", "val"):
            check(isinstance(merged[split], str), f"folders.{split}", "a folder name", merged[split])
        return {"train": str(merged["train"]), "val": str(merged["val"]), "test": str(merged["test"] or merged["val"])}

    @property
    def layout(self) -> str:
        """The expected layout, for error lines."""
        return f"{self.root}/<split>/<class>/<clip>.<ext>"

    def check_layout(self) -> None:
        """One line saying what is expected where, when a split folder is missing."""
        expected = f"expected {self.layout}"
        if not self.root.is_dir():
            raise DataError(f"{self.dataset_name} not found at {self.root}: {expected}")
        for split, folder in self.split_dirs.items():
            if not (self.root / folder).is_dir():
                found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
                found_line = ", ".join(found) or "none"
                raise DataError(f"No {split} folder '{folder}' in {self.root}: {expected}; found folders {found_line}")

    @property
    def dataset_name(self) -> str:
        return type(self).__name__.removesuffix("DataModule")

    def label_of(self, folder: Path) -> int | None:
        """The EMOTIONS index of a class folder, None if mapped to null; an unknown name is a bad input."""
        try:
            return class_index(folder.name, self.class_map)
        except KeyError:
            name = folder.name
            self.bad(
                str(folder),
                f"Class folder '{name}' in {folder.parent} is not an emotion: expected one of "
                f"{', '.join(EMOTIONS)} (any case), or map it with data.class_map: {{{name}: <emotion or null>}}",
            )
            return None

    def clip_sources(self, split: str) -> list[Source]:
        """The clips of one split folder, each a video file or a folder of frame images."""
        base = self.root / self.split_dirs[split]
        sources: list[Source] = []
        for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            label = self.label_of(folder)
            if label is None:
                continue
            for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
                if path.is_dir():
                    sources.append(Source(f"{folder.name}/{path.name}", str(path), None, self.fps, {"label": label}))
                elif is_video(path):
                    sources.append(Source(f"{folder.name}/{path.stem}", str(path), None, None, {"label": label}))
                else:
                    self.bad(
                        str(path),
                        f"{path}: not a video ({', '.join(VIDEO_SUFFIXES[:4])}, ...) or a folder of frame images",
                    )
        if not sources and split != "test":
            raise DataError(f"No clips in {base}: expected {self.layout}")
        return sources

    def sources(self) -> dict[str, list[Source]]:
        self.check_layout()
        return {split: self.clip_sources(split) for split in self.split_dirs}

    def predict_sources(self) -> list[Source]:
        paths = expand_clips(self.predict_videos)
        return [Source(stem(p), p, None, self.fps if Path(p).is_dir() else None, {"label": UNLABELLED}) for p in paths]

    # --- bookkeeping the builder, tasks and losses read ---------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(EMOTIONS)

    @property
    def train_label_counts(self) -> np.ndarray:
        """Clips per class in the train split (for class-weighted losses)."""
        labels = [int(r.extra["label"]) for r in self.recordings("train")]
        return np.bincount(np.asarray(labels, dtype=np.int64), minlength=self.num_classes)

    # --- loading -------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if stage == "predict" and self.predict_videos and not self._recordings["predict"]:
            given = len(expand_clips(self.predict_videos))
            raise DataError(f"No usable clip among data.predict_videos ({given} given)")

    # --- datasets and loaders ------------------------------------------------------------------
    def frame_source(self, split: str) -> FrameSource:
        """Every frame with a face crop of each clip of ``split``, normalised (``emoframe extract``)."""
        return clip_frame_source(self.recordings(split), self.mean, self.std, read_frames, UNLABELLED)

    def dataset(self, split: str) -> ClipDataset:
        train = split == "train"
        return ClipDataset(
            self.recordings(split),
            frames=self.frames,
            sampling=self.sampling,
            stride_s=self.stride_s,
            mean=self.mean,
            std=self.std,
            train=train,
            transforms=self.clip_transforms if train else None,
        )

    def test_dataloader(self) -> DataLoader:
        recordings = self.recordings("test")
        if not recordings or any(int(r.extra.get("label", UNLABELLED)) < 0 for r in recordings):
            raise DataError(
                f"{self.dataset_name}: the test split has no labelled clips; run `emoframe predict` on unlabelled ones"
            )
        return self._loader("test", shuffle=False)


def expand_clips(paths: list[str]) -> list[str]:
    """Predict inputs: video files and frame folders as given; a folder holding no images but videos
    (e.g. EmotiW's unlabelled Test_AFEW/) stands for every video under it, in name order."""
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if p.is_dir() and not any(is_image_name(f.name) for f in p.iterdir()):
            videos = sorted(str(f) for f in p.rglob("*") if is_video(f) and not f.name.startswith("."))
            if not videos:
                raise DataError(f"data.predict_videos: {p} holds neither frame images nor videos")
            out += videos
        else:
            out.append(str(p))
    return out
