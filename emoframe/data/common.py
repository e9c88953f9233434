"""What every datamodule shares, written once: argument checks, the recipe sections ``loader:`` and
``image:``, the DataLoader factory (with the unrepeated sampler for distributed evaluation), crops to
normalised tensors and class-folder mapping.

Under DDP the val/test/predict loaders get Lightning's ``UnrepeatedDistributedSampler``: Lightning leaves a
loader whose sampler is already a ``DistributedSampler`` alone, so it does not pad the last batch with
repeated samples and metrics and sample counts stay exact (ranks may differ by one sample, which is safe
outside training).

Training loaders are seeded per epoch (``EpochSampler`` + ``EpochSeeded``): the shuffle of epoch ``e`` comes
from ``(seed, e)``, and each loader process reseeds its generators (the augmentation's, and in worker processes
Python's, numpy's and torch's) from ``(seed, e, worker id, rank)`` at its first sample of the epoch. So epoch
``e`` draws the same whether the process ran epochs ``0 .. e-1`` before it (persistent workers) or starts at
``e`` after ``--resume``.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

import annotated_types
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, get_worker_info

from emoframe.errors import DataError
from emoframe.labels import EMOTIONS
from emoframe.registry import check_arguments

S = TypeVar("S")

# Sizes a recipe may ask for, bounded so that a typo (``data.fps=1e12``) fails in one line instead of filling memory.
MAX_FPS = 1000.0
MAX_FRAMES = 100_000
"""Frames per window or clip (an hour at 25 fps is 90,000)."""
MAX_IMAGE_SIZE = 4096
MAX_BATCH = 65_536
MAX_WORKERS = 512
FrameRate = Annotated[float, annotated_types.Interval(gt=0, le=MAX_FPS)]
FrameCount = Annotated[int, annotated_types.Interval(ge=1, le=MAX_FRAMES)]
MOVED_KEYS = {
    "batch_size": "loader.batch_size",
    "num_workers": "loader.num_workers",
    "image_size": "image.size",
    "channels": "image.channels",
    "mean": "image.mean",
    "std": "image.std",
}
"""Flat keys of earlier recipes -> their sections, for every datamodule (images and video)."""
Section = dict[str, Any] | None
"""A nested recipe section (``data.loader``, ``data.image``, ...): a mapping of its keys, or null for defaults."""


def check(ok: bool, key: str, expected: str, value: Any) -> None:
    """One-line error for a bad data argument: ``data.<key>: expected <expected>, got <value>``."""
    if not ok:
        raise DataError(f"data.{key}: expected {expected}, got {value!r}")


def check_choice(value: Any, key: str, choices: tuple[Any, ...]) -> None:
    """One-line error for a value outside a Literal's choices (recipes are checked by the registry)."""
    check(value in choices, key, " or ".join(repr(c) for c in choices), value)


def is_count(value: Any, low: int) -> bool:
    """An integer (not a bool) >= ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def section(cls: type[S], value: Section, key: str, defaults: Mapping[str, Any] | None = None) -> S:
    """The settings dataclass ``cls`` of recipe section ``data.<key>``: ``defaults`` (the datamodule's),
    then the recipe's keys; an unknown or wrongly typed key fails naming ``data.<key>.<name>``."""
    if value is not None and not isinstance(value, Mapping):
        fields = ", ".join(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        raise DataError(f"data.{key}: expected a mapping of {fields}, got {value!r}")
    merged = {**(defaults or {}), **dict(value or {})}
    check_arguments(cls, merged, f"data.{key}")
    return cls(**merged)


@dataclass(frozen=True)
class LoaderSettings:
    """``data.loader``: samples per batch and DataLoader worker processes."""

    batch_size: Annotated[int, annotated_types.Interval(ge=1, le=MAX_BATCH)] = 64
    num_workers: Annotated[int, annotated_types.Interval(ge=0, le=MAX_WORKERS)] = 2

    def __post_init__(self) -> None:
        check(is_count(self.batch_size, 1), "loader.batch_size", "an integer >= 1", self.batch_size)
        check(is_count(self.num_workers, 0), "loader.num_workers", "an integer >= 0", self.num_workers)


@dataclass(frozen=True)
class ImageSettings:
    """``data.image``: what the model sees of each frame: side in pixels, channels, per-channel mean and std."""

    size: Annotated[int, annotated_types.Interval(ge=8, le=MAX_IMAGE_SIZE)] = 48
    channels: int = 1
    mean: float | list[float] = 0.5
    std: float | list[float] = 0.5

    def __post_init__(self) -> None:
        check(is_count(self.size, 8), "image.size", "an integer >= 8", self.size)
        check(self.channels in (1, 3), "image.channels", "1 (gray) or 3 (RGB)", self.channels)

    def per_channel(self) -> tuple[list[float], list[float]]:
        """``mean`` and ``std`` with one value per channel (std > 0)."""
        mean = per_channel(self.mean, self.channels, "image.mean")
        std = per_channel(self.std, self.channels, "image.std")
        check(all(s > 0 for s in std), "image.std", "values > 0", self.std)
        return mean, std


def per_channel(value: float | Sequence[float], channels: int, key: str) -> list[float]:
    """One float per channel from one number or a list of ``channels`` numbers."""
    values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
    check(len(values) == channels, key, f"one number or {channels} (one per channel)", value)
    return values


def make_loader(dataset: Dataset[Any], loader: LoaderSettings, shuffle: bool, trainer: Any) -> DataLoader:
    """The DataLoader of one split: a shuffled (training) split is seeded per epoch (``EpochSampler``,
    ``EpochSeeded``); unshuffled splits get the unrepeated sampler when running distributed."""
    seed = loader_seed()
    if shuffle:
        replicas, rank = replicas_and_rank(trainer)
        sampler: Sampler[Any] | None = EpochSampler(dataset, replicas, rank, seed)  # type: ignore[arg-type]
        dataset = EpochSeeded(dataset, seed, rank)
    else:
        sampler = unrepeated_sampler(dataset, trainer)
    return DataLoader(
        dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=loader.num_workers > 0,
        drop_last=False,
        # its own generator for the workers' base seed: drawn from torch's global one, the draw would shift the
        # training step's dropout whenever a (persistent) iterator is made, which differs after a resume
        generator=torch.Generator().manual_seed(seed),
    )


def replicas_and_rank(trainer: Any) -> tuple[int, int]:
    """How many processes share the data, and which one this is (1, 0 outside distributed runs)."""
    if trainer is None or getattr(trainer, "world_size", 1) <= 1:
        return 1, 0
    kwargs = getattr(trainer, "distributed_sampler_kwargs", None) or {}
    return int(kwargs.get("num_replicas", trainer.world_size)), int(kwargs.get("rank", trainer.global_rank))


def unrepeated_sampler(dataset: Dataset[Any], trainer: Any) -> Sampler[int] | None:
    """Each sample on exactly one rank (no padding), when running distributed."""
    replicas, rank = replicas_and_rank(trainer)
    if replicas <= 1:
        return None
    return UnrepeatedDistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=False)


def loader_seed() -> int:
    """The run's seed (``pl.seed_everything`` keeps it in ``PL_GLOBAL_SEED``, as Lightning's worker seeding reads it)."""
    return int(os.environ.get("PL_GLOBAL_SEED", "0") or 0)


class EpochSampler(DistributedSampler):  # type: ignore[type-arg]
    """The training shuffle of epoch ``e`` from ``(seed, e)`` alone; yields ``(e, index)`` for ``EpochSeeded``.

    A ``DistributedSampler`` (one replica outside DDP), so Lightning calls ``set_epoch`` with the trainer's epoch,
    restored on resume, and leaves it in place under DDP: every rank draws the same order and takes every
    ``num_replicas``-th index (the order padded by repeating its start, as Lightning's sampler does).
    """

    def __init__(self, dataset: Dataset[Any], num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.iterated_epoch: int | None = None  # the epoch of the last order drawn

    @property
    def stale(self) -> bool:
        """Whether the last order drawn (by an iterator made earlier) is of another epoch than the sampler's now."""
        return self.iterated_epoch is not None and self.iterated_epoch != self.epoch

    def __iter__(self):  # type: ignore[no-untyped-def]
        epoch, n = self.epoch, len(self.dataset)  # type: ignore[arg-type]
        self.iterated_epoch = epoch
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch, -2, 0)))
        indices = order.tolist()
        if self.total_size > n:
            indices += (indices * (self.total_size // max(n, 1) + 1))[: self.total_size - n]
        return ((epoch, i) for i in indices[self.rank : self.total_size : self.num_replicas])


def epoch_seed(seed: int, epoch: int, worker: int, rank: int) -> int:
    """A 32-bit seed for one loader process in one epoch (``worker`` -1: the main process; -2: the shuffle)."""
    return int(np.random.SeedSequence([seed, epoch, worker + 2, rank]).generate_state(1)[0])


class EpochSeeded(Dataset[Any]):
    """A training dataset read with ``(epoch, index)`` keys (``EpochSampler``): at its first sample of an epoch each
    loader process reseeds from ``epoch_seed(seed, epoch, worker id, rank)`` the dataset's own generators (its
    ``reseed(int)``, e.g. the augmentation's) and, in a worker process, Python's, numpy's and torch's global ones.

    The main process's global generators are not touched: there they are the training step's (dropout), saved
    in every checkpoint and restored on resume (``emoframe.callbacks.resume``). A plain int key reads the
    dataset as it is (a sampler that is not ``EpochSampler``).
    """

    def __init__(self, dataset: Dataset[Any], seed: int, rank: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed
        self.rank = rank
        self._epoch: int | None = None  # each process's copy: the epoch it last reseeded for

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        epoch, index = key
        if epoch != self._epoch:
            self._epoch = epoch
            self.reseed(epoch)
        return self.dataset[index]

    def reseed(self, epoch: int) -> None:
        worker = get_worker_info()
        seed = epoch_seed(self.seed, epoch, worker.id if worker is not None else -1, self.rank)
        if worker is not None:
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
        reseed = getattr(self.dataset, "reseed", None)
        if callable(reseed):
            reseed(seed)


def normaliser(values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Per-channel values as a (C, 1, 1) float32 tensor, for ``crops_to_tensor``."""
    return torch.as_tensor(values, dtype=torch.float32).reshape(-1, 1, 1)


def crops_to_tensor(crops: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 crops (N, S, S) gray or (N, S, S, C) -> float32 (N, C, S, S), scaled to [0, 1] and normalised
    with ``mean``/``std`` (``normaliser`` tensors)."""
    crops = crops[..., None] if crops.ndim == 3 else crops
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean) / std


def check_class_map(class_map: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """``data.class_map`` (class folder -> emotion, or null to drop it), every target an emotion."""
    out = dict(class_map or {})
    for folder, target in out.items():
        if target is not None and target not in EMOTIONS:
            raise DataError(
                f"data.class_map.{folder}: '{target}' is not an emotion; accepted: {', '.join(EMOTIONS)} or null"
            )
    return out


def class_index(name: str, class_map: Mapping[str, str | None]) -> int | None:
    """The EMOTIONS index of class folder ``name`` (mapped, or an emotion's name in any case), None if mapped
    to null; ``KeyError`` if it is neither (the caller says what to do about it)."""
    if name in class_map:
        target = class_map[name]
        return None if target is None else EMOTIONS.index(target)
    if name.lower() in EMOTIONS:
        return EMOTIONS.index(name.lower())
    raise KeyError(name)


class SplitDataModule(pl.LightningDataModule):
    """What every datamodule shares: the ``loader`` and ``image`` sections (from the class's
    ``section_defaults``), the class bookkeeping the builder reads and the loader hooks over ``dataset(split)``."""

    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, loader: Section = None, image: Section = None) -> None:
        super().__init__()
        self.loader = section(LoaderSettings, loader, "loader", self.section_defaults.get("loader"))
        self.image = section(ImageSettings, image, "image", self.section_defaults.get("image"))

    def dataset(self, split: str) -> Dataset[Any]:
        """The dataset of ``train``, ``val``, ``test`` or ``predict``."""
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.image.channels

    @property
    def frames_per_item(self) -> int:
        """Frames in one item (a window or clip of a video datamodule; 1 for images)."""
        return 1

    def check_memory(self) -> None:
        """One training batch must fit in this machine's memory (float32), or a one-line error naming the keys."""
        batch = self.loader.batch_size * self.frames_per_item * self.image.channels * self.image.size**2 * 4
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # not POSIX: not checked
            return
        if batch > total:
            frames = f" x {self.frames_per_item} frames" if self.frames_per_item > 1 else ""
            raise DataError(
                f"data.loader.batch_size: one batch of {self.loader.batch_size}{frames} x {self.image.channels} x "
                f"{self.image.size}^2 float32 is {batch / 2**30:.1f} GiB, more than this machine's "
                f"{total / 2**30:.1f} GiB of memory; lower data.loader.batch_size, data.image.size or the frames"
            )

    @property
    def num_workers(self) -> int:
        """DataLoader worker processes (``loader.num_workers``; feature extraction reuses them)."""
        return self.loader.num_workers

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return make_loader(self.dataset(split), self.loader, shuffle, self.trainer)
