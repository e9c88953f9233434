"""Inputs -> frames: images, folders and globs of images, video files, cameras and stream URLs, and in-memory
pictures (the Python API), each frame with its source, frame index and time in seconds.

Video files are decoded with decord (``emoframe.files.video``), ``chunk`` frames at a time, optionally at a
reduced size (``decode_side``: the detector downscales to about that anyway, so decoding a 1080p film at full
size would be wasted work); live sources (a camera index, ``rtsp://``, ``http://`` MJPEG, ...) through OpenCV's
``VideoCapture``. ``every`` keeps one frame in N, ``fps`` about that many frames per second of the input.

A video's next chunk is decoded by a thread while the caller looks for faces in the current one
(``prefetched``): decord's decoding is a ctypes call, which releases the GIL, so it runs on the second core
beside dlib's detector, and at most one chunk waits (memory stays flat).
"""

from __future__ import annotations

import glob
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from emoframe.errors import DataError
from emoframe.files.decode import is_image_name
from emoframe.files.pictures import PictureTooLarge, open_picture
from emoframe.files.video import VIDEO_SUFFIXES, open_video

Kind = Literal["image", "video", "live"]
GLOB_CHARS = ("*", "?", "[")
T = TypeVar("T")


@dataclass
class Frame:
    """One picture to look at: ``image`` RGB uint8 (H, W, 3), or None when it could not be read (``error``)."""

    source: str
    index: int
    time_s: float
    image: np.ndarray | None
    error: str = ""
    scale: float = 1.0  # frame pixels -> the source's own pixels (a video decoded at a reduced size)


@dataclass
class Source:
    """One input: ``kind`` says how it is read; ``target`` is a path, a camera index, a URL or a picture."""

    kind: Kind
    name: str
    target: Any = None
    frames: int | None = None  # frames that will be looked at (after sampling), when known
    fps: float | None = None
    size: tuple[int, int] | None = None  # (width, height) of the source
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_video(self) -> bool:
        return self.kind in ("video", "live")


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video are looked at: one in ``every``, or about ``fps`` per second (not both)."""

    every: int = 1
    fps: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise DataError(f"--every: expected an integer >= 1, got {self.every!r}")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise DataError(f"--fps: expected a number of frames per second > 0, got {self.fps!r}")
        if self.fps is not None and self.every != 1:
            raise DataError("--every and --fps: give one of them, not both")

    def step(self, video_fps: float) -> float:
        """Frames of the input between two frames looked at (>= 1)."""
        if self.fps is not None and video_fps > 0:
            return max(1.0, video_fps / self.fps)
        return float(self.every)

    def indices(self, frames: int, video_fps: float) -> list[int]:
        step = self.step(video_fps)
        return sorted({min(frames - 1, round(k * step)) for k in range(max(1, math.ceil(frames / step)))})


def is_live_name(text: str) -> bool:
    """A camera index (``0``) or a URL with a scheme (``rtsp://``, ``http://``...)."""
    return text.isdigit() or "://" in text


def expand_inputs(inputs: Sequence[Any]) -> list[Source]:
    """Every input as sources: a folder (recursive) or glob gives its images and videos in sorted order.

    A path that does not exist, a glob or folder with nothing usable in it, and a file that is neither an
    image nor a video are one-line ``DataError``\\ s; in-memory pictures (numpy arrays, PIL images) are
    sources of their own, named ``array[i]``.
    """
    sources: list[Source] = []
    for i, item in enumerate(inputs):
        if isinstance(item, Path):
            item = str(item)
        if not isinstance(item, str):
            sources.append(Source("image", f"array[{i}]", _picture(item, f"input {i}")))
            continue
        if is_live_name(item) and not Path(item).exists():
            sources.append(Source("live", item, int(item) if item.isdigit() else item))
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _usable(p))
            if not found:
                raise DataError(f"Input folder {path} holds no images or videos (looked recursively)")
            sources += [_file_source(p) for p in found]
        elif path.is_file():
            if not _usable(path):
                raise DataError(
                    f"Input {path}: not an image ({', '.join(('.jpg', '.png', '...'))}) or a video "
                    f"({', '.join(VIDEO_SUFFIXES[:4])}, ...)"
                )
            sources.append(_file_source(path))
        elif any(c in item for c in GLOB_CHARS):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file() and _usable(Path(p)))
            if not found:
                raise DataError(f"Input glob {item!r} matches no images or videos")
            sources += [_file_source(p) for p in found]
        else:
            raise DataError(
                f"Input not found: {item} (expected an image, a folder or glob of images, a video file, "
                "a camera index or a stream URL)"
            )
    return sources


def _usable(path: Path) -> bool:
    return is_image_name(path.name) or path.suffix.lower() in VIDEO_SUFFIXES


def _file_source(path: Path) -> Source:
    kind: Kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"
    return Source(kind, str(path), path)


def _picture(item: Any, where: str) -> np.ndarray:
    """An in-memory picture as RGB uint8 (H, W, 3)."""
    from PIL import Image

    if isinstance(item, Image.Image):
        return np.asarray(item.convert("RGB"))
    array = np.asarray(item)
    if array.dtype.kind == "f":
        array = np.clip(array * (255.0 if float(np.nanmax(array)) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise DataError(
            f"{where}: expected a path, a PIL image or an (H, W[, 1|3|4]) array, got {array.dtype} {array.shape}"
        )
    if array.ndim == 2 or array.shape[2] == 1:
        return np.repeat(array.reshape(array.shape[0], array.shape[1], 1), 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def read_image(path: str | Path) -> tuple[np.ndarray | None, str]:
    """(RGB uint8 image, "") or (None, why it is unreadable): truncated files are unreadable, not half grey.

    PIL rather than OpenCV: OpenCV returns a truncated JPEG's missing part as grey with only a warning, and
    ignores the EXIF orientation of phone photos; PIL raises on the first and applies the second.
    A picture over the one size limit (``emoframe.files.pictures``: a decompression bomb) is unreadable too.
    """
    from PIL import ImageOps, UnidentifiedImageError

    try:
        with open_picture(path) as im:
            im.load()
            rgb = ImageOps.exif_transpose(im).convert("RGB")
        return np.asarray(rgb), ""
    except UnidentifiedImageError:
        return None, "not a decodable image"
    except PictureTooLarge as err:
        return None, f"unreadable ({err})"
    except DataError:  # a bad setting (EMOFRAME_MAX_PIXELS): one line for the run, not every picture unreadable
        raise
    except (OSError, ValueError, SyntaxError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        return None, f"unreadable ({text})"


def probe(source: Source, sampling: Sampling) -> Source:
    """Fill in ``frames``, ``fps`` and ``size`` of a video file (one line naming it when it is unreadable)."""
    if source.kind == "video":
        reader = open_video(source.target)
        source.fps = float(reader.get_avg_fps()) or 25.0
        height, width = reader[0].shape[:2]
        source.size = (int(width), int(height))
        source.info["total"] = len(reader)
        source.frames = len(sampling.indices(len(reader), source.fps))
    elif source.kind == "image":
        source.frames = 1
    return source


def decode_size(size: tuple[int, int], decode_side: int | None) -> tuple[int, int] | None:
    """(width, height) to decode a ``size`` video at so its longer side is ``decode_side`` (None: full size)."""
    width, height = size
    if not decode_side or max(width, height) <= decode_side:
        return None
    scale = decode_side / max(width, height)
    return (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))  # even: sws likes it


def iter_source(
    source: Source, sampling: Sampling, chunk: int = 32, decode_side: int | None = None
) -> Iterator[list[Frame]]:
    """The frames of one source, ``chunk`` at a time. A video that breaks mid-file ends early with a last
    frame carrying the ``error``; an unreadable image is one frame with an ``error``."""
    if source.kind == "image":
        if isinstance(source.target, np.ndarray):
            yield [Frame(source.name, 0, 0.0, source.target)]
        else:
            image, error = read_image(source.target)
            yield [Frame(source.name, 0, 0.0, image, error)]
    elif source.kind == "video":
        yield from prefetched(_video_frames(source, sampling, chunk, decode_side))
    else:
        yield from _live_frames(source, sampling, chunk)


def _video_frames(source: Source, sampling: Sampling, chunk: int, decode_side: int | None) -> Iterator[list[Frame]]:
    import decord

    if source.fps is None:
        probe(source, sampling)
    assert source.fps is not None and source.size is not None
    size = decode_size(source.size, decode_side)
    kwargs = {"width": size[0], "height": size[1]} if size else {}
    try:
        reader = decord.VideoReader(str(source.target), num_threads=1, **kwargs)
    except (decord.DECORDError, RuntimeError) as err:
        raise DataError(f"Cannot read video {source.name}: {str(err).strip()[:200]}") from None
    scale = source.size[0] / size[0] if size else 1.0
    wanted = sampling.indices(len(reader), source.fps)
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        try:
            images = reader.get_batch(part).asnumpy()
        except Exception as err:  # decord raises its own DECORDError or RuntimeError on corrupt data
            text = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            yield [Frame(source.name, part[0], part[0] / source.fps, None, f"frames from {part[0]} unreadable: {text}")]
            return
        yield [Frame(source.name, i, i / source.fps, image, scale=scale) for i, image in zip(part, images, strict=True)]


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``items``, produced by a background thread at most ``depth`` ahead of the caller, in order; an exception
    in the producer is raised here at its place in the sequence. Closing this generator stops the thread."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as err:  # handed to the caller, raised there
            put(("error", err))

    thread = threading.Thread(target=produce, name="emoframe-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)


def open_capture(source: Source) -> Any:
    """An opened ``cv2.VideoCapture`` of a camera or URL, or a one-line ``DataError``."""
    import cv2

    capture = cv2.VideoCapture(source.target)
    if not capture.isOpened():
        capture.release()
        what = f"camera {source.target}" if isinstance(source.target, int) else f"stream {source.target}"
        raise DataError(f"Cannot open {what} (OpenCV VideoCapture could not open it; check the index or URL)")
    return capture


def _live_frames(source: Source, sampling: Sampling, chunk: int) -> Iterator[list[Frame]]:
    """Frames as they arrive, in chunks of at most ``chunk`` (a chunk ends at once when the stream pauses for
    more than ``max_wait_s`` between frames, so the network never waits on a slow camera for long)."""
    import cv2

    capture = open_capture(source)
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    source.fps = fps if 0 < fps < 1000 else None
    start = time.monotonic()
    index = 0
    next_time = 0.0
    batch: list[Frame] = []
    max_wait_s = 0.25
    try:
        last_flush = time.monotonic()
        while True:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break  # the stream ended or dropped
            now = time.monotonic() - start
            keep = (index % sampling.every == 0) if sampling.fps is None else now + 1e-9 >= next_time
            if keep:
                if sampling.fps is not None:
                    next_time = max(next_time + 1.0 / sampling.fps, now)
                batch.append(Frame(source.name, index, now, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            index += 1
            if batch and (len(batch) >= chunk or time.monotonic() - last_flush > max_wait_s):
                yield batch
                batch = []
                last_flush = time.monotonic()
    finally:
        capture.release()
        source.info["read"] = index
    if batch:
        yield batch
