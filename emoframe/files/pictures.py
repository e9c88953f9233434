"""One limit on picture size, shared by every reader of pictures (predict, image_folder, face folders).

A decompression bomb (a small file that decodes to gigapixels) must be one counted, named bad picture,
not a ``DecompressionBombError`` traceback in one reader and a 1 GB allocation in another. The limit is
``EMOFRAME_MAX_PIXELS`` (width x height; default PIL's own, about 89 million) and it is also PIL's
``Image.MAX_IMAGE_PIXELS``, with PIL's warning between one and two times the limit raised as an error,
so any PIL reader in the process refuses the same pictures.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from emoframe.errors import DataError

ENV = "EMOFRAME_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485
"""PIL's own default ``Image.MAX_IMAGE_PIXELS`` (a 9459 x 9459 picture, 256 MiB as RGBA)."""


class PictureTooLarge(ValueError):
    """A picture with more pixels than ``max_pixels()``: unreadable on purpose, with the reason in the text."""


def max_pixels() -> int:
    """The limit, read from ``EMOFRAME_MAX_PIXELS`` each time (so a test or a server can change it)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = 0.0
    if not (1 <= value < float("inf")) or value != int(value):
        raise DataError(f"{ENV}={text!r}: expected a whole number of pixels >= 1 (e.g. {DEFAULT_MAX_PIXELS})")
    return int(value)


def too_large(width: int, height: int) -> str:
    """The reason a ``width`` x ``height`` picture is refused, or "" when it is within the limit."""
    pixels = max(1, width) * max(1, height)
    return _reason(f"{width}x{height} = {pixels}") if pixels > max_pixels() else ""


def _reason(pixels: str) -> str:
    return f"too large ({pixels} pixels, more than {max_pixels()}; raise {ENV} to allow it)"


def check_pixels(width: int, height: int) -> None:
    """Raise ``PictureTooLarge`` for a picture over the limit."""
    reason = too_large(width, height)
    if reason:
        raise PictureTooLarge(reason)


def guard_pil() -> None:
    """Make PIL refuse exactly what ``max_pixels()`` refuses: its limit set to ours, its warning an error.

    Called by every reader before ``Image.open`` (cheap and idempotent), so the setting holds even when a
    test framework resets warning filters between tests.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels()
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def open_picture(source: str | Path | bytes | BinaryIO) -> Image.Image:
    """``Image.open`` (header only: nothing decoded yet) of a path, bytes or file, refusing pictures over the
    limit with ``PictureTooLarge``; PIL's ``UnidentifiedImageError`` and ``OSError`` pass through."""
    guard_pil()
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        image = Image.open(stream)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise PictureTooLarge(_bomb_reason(str(err))) from None
    try:
        check_pixels(*image.size)
    except PictureTooLarge:
        image.close()
        raise
    return image


def header_check(data: bytes) -> None:
    """Raise ``PictureTooLarge`` when the bytes' header names a picture over the limit (decodes nothing).

    For readers that decode with OpenCV (faster, but its own limit is a gigapixel): a format PIL cannot
    identify passes, and the caller checks the decoded shape with ``check_pixels``.
    """
    try:
        open_picture(data).close()
    except PictureTooLarge:
        raise
    except Exception:  # not a picture PIL knows: the decoder decides
        return


def _bomb_reason(text: str) -> str:
    """PIL's "Image size (N pixels) exceeds limit of M pixels..." as our reason."""
    found = re.search(r"\((\d+) pixels\)", text)
    return _reason(found.group(1) if found else "so many")


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ENV",
    "PictureTooLarge",
    "check_pixels",
    "guard_pil",
    "header_check",
    "max_pixels",
    "open_picture",
    "too_large",
]
