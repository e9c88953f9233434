"""The contract of a feature extractor: uint8 faces in, one float32 vector per face out.

Extractors are plain picklable objects so ``extract_features`` can ship them to worker processes;
anything unpicklable (dlib models) is created lazily inside the worker.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from emoframe.errors import DataError

Stats = dict[str, int]
"""Counters an extractor reports per call (e.g. ``{"fallbacks": 12}``); summed over chunks."""


class FeatureExtractor:
    """Base class: subclasses set ``name``, ``version``, implement ``dim``, ``settings`` and ``compute``."""

    name: str = "features"
    version: int = 1
    """Bump when the output of the same settings changes, so cached features are recomputed."""

    def __init__(self) -> None:
        self.stats: Stats = {}  # counters of the last ``extract_features`` run (summed over chunks)

    @property
    def dim(self) -> int:
        """Length of one feature vector."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output: part of the cache key."""
        raise NotImplementedError

    def compute(self, images: np.ndarray) -> tuple[np.ndarray, Stats]:
        """(N, dim) float32 features and counters for uint8 (N, H, W) images already checked."""
        raise NotImplementedError

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features of uint8 (N, H, W) images (counters go to ``self.stats``)."""
        values, self.stats = self.compute(check_images(images, self.name))
        return values

    def report(self, stats: Stats, n: int, where: str) -> str | None:
        """One line about the counters worth telling the user, or ``None``."""
        return None


def check_images(images: Any, where: str) -> np.ndarray:
    """The images as a uint8 (N, H, W) array, or a one-line ``DataError`` saying what was expected."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"{where}: expected uint8 grayscale images of shape (N, H, W), got {got}")
    if images.shape[1] < 2 or images.shape[2] < 2:
        raise DataError(f"{where}: expected images of at least 2x2 pixels, got {images.shape[1]}x{images.shape[2]}")
    return images


def resize_batch(images: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """uint8 (N, H, W) -> (N, size, size), one OpenCV call per 512 images (images stacked as channels)."""
    if images.shape[1:] == (size, size):
        return images
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for start in range(0, len(images), 512):  # cv2.resize takes at most 512 channels
        block = np.ascontiguousarray(images[start : start + 512].transpose(1, 2, 0))
        resized = cv2.resize(block, (size, size), interpolation=interpolation)
        out[start : start + 512] = resized.reshape(size, size, -1).transpose(2, 0, 1)
    return out
