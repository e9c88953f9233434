"""The face-track cache: the face pipeline run once per video, its aligned crops kept on disk.

One entry per (video content, pipeline settings), written atomically, so an extraction that is killed
resumes at the first video without an entry and never reads a half-written one. A cache folder that cannot
be written (read-only, forbidden) degrades to no cache: one warning line, and the tracks of this run are kept
in memory (``FaceTrackCache.memory``) instead. Every frame keeps its
place: frames without a usable face have status ``fallback`` (the whole frame, resized), ``dropped``
or ``bad`` (zeros), so labels stay aligned by frame index and sequence models can mask them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from emoframe.errors import DataError
from emoframe.faces.pipeline import FacePipeline
from emoframe.files.cache import ArrayCache, file_fingerprint
from emoframe.files.processes import die_with_parent
from emoframe.files.video import iter_frames, open_video

TRACK_VERSION = 1
STATUSES = ("face", "fallback", "dropped", "bad")


@dataclass
class FaceTrack:
    """One video's faces: ``crops`` (T, S, S[, 3]) uint8, per-frame ``status`` codes (index in STATUSES),
    ``boxes`` (T, 4) and ``landmarks`` (T, 68, 2) in frame pixels (NaN without a face), ``fps``."""

    crops: np.ndarray
    status: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    fps: float
    seconds: float  # time the extraction took (0 when read from the cache)

    @property
    def face_rate(self) -> float:
        return float((self.status == 0).mean()) if len(self.status) else 0.0

    @property
    def valid(self) -> np.ndarray:
        """Frames with a crop to show a model (a face, or the whole frame under ``fallback: frame``)."""
        return self.status <= 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "crops": self.crops,
            "status": self.status,
            "boxes": self.boxes,
            "landmarks": self.landmarks,
            "fps": np.float64(self.fps),
            "seconds": np.float64(self.seconds),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> FaceTrack:
        return cls(a["crops"], a["status"], a["boxes"], a["landmarks"], float(a["fps"]), 0.0)


def extract_track(video: str | Path, pipeline: FacePipeline, batch: int = 32) -> FaceTrack:
    """Run the pipeline over every frame of ``video``, following one face (``keep`` as configured)."""
    t0 = time.perf_counter()
    reader = open_video(video)
    fps = float(reader.get_avg_fps())
    n = len(reader)
    del reader
    frames = (frame for _, frame in iter_frames(video, batch=batch))
    return collect_track(pipeline, frames, n, fps, t0)


def collect_track(pipeline: FacePipeline, frames: Iterable[np.ndarray], n: int, fps: float, t0: float) -> FaceTrack:
    """The pipeline over ``n`` frames, one result each, gathered into a ``FaceTrack`` (timed from ``t0``)."""
    shape = (pipeline.size, pipeline.size) if pipeline.grayscale else (pipeline.size, pipeline.size, 3)
    crops = np.zeros((n, *shape), np.uint8)
    status = np.zeros(n, np.uint8)
    boxes = np.full((n, 4), np.nan, np.float32)
    landmarks = np.full((n, 68, 2), np.nan, np.float32)
    for i, result in enumerate(pipeline.process_frames(frames)):
        status[i] = STATUSES.index(result.status)
        if result.crop is not None:
            crops[i] = result.crop
        if result.box is not None:
            boxes[i] = result.box
        if result.landmarks is not None:
            landmarks[i] = result.landmarks
    return FaceTrack(crops, status, boxes, landmarks, fps, time.perf_counter() - t0)


def _track_worker(
    video: str,
    pipeline: FacePipeline,
    cache_dir: str | None,
    parts: list,
    extract: Callable[[str, FacePipeline], FaceTrack] = extract_track,
    label: str = "face-track",
    store: bool = True,
) -> tuple[str, str | None, FaceTrack | None]:
    """Extract one video (in a worker process) and store it in the cache, or, when the cache cannot be written
    (``store`` false, or the write fails), hand it back; returns (video, error line or None, track or None)."""
    try:
        track = extract(video, pipeline)
    except DataError as err:
        return video, str(err), None
    if store and ArrayCache(cache_dir).put(label, parts, track.arrays()) is not None:
        return video, None, None
    return video, None, track


class FaceTrackCache:
    """Face tracks of many videos, computed once in parallel worker processes, resumable.

    ``on_bad_video: error`` stops at the first unreadable video with its one-line reason; ``skip``
    leaves it out, counts it and reports the count. Subclasses change what a source is (a video by
    default; ``emoframe.faces.folders`` reads image-sequence folders) through ``label``, ``extract``
    and ``parts``.
    """

    label = "face-track"
    extract = staticmethod(extract_track)

    def __init__(
        self,
        pipeline: FacePipeline,
        cache_dir: str | Path | None = None,
        workers: int = 1,
        on_bad_video: Literal["error", "skip"] = "error",
        progress: bool = True,
    ) -> None:
        self.pipeline = pipeline
        self.cache = ArrayCache(cache_dir)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.workers = max(1, int(workers))
        self.on_bad_video = on_bad_video
        self.progress = progress
        self.skipped: dict[str, str] = {}
        self.memory: dict[str, FaceTrack] = {}  # tracks this run could not store (an unwritable cache folder)

    def parts(self, video: str | Path) -> list:
        return [TRACK_VERSION, file_fingerprint(video), self.pipeline.settings()]

    def get(self, video: str | Path) -> FaceTrack | None:
        """The cached (or, without a writable cache, in-memory) track of one video, or None if never extracted."""
        if str(video) in self.memory:
            return self.memory[str(video)]
        hit = self.cache.get(self.label, self.parts(video))
        return FaceTrack.from_arrays(hit) if hit is not None else None

    def build(self, videos: Sequence[str | Path], desc: str = "Face tracks") -> dict[str, FaceTrack]:
        """Tracks of all ``videos`` (str path -> track), extracting the missing ones; bad ones per policy."""
        videos = [str(v) for v in videos]
        todo = [v for v in videos if v not in self.skipped and self.get(v) is None]
        t0 = time.perf_counter()
        if todo:
            store = self.cache.writable()  # else one warning line, and the tracks come back to this process
            jobs = [(v, self.pipeline, self.cache_dir, self.parts(v), self.extract, self.label, store) for v in todo]
            with tqdm(total=len(todo), desc=desc, unit="video", disable=not self.progress, leave=False) as bar:
                if self.workers == 1:
                    for job in jobs:
                        self._done(*_track_worker(*job))
                        bar.update()
                else:
                    with ProcessPoolExecutor(self.workers, initializer=die_with_parent) as pool:
                        futures = [pool.submit(_track_worker, *job) for job in jobs]
                        for future in as_completed(futures):
                            self._done(*future.result())
                            bar.update()
        tracks = {v: t for v in videos if v not in self.skipped and (t := self.get(v)) is not None}
        self._report(tracks, len(todo), time.perf_counter() - t0, len(videos))
        return tracks

    def _done(self, video: str, error: str | None, track: FaceTrack | None = None) -> None:
        if track is not None:
            self.memory[video] = track
        if error is None:
            return
        if self.on_bad_video == "error":
            raise DataError(f"{error}. Fix or remove it, or set on_bad_video: skip")
        self.skipped[video] = error

    def _report(self, tracks: dict[str, FaceTrack], extracted: int, seconds: float, total: int) -> None:
        frames = sum(len(t.status) for t in tracks.values())
        faces = sum(int((t.status == 0).sum()) for t in tracks.values())
        line = f"Face tracks: {len(tracks)} of {total} videos, faces in {faces} of {frames} frames"
        if frames:
            line += f" ({100.0 * faces / frames:.1f}%)"
        if extracted:
            line += f"; extracted {extracted} in {seconds:.1f} s"
        if self.skipped:
            first = next(iter(self.skipped.values()))
            line += f"; skipped {len(self.skipped)} unreadable (first: {first})"
        print(line, file=sys.stderr, flush=True)
