"""Reading video frames with decord, with one clear error for a file that is not a readable video."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoframe.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frames: int
    fps: float
    width: int
    height: int


def open_video(path: str | Path):
    """A decord ``VideoReader`` (RGB frames), or ``DataError`` naming the file and why it is unusable."""
    import decord

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Video not found: {path}")
    try:
        reader = decord.VideoReader(str(path), num_threads=1)
    except (decord.DECORDError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"Cannot read video {path}: not a decodable video ({first[:200]})") from None
    if len(reader) == 0:
        raise DataError(f"Video {path} has no frames")
    return reader


def video_info(path: str | Path) -> VideoInfo:
    reader = open_video(path)
    height, width = reader[0].shape[:2]
    return VideoInfo(Path(path), len(reader), float(reader.get_avg_fps()), width, height)


def iter_frames(
    path: str | Path, indices: Sequence[int] | None = None, batch: int = 32
) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) for ``indices`` (default: every frame), decoded ``batch`` frames at a time.

    A frame that fails to decode mid-file (a truncated video) raises ``DataError`` with its index.
    """
    reader = open_video(path)
    wanted = list(range(len(reader))) if indices is None else [int(i) for i in indices]
    bad = [i for i in wanted if not 0 <= i < len(reader)]
    if bad:
        raise DataError(f"Frame {bad[0]} is beyond the {len(reader)} frames of {path}")
    for start in range(0, len(wanted), batch):
        chunk = wanted[start : start + batch]
        try:
            frames = reader.get_batch(chunk).asnumpy()
        except Exception as err:  # decord raises its own DECORDError or RuntimeError for corrupt data
            raise DataError(f"Cannot decode frames {chunk[0]}..{chunk[-1]} of {path}: {str(err)[:200]}") from None
        yield from zip(chunk, frames, strict=True)
