"""Decoding image bytes to grayscale uint8 arrays, in a thread pool, with bad-image bookkeeping."""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from emoframe.errors import DataError
from emoframe.files.pictures import PictureTooLarge, check_pixels, header_check, open_picture

try:  # OpenCV decodes FER2013's JPEGs ~5x faster than PIL, with identical pixels (both libjpeg-turbo)
    import cv2
except ImportError:  # pragma: no cover - albumentations brings opencv, but keep PIL as the fallback
    cv2 = None

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm")
DECODER = "cv2" if cv2 is not None else "pil"
OnBadImage = Literal["error", "skip"]
TINY_UPSCALE = 2
"""A picture whose shorter side is upscaled more than this many times is counted as tiny (``report_tiny``)."""

# What counts as an unreadable file (skipped or fatal); anything else (e.g. a bug) propagates.
_BAD_IMAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
    zipfile.BadZipFile,
)
if cv2 is not None:
    _BAD_IMAGE_ERRORS += (cv2.error,)


def is_image_name(name: str) -> bool:
    """Whether a file name has an image suffix (case-insensitive)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def decode_gray(data: bytes) -> np.ndarray | None:
    """Decode image bytes to a 2-D uint8 grayscale array (ITU-R 601 luma); ``None`` if undecodable.

    A picture over the one size limit (``emoframe.files.pictures``) raises ``PictureTooLarge``: its header
    is read first, so a decompression bomb is refused before OpenCV allocates it.
    """
    header_check(data)
    if cv2 is not None:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if img is not None:
            check_pixels(img.shape[1], img.shape[0])  # a format PIL could not read the header of
            return img
    # PIL fallback: formats OpenCV lacks (GIF) or no OpenCV at all.
    try:
        im = open_picture(data)
    except UnidentifiedImageError:
        return None
    with im:
        return np.asarray(ImageOps.exif_transpose(im).convert("L"), dtype=np.uint8).copy()


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` (no aspect preservation: inputs are expected to be face crops)."""
    if img.shape == (size, size):
        return img
    if cv2 is not None:
        shrink = img.shape[0] > size or img.shape[1] > size
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))


def decode_files(
    names: Sequence[str],
    read: Callable[[str], bytes],
    *,
    size: int,
    resize: bool,
    on_bad_image: OnBadImage,
    where: str,
    desc: str,
    progress: bool = True,
    prepare: Callable[[np.ndarray], np.ndarray | None] | None = None,
    tiny: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read and decode ``names`` into a (K, size, size) uint8 array.

    Returns (images, kept indices into ``names``, skipped names). Without ``resize`` an image that is
    not ``size`` x ``size`` is a bad image. A bad image raises a one-line ``DataError`` naming the file
    with ``on_bad_image="error"`` and is skipped with ``"skip"`` (one summary line is printed).
    A small thread pool overlaps file reads and decoding (both release the GIL): little gain on FER2013's
    tiny JPEGs in a zip, more on folders of large images.

    ``prepare`` (e.g. a face pipeline) replaces the resize: it maps the full-size gray image to a
    ``size`` x ``size`` array, or to None to leave the image out on purpose (not counted as bad; the
    caller reports it). It runs in one thread, since dlib's models are not documented as thread-safe.

    ``tiny`` (a list) collects ``"name (WxH)"`` of the kept images upscaled more than ``TINY_UPSCALE`` times
    (a 1x1 picture becomes a flat square): the caller counts and reports them (``report_tiny``).
    """
    n = len(names)
    out = np.empty((n, size, size), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    fatal: list[DataError] = []

    def work(start: int) -> int:
        stop = min(start + 256, n)
        for i in range(start, stop):
            if fatal or (reasons and on_bad_image == "error"):
                break  # another thread found a fatal bad image or setting: stop early
            try:
                img = decode_gray(read(names[i]))
            except PictureTooLarge as err:
                reasons[i] = str(err)
                continue
            except DataError as err:  # a bad setting (EMOFRAME_MAX_PIXELS), not a bad image: stop the run
                fatal.append(err)
                break
            except _BAD_IMAGE_ERRORS as err:
                reasons[i] = f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                continue
            if img is None:
                reasons[i] = "not a decodable image"
            elif prepare is not None:
                prepared = prepare(img)
                if prepared is not None:
                    out[i] = prepared
                    ok[i] = True
            elif img.shape != (size, size) and not resize:
                reasons[i] = f"is {img.shape[1]}x{img.shape[0]}, expected {size}x{size}"
            else:
                out[i] = resize_square(img, size)
                ok[i] = True
                if tiny is not None and min(img.shape) * TINY_UPSCALE < size:
                    tiny.append(f"{names[i]} ({img.shape[1]}x{img.shape[0]})")
        return stop - start

    workers = 1 if prepare is not None else max(1, min(8, os.cpu_count() or 1))
    with (
        tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar,
        ThreadPoolExecutor(workers) as pool,
    ):
        for done in pool.map(work, range(0, n, 256)):
            bar.update(done)
            if fatal or (reasons and on_bad_image == "error"):
                break
    if fatal:
        raise fatal[0]
    if reasons and on_bad_image == "error":
        i = min(reasons)
        raise DataError(f"Bad image {names[i]} in {where}: {reasons[i]}. Fix or remove it, or set on_bad_image: skip")
    kept = np.flatnonzero(ok)
    skipped = [names[i] for i in sorted(reasons)]
    if skipped:
        report_skipped(skipped, n, where, reasons[min(reasons)])
    return out[kept] if len(kept) < n else out, kept, skipped


def report_tiny(tiny: Sequence[str], total: int, where: str, size: int) -> None:
    """The one summary line for pictures upscaled more than ``TINY_UPSCALE`` times (stderr, like skipped ones)."""
    if not tiny:
        return
    first = sorted(tiny)[0]
    print(
        f"Upscaled {len(tiny)} of {total} images in {where} more than {TINY_UPSCALE}x to {size}x{size} "
        f"(shorter side under {size / TINY_UPSCALE:g} px; first: {first}): they hold little of a face",
        file=sys.stderr,
        flush=True,
    )


def report_skipped(skipped: Sequence[str], total: int, where: str, reason: str = "") -> None:
    """Print the one summary line for skipped images (to stderr, so it survives stdout redirection)."""
    why = f": {reason}" if reason else ""
    print(
        f"Skipped {len(skipped)} of {total} images in {where} that could not be decoded (first: {skipped[0]}{why})",
        file=sys.stderr,
        flush=True,
    )
