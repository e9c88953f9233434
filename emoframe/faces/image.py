"""Normalising whatever a reader hands us (gray, RGB, RGBA, odd dtypes) into what dlib accepts."""

from __future__ import annotations

import cv2
import numpy as np

MIN_SIDE = 16  # below this no detector can find a face; such frames are "no face", not a crash


class BadFrame(ValueError):
    """A frame that is not an image at all (None, empty, wrong shape or dtype)."""


def to_gray_uint8(image: np.ndarray | None) -> np.ndarray:
    """A C-contiguous uint8 (H, W) array from gray (H, W[, 1]), RGB (H, W, 3) or RGBA (H, W, 4) input.

    Colour inputs are assumed RGB (decord, PIL); float images in [0, 1] are scaled to [0, 255];
    anything else raises ``BadFrame`` with what was expected.
    """
    if image is None:
        raise BadFrame("frame is None (unreadable)")
    image = np.asarray(image)
    if image.size == 0:
        raise BadFrame(f"frame is empty (shape {image.shape})")
    if image.dtype == bool or image.dtype.kind not in "uif":
        raise BadFrame(f"frame dtype {image.dtype}: expected uint8 or float pixels")
    if image.dtype != np.uint8:
        scale = 255.0 if image.dtype.kind == "f" and float(np.nanmax(image)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGBA2GRAY)
    raise BadFrame(f"frame shape {image.shape}: expected (H, W), (H, W, 3) RGB or (H, W, 4) RGBA")
