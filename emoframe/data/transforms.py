"""Per-sample image pipeline: albumentations augmentations from a recipe list, then a cheap uint8->float step.

A recipe's ``data.augment`` is a list of mappings, each naming any albumentations transform by class
name with its arguments, e.g. ``[{name: Affine, rotate: [-10, 10], p: 0.5}, {name: HorizontalFlip}]``;
``OneOf``/``SomeOf``/``Sequential`` take a nested ``transforms:`` list. Normalisation is a 256-entry
lookup table rather than albumentations' Normalize: one indexing op per image (the training loop is
CPU-bound on small machines), and grayscale->3 channels is a zero-copy ``expand``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import numpy as np
import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from torch.utils.data import get_worker_info

from emoframe.files.decode import resize_square
from emoframe.registry import TRANSFORMS, RecipeError

_OWN_STEPS = {"Normalize": "data.image.mean/std", "ToTensorV2": "the datamodule"}  # done after augment
_CONTAINERS = ("OneOf", "SomeOf", "Sequential", "SelectiveChannelTransform", "OneOrOther", "Compose")


def _albumentations_names() -> list[str]:
    return sorted(
        n
        for n, obj in vars(A).items()
        if inspect.isclass(obj) and issubclass(obj, (A.BasicTransform, A.BaseCompose)) and not n.startswith("_")
    )


def build_augment(recipe: Sequence[Mapping[str, Any]] | None, where: str = "data.augment") -> list[Any]:
    """Albumentations transforms for a recipe list; a bad entry raises ``RecipeError`` naming ``where[i]``."""
    recipe = _plain(recipe)
    if recipe is None:
        return []
    if not isinstance(recipe, (list, tuple)):
        raise RecipeError(f"{where}: expected a list of {{name: Transform, ...}} mappings, got {recipe!r}")
    return [_build_one(entry, f"{where}[{i}]") for i, entry in enumerate(recipe)]


def _build_one(entry: Mapping[str, Any], where: str) -> Any:
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise RecipeError(f"{where}: expected a mapping like {{name: HorizontalFlip, p: 0.5}}, got {entry!r}")
    kwargs = {str(k): _plain(v) for k, v in entry.items() if k != "name"}
    name = str(entry["name"])
    if name in _OWN_STEPS:
        raise RecipeError(f"{where}.name: remove {name}: the pipeline already does it (set by {_OWN_STEPS[name]})")
    cls = getattr(A, name, None) if not name.startswith("_") else None
    if not (inspect.isclass(cls) and issubclass(cls, (A.BasicTransform, A.BaseCompose))):
        if name in TRANSFORMS:  # a user transform registered with @TRANSFORMS.register(...)
            cls = TRANSFORMS.get(name)
        else:
            close = difflib.get_close_matches(name, _albumentations_names(), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RecipeError(f"{where}.name: unknown albumentations transform '{name}'.{hint}")
    if name in _CONTAINERS and "transforms" in kwargs:
        kwargs["transforms"] = build_augment(kwargs["transforms"], f"{where}.transforms")
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params:
                close = difflib.get_close_matches(key, list(params), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise RecipeError(f"{where}.{key}: {name} has no argument '{key}'.{hint} Accepted: {', '.join(params)}")
    try:
        return cls(**kwargs)
    except Exception as err:  # pydantic ValidationError, TypeError, ValueError from albumentations
        raise RecipeError(f"{where}: bad arguments for {name}: {_one_line(err)}") from None


def _plain(value: Any) -> Any:
    """OmegaConf containers -> lists/dicts; YAML lists stay lists (albumentations coerces to tuples)."""
    if type(value).__name__ in ("ListConfig", "DictConfig"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _one_line(err: BaseException) -> str:
    """Albumentations wraps pydantic's multi-line ValidationError: give 'arg: reason (got value)' instead."""
    for e in (err, err.__cause__):
        errors = getattr(e, "errors", None)
        if callable(errors):
            by_arg: dict[str, list[str]] = {}
            for item in errors():
                arg = str(item["loc"][0]) if item.get("loc") else "value"
                got = "" if item.get("type") == "missing" else f" (got {item.get('input')!r})"
                by_arg.setdefault(arg, []).append(f"{item['msg']}{got}")
            return "; ".join(f"{arg}: {' or '.join(dict.fromkeys(msgs))}" for arg, msgs in by_arg.items())
    return " ".join(str(err).split())[:300]


class ImageTransform:
    """uint8 (H, W) grayscale -> augmented, resized, normalised float32 tensor (channels, size, size).

    ``augment`` runs first at the stored resolution (cheaper), then ``Resize`` to ``image_size`` when it
    differs from ``source_size``; an augmentation that changes the size (a crop) is resized back.
    The augmentation draws from its own generators (albumentations' ``Compose(seed=...)``). A training loader
    reseeds them per epoch and loader process (``reseed``, from ``emoframe.data.common.EpochSeeded``), so epoch
    ``e`` augments the same after a resume as in an uninterrupted run; used in some other DataLoader's workers,
    they are reseeded from the worker seed, so workers draw different augmentations.
    """

    def __init__(
        self,
        augment: Sequence[Any] = (),
        image_size: int = 48,
        source_size: int = 48,
        channels: int = 1,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
        seed: int | None = 0,
    ) -> None:
        self.channels = channels
        self.image_size = image_size
        steps = list(augment)
        if image_size != source_size:
            steps.append(A.Resize(image_size, image_size))
        self.compose = A.Compose(steps, seed=seed) if steps else None
        means = np.broadcast_to(np.asarray(mean, dtype=np.float32), (channels,))
        stds = np.broadcast_to(np.asarray(std, dtype=np.float32), (channels,))
        levels = np.arange(256, dtype=np.float32) / 255.0
        lut = (levels[None, :] - means[:, None]) / stds[:, None]  # (channels, 256)
        self.single_lut = bool(np.all(lut == lut[0]))
        self.lut = lut[0].copy() if self.single_lut else lut
        self.mean = torch.from_numpy(means.copy()).view(-1, 1, 1)
        self.std = torch.from_numpy(stds.copy()).view(-1, 1, 1)
        self._worker_seed: int | None = None

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if self.compose is not None:
            self._reseed_in_worker()
            image = self.compose(image=image)["image"]
            if image.shape != (self.image_size, self.image_size):  # a crop changed the size
                image = resize_square(image, self.image_size)
        if image.dtype != np.uint8:  # e.g. after ToFloat: albumentations' float images are in [0, 1]
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).unsqueeze(0)
            return ((x - self.mean) / self.std).expand(self.channels, -1, -1).contiguous()
        if self.single_lut:
            out = torch.from_numpy(self.lut[image]).unsqueeze(0)
            return out.expand(self.channels, -1, -1) if self.channels > 1 else out
        return torch.from_numpy(np.stack([lut[image] for lut in self.lut]))

    def reseed(self, seed: int) -> None:
        """Reseed the augmentation's generators (for one epoch of one loader process)."""
        if self.compose is not None:
            self.compose.set_random_seed(seed)
        info = get_worker_info()
        self._worker_seed = info.seed if info is not None else None  # a worker's own seeding is then not needed

    def _reseed_in_worker(self) -> None:
        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            rank = int(getattr(rank_zero_only, "rank", 0) or 0)  # the global rank (srun sets no RANK)
            state = np.random.SeedSequence([info.seed % 2**63, rank]).generate_state(1)[0]
            self.compose.set_random_seed(int(state))

    def __repr__(self) -> str:
        steps = [] if self.compose is None else [type(t).__name__ for t in self.compose.transforms]
        return f"ImageTransform({' -> '.join([*steps, 'ToTensor'])}, channels={self.channels})"


def build_transform(
    augment: Sequence[Mapping[str, Any]] | None = None, where: str = "data.augment", **settings: Any
) -> ImageTransform:
    """The full per-sample pipeline for one split (pass ``augment=None`` for val/test); ``settings`` are
    ``ImageTransform``'s (``image_size``, ``source_size``, ``channels``, ``mean``, ``std``, ``seed``), checked
    here with one-line errors."""
    channels = settings.get("channels", 1)
    mean, std = settings.get("mean", 0.5), settings.get("std", 0.5)
    if channels not in (1, 3):
        raise RecipeError(f"data.image.channels: expected 1 or 3, got {channels!r}")
    for key, value in (("mean", mean), ("std", std)):
        values = np.atleast_1d(np.asarray(value, dtype=np.float64))
        if values.ndim != 1 or len(values) not in (1, channels):
            raise RecipeError(f"data.image.{key}: expected one number or {channels} (one per channel), got {value!r}")
    if np.any(np.asarray(std, dtype=np.float64) <= 0):
        raise RecipeError(f"data.image.std: must be > 0, got {std!r}")
    return ImageTransform(build_augment(augment, where), **settings)
