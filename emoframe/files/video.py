"""Reading video frames with decord, with one clear error for a file that is not a readable video.

decord's own errors carry its C++ log text (``[12:00:00] /src/video/...cc:218: Check failed: avcodec_send_packet(...)
>= 0 (-1094995529 vs. 0) Thread worker: ...``) and ffmpeg prints its complaints straight to stderr; both become
one ``DataError`` line naming the file (ffmpeg's logging is set to quiet, and decord's own log line of a failed
open is kept off the terminal).
"""

from __future__ import annotations

import contextlib
import os
import re
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


_LOG_PREFIX = re.compile(r"\[\d{2}:\d{2}:\d{2}\] \S+?:\d+: ")
"""The ``[hh:mm:ss] file.cc:line: `` prefixes of decord's (dmlc's) log text."""


def decoder_reason(err: BaseException, path: str | Path) -> str:
    """decord's error as a short reason without its C++ log prefixes and check expressions."""
    text = " ".join(_LOG_PREFIX.sub("", str(err)).split())
    if text.startswith("Error reading"):
        return "not a video container decord can open (truncated, empty or another format)"
    if "Check failed:" in text:
        detail = re.search(r"\)(?: \([^()]*\))? ([^()]*)$", text.rsplit("Check failed:", 1)[1])
        tail = detail.group(1).strip().rstrip(".") if detail else ""
        return "corrupt video data" + (f" ({tail})" if tail else "")
    return (text.replace(str(path), "the file") or type(err).__name__)[:200]


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment: decord logs a failed open from C++, past Python's sys.stderr."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_video(path: str | Path):
    """A decord ``VideoReader`` (RGB frames), or ``DataError`` naming the file and why it is unusable."""
    import decord

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Video not found: {path}")
    decord.logging.set_level(decord.logging.QUIET)  # ffmpeg's own lines ("moov atom not found"): the error says it
    try:
        with _native_stderr_quiet():
            reader = decord.VideoReader(str(path), num_threads=1)
    except (decord.DECORDError, RuntimeError) as err:
        raise DataError(f"Cannot read video {path}: {decoder_reason(err, path)}") from None
    if len(reader) == 0:
        raise DataError(f"Video {path} has no frames")
    return reader


def video_info(path: str | Path) -> VideoInfo:
    reader = open_video(path)
    try:
        height, width = reader[0].shape[:2]
    except Exception as err:  # decord's DECORDError or RuntimeError for corrupt data
        raise DataError(f"Cannot decode frame 0 of {path}: {decoder_reason(err, path)}") from None
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
            reason = decoder_reason(err, path)
            raise DataError(f"Cannot decode frames {chunk[0]}..{chunk[-1]} of {path}: {reason}") from None
        yield from zip(chunk, frames, strict=True)
