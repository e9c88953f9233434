"""Base datamodule for image classification over in-memory uint8 grayscale arrays.

Subclasses only implement ``load_splits``; this class owns the per-split pipelines, the ``subset`` pick,
the optional hand-crafted ``features`` (extracted once per split from the un-augmented faces, cached
on disk, standardised with the train split's statistics), the label bookkeeping and the loaders (made by
``emoframe.data.common.make_loader``, with the unrepeated sampler for distributed evaluation).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict

import numpy as np

from emoframe.data.common import (
    MOVED_KEYS,
    Section,
    SplitDataModule,
    check,
    check_choice,
    is_count,
)
from emoframe.data.datasets import ImageArrayDataset, stratified_subset
from emoframe.data.frame_sources import FrameSource, image_frame_source
from emoframe.data.transforms import ImageTransform, build_transform
from emoframe.errors import DataError
from emoframe.features import build_extractors, extract_features
from emoframe.labels import EMOTIONS

SPLITS = ("train", "val", "test")
SplitArrays = tuple[np.ndarray, np.ndarray, np.ndarray | None]
"""(images uint8 (N, H, W), labels int64 (N,), names (N,) or None)."""


class ImageOptions(TypedDict, total=False):
    """Keyword arguments every image datamodule takes, declared once (defaults: ``ImageClassificationDataModule``)."""

    loader: Section
    image: Section
    augment: list[dict[str, Any]] | None
    subset: int | None
    seed: int
    features: list[dict[str, Any]] | None


class ImageClassificationDataModule(SplitDataModule):
    """Base class: uint8 grayscale splits in memory -> augmented, normalised (C, H, W) float batches.

    ``loader: {batch_size, num_workers}``; ``image: {size, channels, mean, std}`` (what the model sees);
    ``augment``: albumentations steps for training; ``subset``: a stratified pick of at most that many
    images per split (with ``seed``); ``features``: hand-crafted feature extractors.
    """

    moved_keys: ClassVar[dict[str, str]] = dict(MOVED_KEYS)
    source_size: int | None = 48
    """Side of the arrays ``load_splits`` returns; ``None`` when they are already ``image.size``."""

    def __init__(
        self,
        *,
        loader: Section = None,
        image: Section = None,
        augment: list[dict[str, Any]] | None = None,
        subset: int | None = None,
        seed: int = 0,
        features: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(loader=loader, image=image)
        check(subset is None or is_count(subset, 1), "subset", "None or >= 1", subset)
        image_size, channels = self.image.size, self.image.channels
        self.subset = subset
        self.seed = seed
        source = self.source_size or image_size
        mean, std = self.image.mean, self.image.std
        # Built now so a bad augment recipe fails at construction, before any data is read.
        settings = {"image_size": image_size, "source_size": source, "channels": channels, "mean": mean, "std": std}
        self.train_transform: ImageTransform = build_transform(augment, **settings, seed=seed)
        self.eval_transform: ImageTransform = build_transform(None, **settings, seed=seed)
        # Built now so a typo in data.features fails before any data is read.
        self.extractors = build_extractors(features)
        self.feature_mean: np.ndarray | None = None  # train statistics used to standardise every split
        self.feature_std: np.ndarray | None = None
        self.feature_stats: dict[str, dict[str, dict[str, int]]] = {}  # split -> extractor -> counters
        self._datasets: dict[str, ImageArrayDataset] = {}
        self.save_hyperparameters()

    # --- what subclasses provide -------------------------------------------------------------
    def load_splits(self) -> dict[str, SplitArrays]:
        """Arrays for ``train``, ``val`` and ``test`` (labels in ``EMOTIONS`` order)."""
        raise NotImplementedError

    # --- label bookkeeping ---------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(EMOTIONS)

    @property
    def feature_dim(self) -> int:
        """Length of the feature vector each item carries (0 without ``features``)."""
        return sum(e.dim for e in self.extractors)

    @property
    def train_label_counts(self) -> np.ndarray:
        """Images per class in the (subset) train split, e.g. for class weights; loads the data if needed."""
        return self.dataset("train").label_counts(self.num_classes)

    # --- Lightning hooks -----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load every split once (all stages share the arrays), apply ``subset``, add features, build datasets."""
        if self._datasets:
            return
        splits = self.load_splits()
        picked: dict[str, SplitArrays] = {}
        same_as: dict[str, str] = {}  # val and test may be the same arrays (fer32): one dataset
        for split in SPLITS:
            images, labels, names = splits[split]
            if len(labels) == 0:
                raise DataError(f"{type(self).__name__}: the {split} split has no images")
            earlier = [s for s in picked if s != "train" and splits[s][0] is images]
            if split != "train" and earlier:
                same_as[split] = earlier[0]
                continue
            if self.subset is not None and self.subset < len(labels):
                keep = stratified_subset(labels, self.subset, self.seed)
                images, labels = images[keep], labels[keep]
                names = names[keep] if names is not None else None
            picked[split] = (images, labels, names)
        features = self._features({split: arrays[0] for split, arrays in picked.items()})
        for split in SPLITS:
            if split in same_as:
                self._datasets[split] = self._datasets[same_as[split]]
                continue
            images, labels, names = picked[split]
            transform = self.train_transform if split == "train" else self.eval_transform
            self._datasets[split] = ImageArrayDataset(images, labels, transform, names, features.get(split))

    def _features(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each split's features from the un-augmented faces (cached), standardised with the train split's."""
        if not self.extractors:
            return {}
        cache_dir = getattr(self, "cache_dir", None)
        out = {}
        for split, arrays in images.items():
            found = extract_features(arrays, self.extractors, cache_dir=cache_dir, desc=split)
            self.feature_stats[split] = found.stats
            out[split] = found.values
        self.feature_mean, self.feature_std = _column_stats(out["train"])
        for values in out.values():
            for rows in range(0, len(values), 4096):  # in place, in blocks: no full-size temporary
                values[rows : rows + 4096] -= self.feature_mean
                values[rows : rows + 4096] /= self.feature_std
        return out

    def dataset(self, split: str) -> ImageArrayDataset:
        """The dataset of ``train``, ``val``, ``test`` (or ``predict`` = test); sets up on first use."""
        if not self._datasets:
            self.setup()
        return self._datasets["test" if split == "predict" else split]

    def frame_source(self, split: str) -> FrameSource:
        """The images of ``split`` as one-frame clips through the evaluation transform (``emoframe extract``)."""
        return image_frame_source(self.dataset(split), self.eval_transform, split, self.num_workers)


def _column_stats(values: np.ndarray, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """float32 mean and std of each column (float64 sums over row blocks; constant columns get std 1)."""
    total = np.zeros(values.shape[1])
    for rows in range(0, len(values), block):
        total += values[rows : rows + block].sum(axis=0, dtype=np.float64)
    mean = total / len(values)
    squares = np.zeros(values.shape[1])
    for rows in range(0, len(values), block):
        squares += ((values[rows : rows + block] - mean) ** 2).sum(axis=0)
    std = np.sqrt(squares / len(values))
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


__all__ = ["SPLITS", "ImageClassificationDataModule", "ImageOptions", "SplitArrays", "check_choice"]
