"""Post-processing of continuous valence/arousal predictions (Tzirakis et al.; the AVEC 2016 baseline).

Fitted on development predictions and labels, then applied unchanged to test. Four steps, tried in
this order, each kept only if it raises the development CCC (AVEC estimator, over the concatenation of
recordings): (a) median filter, (b) centring, (c) scaling, (d) time shift. Every step works within a
recording, never across the boundary between two. One ``PostProcessor`` handles one target dimension;
``fit_postprocessors`` fits one per dimension of ``(T, D)`` predictions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from scipy.ndimage import median_filter

from emoframe.errors import DataError
from emoframe.functional.concordance import concordance
from emoframe.registry import RecipeError

STEPS = ("median", "centre", "scale", "shift")
MIN_GAIN = 1e-9  # a CCC "gain" smaller than this is rounding noise, not a reason to keep a step


@dataclass
class StepRow:
    """One line of the fitting report, so a run shows what each step was worth on development data.

    ``parameter``: the best candidate's window (s), bias, scale factor or shift (s); ``ccc_after``: its
    development CCC, reported even when it is lower than ``ccc_before`` and the step is not kept.
    """

    step: str
    parameter: float | None
    ccc_before: float
    ccc_after: float
    kept: bool


@dataclass
class PostProcessor:
    """Median filter, centring, scaling and time shift for one target, fitted on development data.

    The search ranges are fields (seconds); the fitted parameters are the identity until ``fit`` keeps a
    step. ``to_dict()``/``from_dict()`` give a plain dict (numbers, strings, lists) to save in a checkpoint.
    """

    max_median_s: float = 20.0
    median_points: int = 40
    max_shift_s: float = 10.0
    fps: float = 25.0
    median_window: int = 1  # frames, odd; 1 = no filter
    bias: float = 0.0
    scale_centre: float = 0.0  # scaling is about this (development prediction) mean
    scale: float = 1.0
    shift: int = 0  # frames
    report: list[StepRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        checks = {
            "max_median_s": self.max_median_s >= 0,
            "median_points": isinstance(self.median_points, int) and self.median_points >= 2,
            "max_shift_s": self.max_shift_s >= 0,
            "fps": self.fps > 0,
            "median_window": isinstance(self.median_window, int) and self.median_window >= 1 and self.median_window % 2,
            "shift": isinstance(self.shift, int) and self.shift >= 0,
        }
        expected = {
            "median_points": "an integer >= 2",
            "median_window": "an odd integer >= 1",
            "shift": "an integer >= 0 (frames)",
            "fps": "> 0",
        }
        for key, ok in checks.items():
            if not ok:
                raise RecipeError(
                    f"PostProcessor.{key}: expected {expected.get(key, '>= 0 (seconds)')}, got {getattr(self, key)!r}"
                )

    def median_grid(self, fps: float) -> list[int]:
        """Odd windows in frames, log-spaced from 1 frame to at most ``max_median_s``.

        With the defaults at 25 fps: every odd size up to 17 frames, then about 17% apart up to 499 frames
        (30 windows); dense where a window step changes the result most, and a fixed cost per frame rate.
        """
        top = max(1, round(self.max_median_s * fps))
        cap = top if top % 2 else top - 1
        raw = np.geomspace(1, top, self.median_points)
        return sorted({min(int(2 * math.floor(w / 2) + 1), cap) for w in raw})

    def fit(self, preds: Sequence[np.ndarray], labels: Sequence[np.ndarray], fps: float = 25.0) -> PostProcessor:
        """Choose each step's parameter on development recordings; fills ``report``; returns ``self``."""
        preds = _recordings(preds, "PostProcessor.fit preds")
        labels = _recordings(labels, "PostProcessor.fit labels", allow_nan=True)
        if len(preds) != len(labels):
            raise DataError(f"PostProcessor.fit: {len(preds)} prediction recordings but {len(labels)} label recordings")
        for i, (p, y) in enumerate(zip(preds, labels)):
            if len(p) != len(y):
                raise DataError(f"PostProcessor.fit: recording {i} has {len(p)} predictions but {len(y)} labels")
        if not (isinstance(fps, (int, float)) and fps > 0):
            raise DataError(f"PostProcessor.fit: expected fps > 0, got {fps!r}")
        if int(np.sum([np.sum(~np.isnan(y)) for y in labels])) < 2:
            raise DataError("PostProcessor.fit: expected at least 2 labelled development frames")
        self.fps = float(fps)
        self.median_window, self.bias, self.scale_centre, self.scale, self.shift = 1, 0.0, 0.0, 1.0, 0
        self.report = []
        current = _ccc(preds, labels)

        def consider(step: str, parameter: float | None, candidate: list[np.ndarray] | None, score: float) -> bool:
            nonlocal preds, current
            kept = candidate is not None and score > current + MIN_GAIN
            self.report.append(StepRow(step, parameter, current, score, kept))
            if kept:
                preds, current = candidate, score
            return kept

        # (a) median filter: best window of the grid (window 1 is "no filter")
        best_w, best_score, best = 1, current, None  # stays "no filter" when the grid has no other window
        for w in self.median_grid(fps)[1:]:
            filtered = [_median(p, w) for p in preds]
            score = _ccc(filtered, labels)
            if best is None or score > best_score:  # the best candidate, reported even when it loses
                best_w, best_score, best = w, score, filtered
        if consider("median", best_w / fps, best, best_score):
            self.median_window = best_w

        # (b) centring: add the bias between the development label and prediction means
        p_all, y_all = _labelled(preds, labels)
        bias = float(y_all.mean() - p_all.mean())
        centred = [p + bias for p in preds]
        if consider("centre", bias, centred, _ccc(centred, labels)):
            self.bias = bias

        # (c) scaling about the prediction mean by std(labels) / std(predictions)
        p_all, y_all = _labelled(preds, labels)
        p_std = float(p_all.std())
        if p_std > 0:
            centre, factor = float(p_all.mean()), float(y_all.std()) / p_std
            scaled = [(p - centre) * factor + centre for p in preds]
            if consider("scale", factor, scaled, _ccc(scaled, labels)):
                self.scale_centre, self.scale = centre, factor
        else:  # constant predictions: nothing to scale
            consider("scale", None, None, current)

        # (d) time shift: predictions delayed by s frames (prediction at t scored against the label at t + s)
        best_s, best_score, best = 0, current, None
        for s in range(1, round(self.max_shift_s * fps) + 1):
            shifted = [_shift(p, s) for p in preds]
            score = _ccc(shifted, labels)
            if best is None or score > best_score:
                best_s, best_score, best = s, score, shifted
        if consider("shift", best_s / fps, best, best_score):
            self.shift = best_s
        return self

    def apply(self, preds: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The kept steps, in fitting order, on per-recording 1-D predictions (same frame rate as ``fit``)."""
        out = []
        for p in _recordings(preds, "PostProcessor.apply preds"):
            if self.median_window > 1:
                p = _median(p, self.median_window)
            p = p + self.bias
            p = (p - self.scale_centre) * self.scale + self.scale_centre
            if self.shift:
                p = _shift(p, self.shift)
            out.append(p)
        return out

    @property
    def dev_ccc(self) -> tuple[float, float]:
        """Development CCC before any step and after the kept ones (NaN before ``fit``)."""
        if not self.report:
            return math.nan, math.nan
        after = [r.ccc_after for r in self.report if r.kept]
        return self.report[0].ccc_before, after[-1] if after else self.report[0].ccc_before

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers, strings and lists: safe in a checkpoint, JSON or YAML."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> PostProcessor:
        """Inverse of ``to_dict``; an unknown key (e.g. from a newer version) is an error naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(state) - known)
        if unknown:
            raise RecipeError(f"PostProcessor.from_dict: unknown key(s) {unknown}; expected some of {sorted(known)}")
        kwargs = dict(state)
        try:
            kwargs["report"] = [StepRow(**row) for row in kwargs.get("report", [])]
        except TypeError as err:
            raise RecipeError(f"PostProcessor.from_dict: bad report row: {err}") from None
        return cls(**kwargs)


def fit_postprocessors(
    preds: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    target_names: Sequence[str],
    fps: float = 25.0,
    **options: Any,
) -> dict[str, PostProcessor]:
    """One ``PostProcessor`` per target, from per-recording ``(T, D)`` predictions and labels."""
    cols = _columns(preds, target_names, "fit_postprocessors preds")
    ycols = _columns(labels, target_names, "fit_postprocessors labels")
    return {name: PostProcessor(**options).fit(cols[d], ycols[d], fps) for d, name in enumerate(target_names)}


def apply_postprocessors(processors: Mapping[str, PostProcessor], preds: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per-recording ``(T, D)`` predictions, columns in the order of ``processors``."""
    names = list(processors)
    cols = _columns(preds, names, "apply_postprocessors preds")
    done = [processors[name].apply(cols[d]) for d, name in enumerate(names)]
    return [np.stack([done[d][r] for d in range(len(names))], axis=1) for r in range(len(preds))]


def _columns(recordings: Sequence[np.ndarray], names: Sequence[str], where: str) -> list[list[np.ndarray]]:
    arrays = [np.asarray(r) for r in recordings]
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[1] != len(names):
            raise DataError(f"{where}: expected (T, {len(names)}) arrays for {list(names)}, recording {i} is {a.shape}")
    return [[a[:, d] for a in arrays] for d in range(len(names))]


def _recordings(recordings: Sequence[np.ndarray], where: str, allow_nan: bool = False) -> list[np.ndarray]:
    """Validated float64 copies: a non-empty list of 1-D arrays, finite unless ``allow_nan``."""
    if isinstance(recordings, np.ndarray) or not len(recordings):
        raise DataError(f"{where}: expected a non-empty list of per-recording 1-D arrays")
    out = []
    for i, r in enumerate(recordings):
        a = np.asarray(r, dtype=np.float64)
        if a.ndim != 1 or a.size == 0:
            raise DataError(f"{where}: expected per-recording 1-D arrays, recording {i} has shape {a.shape}")
        bad = np.isinf(a) | (np.zeros_like(a, bool) if allow_nan else np.isnan(a))
        if bad.any():
            raise DataError(f"{where}: recording {i} has a non-finite value at frame {int(np.argmax(bad))}")
        out.append(a)
    return out


def _labelled(preds: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.concatenate(preds), np.concatenate(labels)
    keep = ~np.isnan(y)
    return p[keep], y[keep]


def _ccc(preds: list[np.ndarray], labels: list[np.ndarray]) -> float:
    """AVEC CCC over the concatenation of recordings (NaN labels left out)."""
    p, y = torch.from_numpy(np.concatenate(preds)), torch.from_numpy(np.concatenate(labels))
    return float(concordance(p, y, estimator="avec"))


def _median(p: np.ndarray, window: int) -> np.ndarray:
    """Centred running median; the ends repeat the edge value (zero padding would pull them towards 0)."""
    return median_filter(p, size=window, mode="nearest")


def _shift(p: np.ndarray, frames: int) -> np.ndarray:
    """Delay by ``frames``: the output at t is the prediction at t - frames; the first frames repeat p[0]."""
    n = min(frames, len(p))
    return np.concatenate([np.full(n, p[0]), p[: len(p) - n]])
