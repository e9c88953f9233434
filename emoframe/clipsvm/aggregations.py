"""Clip aggregations (Knyazev et al., EmotiW 2017, sections 2.3.3 and 2.5): a clip's per-frame features -> one vector.

A clip is a ``(T, D)`` array: ``T >= 1`` frames of ``D`` penultimate-layer features. Every clip becomes
one vector by aggregating over time, so an SVM can classify clips of any length. Registered in
``emoframe.registry.AGGREGATIONS`` (``emoframe list aggregations``):

* ``mean``, ``std`` (population, ``ddof=0``: a one-frame clip has std 0), ``min``, ``max``: ``D`` values each;
* ``stat`` = mean, std, min, max (Bargal et al.'s STAT); ``stat_star`` = mean, std, min (the paper's STAT*,
  "STAT without max");
* ``fft``: "the 1 dimensional Fourier transform (fft) for each neuron and then taking the average of that.
  For instance, for VGG-Face for one video we have 4096 dimensional fft features": the magnitude of each
  feature's DFT over time, averaged over the frequency bins, so ``D`` values whatever ``T`` is. The average
  of the complex coefficients would just be the first frame (inverse DFT at t=0), hence the magnitude.
  ``fft_length`` optionally zero-pads/truncates every clip to the same number of bins first.

Rescaling, RootSIFT and standardisation of the clip vectors are in emoframe.clipsvm.pipeline.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from emoframe.errors import DataError, RecipeError
from emoframe.registry import AGGREGATIONS

Aggregation = Callable[[np.ndarray], np.ndarray]
"""``(T, D)`` float64 frames -> ``(k * D,)`` clip vector."""

PARTS: dict[str, tuple[str, ...]] = {"stat": ("mean", "std", "min", "max"), "stat_star": ("mean", "std", "min")}
"""Composite aggregations and the atomic ones they concatenate, in order (to catch a part given twice)."""


@AGGREGATIONS.register("mean")
def agg_mean(frames: np.ndarray) -> np.ndarray:
    """Mean over time: the paper's frame-feature averaging baseline (Table 2)."""
    return frames.mean(axis=0)


@AGGREGATIONS.register("std")
def agg_std(frames: np.ndarray) -> np.ndarray:
    """Population standard deviation over time (0 for a one-frame clip)."""
    return frames.std(axis=0)


@AGGREGATIONS.register("min")
def agg_min(frames: np.ndarray) -> np.ndarray:
    """Minimum over time."""
    return frames.min(axis=0)


@AGGREGATIONS.register("max")
def agg_max(frames: np.ndarray) -> np.ndarray:
    """Maximum over time (left out of STAT*: the paper found it hurt generalisation)."""
    return frames.max(axis=0)


@AGGREGATIONS.register("stat")
def agg_stat(frames: np.ndarray) -> np.ndarray:
    """STAT: mean, std, min, max concatenated (4 D values)."""
    return np.concatenate([AGGREGATIONS.get(p)(frames) for p in PARTS["stat"]])


@AGGREGATIONS.register("stat_star")
def agg_stat_star(frames: np.ndarray) -> np.ndarray:
    """STAT*: mean, std, min concatenated (3 D values), the paper's best statistics."""
    return np.concatenate([AGGREGATIONS.get(p)(frames) for p in PARTS["stat_star"]])


@AGGREGATIONS.register("fft")
def agg_fft(frames: np.ndarray, n: int | None = None) -> np.ndarray:
    """Mean over frequency bins of |DFT over time| of each feature: D values for any clip length.

    ``n`` zero-pads or truncates the time axis to ``n`` bins (numpy's ``fft(..., n=n)``).
    """
    return np.abs(np.fft.fft(frames, n=n, axis=0)).mean(axis=0)


def _parts(name: str) -> tuple[str, ...]:
    return PARTS.get(name, (name,))


def check_aggregations(aggregations: Sequence[str], where: str = "aggregations") -> tuple[str, ...]:
    """The names as a tuple, or a one-line ``RecipeError``: unknown name (listing the valid ones), empty list,
    or a feature given twice (``stat`` already holds ``mean``)."""
    if isinstance(aggregations, str) or not isinstance(aggregations, Sequence) or not aggregations:
        raise RecipeError(
            f"{where}: expected a non-empty list of aggregation names from {', '.join(AGGREGATIONS.names())}, "
            f"got {aggregations!r}"
        )
    seen: dict[str, str] = {}
    for i, name in enumerate(aggregations):
        if not isinstance(name, str) or name not in AGGREGATIONS:
            close = difflib.get_close_matches(str(name), AGGREGATIONS.names(), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RecipeError(
                f"Unknown aggregation {name!r} at {where}[{i}].{hint} Valid: {', '.join(AGGREGATIONS.names())}."
            )
        for part in _parts(name):
            if part in seen:
                raise RecipeError(f"{where}[{i}]: '{name}' repeats '{part}', already given by '{seen[part]}'")
            seen[part] = name
    return tuple(aggregations)


def check_clips(clips: Any, n_features: int | None = None, where: str = "clips") -> list[np.ndarray]:
    """The clips as float64 ``(T, D)`` arrays, or a one-line ``DataError`` naming the first bad clip.

    ``n_features`` is the per-frame width the clips must have (the one seen at fit time).
    """
    if isinstance(clips, np.ndarray) and clips.ndim == 3:
        clips = list(clips)  # equal-length clips stacked as (N, T, D)
    if isinstance(clips, (str, bytes, np.ndarray)) or not isinstance(clips, Sequence):
        got = f"array of shape {clips.shape}" if isinstance(clips, np.ndarray) else type(clips).__name__
        raise DataError(f"{where}: expected a list of (frames, features) arrays, one per clip, got {got}")
    if len(clips) == 0:
        raise DataError(f"{where}: expected at least one clip, got an empty list")
    source = "the width the pipeline was fitted on"
    out = []
    for i, clip in enumerate(clips):
        try:
            a = np.asarray(clip, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"{where}[{i}]: expected a numeric (frames, features) array, got {type(clip).__name__}"
            ) from None
        if a.ndim != 2:
            raise DataError(f"{where}[{i}]: expected a (frames, features) array, got shape {a.shape}")
        if a.shape[0] == 0:
            raise DataError(f"{where}[{i}]: empty clip (0 frames); every clip needs at least one frame")
        if a.shape[1] == 0:
            raise DataError(f"{where}[{i}]: expected at least one feature per frame, got shape {a.shape}")
        if n_features is None:
            n_features, source = a.shape[1], f"as {where}[0]"
        elif a.shape[1] != n_features:
            raise DataError(f"{where}[{i}]: {a.shape[1]} features per frame, expected {n_features} ({source})")
        if not np.isfinite(a).all():
            raise DataError(f"{where}[{i}]: NaN or infinite feature values")
        out.append(a)
    return out


def aggregate(
    clips: Any, aggregations: Sequence[str] = ("stat_star",), fft_length: int | None = None, where: str = "clips"
) -> np.ndarray:
    """``(N, k * D)`` clip vectors: the aggregations of each clip concatenated in the order given."""
    names = check_aggregations(aggregations)
    frames = check_clips(clips, where=where)
    fns = [AGGREGATIONS.get(n) for n in names]
    rows = [
        np.concatenate([fn(f, n=fft_length) if name == "fft" else fn(f) for name, fn in zip(names, fns)])
        for f in frames
    ]
    return np.stack(rows)
