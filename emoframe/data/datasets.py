"""In-memory datasets: whole splits live as one uint8 array, so workers share it copy-on-write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class ImageArrayDataset(Dataset[tuple[Any, ...]]):
    """``(transform(images[i]), labels[i])`` over uint8 (N, H, W) images and int labels.

    Without a transform an item is the raw uint8 image as a (1, H, W) tensor. ``names`` (optional, e.g.
    file names) lets prediction writers say which image a row is. With ``features`` (float32 (N, D),
    computed from the un-augmented images) an item is ``(image, features[i], label)``: the transform
    augments the image only.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: Callable[[np.ndarray], torch.Tensor] | None = None,
        names: np.ndarray | None = None,
        features: np.ndarray | None = None,
    ) -> None:
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
        if len(images) != len(labels) or (names is not None and len(names) != len(images)):
            n_names = "no" if names is None else len(names)
            raise ValueError(f"{len(images)} images but {len(labels)} labels and {n_names} names")
        if features is not None and (features.ndim != 2 or len(features) != len(images)):
            raise ValueError(f"features must be (N, D) for {len(images)} images, got {features.shape}")
        self.images = np.ascontiguousarray(images)
        self.features = None if features is None else np.ascontiguousarray(features, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.names = names

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        image = self.images[index]
        x = self.transform(image) if self.transform is not None else torch.from_numpy(image.copy()).unsqueeze(0)
        if self.features is not None:
            return x, torch.from_numpy(self.features[index].copy()), int(self.labels[index])
        return x, int(self.labels[index])

    def reseed(self, seed: int) -> None:
        """Reseed the transform's own generators (``EpochSeeded`` does, at each loader process's first item of
        an epoch)."""
        reseed = getattr(self.transform, "reseed", None)
        if callable(reseed):
            reseed(seed)

    def label_counts(self, num_classes: int) -> np.ndarray:
        """Images per class (length ``num_classes``)."""
        return np.bincount(self.labels, minlength=num_classes)[:num_classes]


def stratified_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``n`` items, classes in proportion to their counts (deterministic).

    Each class's items are shuffled with ``seed`` and given evenly spaced positions in [0, 1); the ``n``
    lowest positions are kept. So every class gets its share, and a rare class still gets an item as
    soon as ``n`` is at least about half the split size over the class size.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    position = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        position[rng.permutation(idx)] = (np.arange(len(idx)) + 0.5) / len(idx)
    order = np.lexsort((labels, position))  # ties broken by class id, deterministic
    return np.sort(order[:n])
