"""Sources -> face-track cache -> recordings: what every video datamodule (windows or clips) has one of.

A ``Source`` is a recording before its faces are extracted (a video file or a folder of frames, and its
label aligner); ``Recordings`` runs the face pipeline over the sources through the face-track caches
(``emoframe.faces.tracks`` for videos, ``emoframe.faces.folders`` for frame folders), memory-maps the crops
from the cache entries (a RECOLA-sized set does not fit in memory) and gives ``Recording`` objects. It
holds the bad-input policy (``on_bad_recording``/``on_bad_video``: ``error`` stops with one line,
``skip`` counts) and the counts (``skipped``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emoframe.errors import DataError
from emoframe.faces.folders import FolderTrackCache
from emoframe.faces.pipeline import FacePipeline
from emoframe.faces.tracks import FaceTrack, FaceTrackCache
from emoframe.files.lazy import NpzMember
from emoframe.files.video import VIDEO_SUFFIXES
from emoframe.registry import TRANSFORMS

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
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. AFEW-VA's annotated landmarks, a clip's label


@dataclass
class Recording:
    """One recording ready for windows or clips: crops (memory-mapped), per-frame validity, labels, frame rate."""

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


def build_faces(faces: dict[str, Any] | None, size: int, channels: int) -> FacePipeline:
    """The ``face_crop`` pipeline of ``data.faces`` (size and grayscale follow ``data.image``); built at
    construction, so a typo in data.faces fails before any data is read."""
    spec = {"name": "face_crop", **(faces or {})}
    pipeline: FacePipeline = TRANSFORMS.build(spec, "data.faces", size=size, grayscale=channels == 1)
    if pipeline.size != size:
        raise DataError(f"data.faces.size: {pipeline.size} differs from data.image.size {size}")
    if pipeline.grayscale != (channels == 1):
        raise DataError(f"data.faces.grayscale: {pipeline.grayscale} contradicts data.image.channels {channels}")
    return pipeline


class Recordings:
    """Sources -> face tracks (extracted once, cached) -> ``Recording`` objects, under one bad-input policy.

    ``policy_key`` names the recipe key of the policy in error lines (``on_bad_recording`` or
    ``on_bad_video``); ``chunk`` is how many videos one extraction round holds in memory (0.5 GB per
    RECOLA video; short clips allow more). ``require_face``: a recording none of whose frames has a crop is
    skipped and counted whatever the policy (the file is fine, there is just nothing to show a model).
    """

    def __init__(
        self,
        faces: FacePipeline,
        cache_dir: str | None,
        workers: int,
        on_bad: OnBad,
        policy_key: str,
        chunk: int,
        owner: str,
        require_face: bool = False,
    ) -> None:
        if on_bad not in ("error", "skip"):
            raise DataError(f"data.{policy_key}: expected 'error' or 'skip', got {on_bad!r}")
        self.faces, self.cache_dir, self.workers = faces, cache_dir, max(1, int(workers))
        self.on_bad, self.policy_key, self.chunk, self.owner = on_bad, policy_key, chunk, owner
        self.require_face = require_face
        self.skipped: dict[str, str] = {}  # source or recording -> reason (policy skip)

    def bad(self, what: str, reason: str) -> None:
        """A bad recording: a one-line error, or counted under the ``skip`` policy."""
        if self.on_bad == "error":
            hint = "" if "set data." in reason else f". Fix or remove it, or set data.{self.policy_key}: skip"
            raise DataError(f"{reason}{hint}")
        self.skipped[what] = reason

    def load(self, plan: dict[str, list[Source]], targets: int) -> dict[str, list[Recording]]:
        """The recordings of each split of ``plan``, with ``targets`` label columns (NaN when unlabelled)."""
        videos = [s.path for ss in plan.values() for s in ss if not Path(s.path).is_dir()]
        folders = [s.path for ss in plan.values() for s in ss if Path(s.path).is_dir()]
        entries: dict[str, Path | FaceTrack] = {}
        for cls, paths in ((FaceTrackCache, videos), (FolderTrackCache, folders)):
            if paths:
                entries.update(self._extract(cls, list(dict.fromkeys(paths))))
        out: dict[str, list[Recording]] = {}
        for split, sources in plan.items():
            out[split] = []
            for source in sources:
                if source.path in entries:
                    rec = self._recording(source, entries[source.path], targets)
                    if rec is not None:
                        out[split].append(rec)
        if self.skipped:
            first = next(iter(self.skipped.items()))
            print(f"Skipped {len(self.skipped)} recordings (first: {first[1]})", file=sys.stderr, flush=True)
        return out

    def _extract(self, cls: type, paths: list[str]) -> dict[str, Path | FaceTrack]:
        """Cache entries of the face tracks of ``paths``, extracting missing ones a few at a time; without a
        writable cache folder, the tracks themselves (all held in memory)."""
        for path in [p for p in paths if not Path(p).exists()]:
            self.bad(path, f"Video not found: {path} (expected a video file or a folder of frames)")
        paths = [p for p in paths if Path(p).exists()]
        cache = cls(self.faces, self.cache_dir, self.workers, on_bad_video="skip")  # our policy applies below
        missing = [p for p in paths if not cache.cache.path(cache.label, cache.parts(p)).is_file()]
        step = max(self.chunk, self.workers)  # build() holds a chunk's tracks in memory
        for i in range(0, len(missing), step):
            cache.build(missing[i : i + step], desc=f"Face tracks ({self.owner})")
        for path, reason in cache.skipped.items():
            self.bad(path, reason)
        found: dict[str, Path | FaceTrack] = {}
        for p in paths:
            entry = cache.cache.path(cache.label, cache.parts(p))
            if p in cache.memory:
                found[p] = cache.memory[p]
            elif p not in cache.skipped and entry.is_file():
                found[p] = entry
        return found

    def _recording(self, source: Source, entry: Path | FaceTrack, targets: int) -> Recording | None:
        if isinstance(entry, FaceTrack):
            status, track_fps, crops = entry.status, float(entry.fps), entry.crops
        else:
            with np.load(entry, allow_pickle=False) as z:
                status, track_fps = z["status"], float(z["fps"])
            crops = NpzMember(entry, "crops")
        fps = float(source.fps or track_fps)
        if fps <= 0:
            raise DataError(f"{source.path}: unknown frame rate; set the datamodule's fps")
        labels = np.full((len(status), targets), np.nan, np.float32)
        if source.align is not None:
            try:
                labels = np.asarray(source.align(len(status), fps), dtype=np.float32)
            except DataError as err:
                self.bad(source.path, str(err))
                return None
        valid = status <= 1  # face, or the whole frame under fallback: frame (emoframe.faces.tracks.STATUSES)
        rec = Recording(source.name, source.path, crops, valid, labels, fps, source.extra)
        if self.require_face and not rec.valid.any():
            reason = f"{source.path}: no face in any of its {len(rec)} frames (faces.fallback: drop leaves nothing)"
            self.skipped[source.path] = reason  # always counted, never fatal: the file itself is fine
            print(f"Skipping {reason}", file=sys.stderr, flush=True)
            return None
        return rec


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def stem(path: str) -> str:
    """A recording's name from its path: a folder's name, a file's stem."""
    p = Path(path)
    return p.name if p.is_dir() else p.stem
