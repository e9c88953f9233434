"""Every frame of a split, normalised, in clip order: what ``emoframe extract`` runs a backbone over.

A datamodule offers ``frame_source(split) -> FrameSource``: frame datamodules (``fer2013``, ``image_folder``)
give each image as a one-frame clip through the evaluation transform (no augmentation); clip datamodules
(``afew``, ``video_folder``) give every frame of each clip that has a face crop. ``data.frames``/``sampling``
are for training sequence models and are ignored here: the paper computes "features for all frames".
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from emoframe.data.common import crops_to_tensor, normaliser
from emoframe.data.datasets import ImageArrayDataset


@dataclass
class FrameSource:
    """The clips of one split and a way to stream their frames, normalised, in clip order."""

    names: list[str]
    labels: np.ndarray  # int64 (N,)
    lengths: np.ndarray  # int64 (N,) frames per clip
    frame_index: np.ndarray  # int64 (F,)
    batches: Callable[[int], Iterator[torch.Tensor]]  # batch size -> (b, C, H, W) float32 batches


def image_frame_source(
    dataset: ImageArrayDataset, eval_transform: Callable[..., Any], split: str, num_workers: int = 0
) -> FrameSource:
    """A frame datamodule's split, through its evaluation transform (no augmentation), one image per clip."""
    plain = ImageArrayDataset(dataset.images, dataset.labels, eval_transform, dataset.names)
    n = len(plain)
    names = [str(s) for s in dataset.names] if dataset.names is not None else [f"{split}_{i:06d}" for i in range(n)]

    def batches(size: int) -> Iterator[torch.Tensor]:
        loader = DataLoader(plain, batch_size=size, shuffle=False, num_workers=int(num_workers))
        for x, _ in loader:
            yield x

    return FrameSource(names, plain.labels.copy(), np.ones(n, np.int64), np.zeros(n, np.int64), batches)


def clip_frame_source(
    recordings: Sequence[Any],
    mean: float | Sequence[float],
    std: float | Sequence[float],
    read: Callable[[Any, np.ndarray], np.ndarray],
    unlabelled: int,
) -> FrameSource:
    """A clip datamodule's recordings: every frame with a face crop, normalised with ``mean``/``std``.

    ``read(crops, indices)`` reads a recording's crops (uint8 ``(n, S, S)`` or ``(n, S, S, 3)``); a clip's
    label is ``extra["label"]``, ``unlabelled`` when it has none.
    """
    picked, kept = [], []
    for rec in recordings:
        idx = np.flatnonzero(rec.valid)
        if len(idx):
            picked.append(idx)
            kept.append(rec)
        else:
            print(f"Skipping {rec.source}: no frame with a face crop", file=sys.stderr, flush=True)
    mean_t, std_t = normaliser(mean), normaliser(std)

    def batches(size: int) -> Iterator[torch.Tensor]:
        pending: list[torch.Tensor] = []
        count = 0
        for rec, idx in zip(kept, picked):
            for start in range(0, len(idx), size):
                x = crops_to_tensor(read(rec.crops, idx[start : start + size]), mean_t, std_t)
                pending.append(x)
                count += len(x)
                while count >= size:
                    joined = torch.cat(pending)
                    yield joined[:size]
                    pending, count = ([joined[size:]] if len(joined) > size else []), len(joined) - size
        if count:
            yield torch.cat(pending)

    names = [rec.name for rec in kept]
    labels = np.array([int(rec.extra.get("label", unlabelled)) for rec in kept], dtype=np.int64)
    lengths = np.array([len(idx) for idx in picked], dtype=np.int64)
    frame_index = np.concatenate(picked).astype(np.int64) if picked else np.zeros(0, np.int64)
    return FrameSource(names, labels, lengths, frame_index, batches)
