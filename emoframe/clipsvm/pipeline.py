"""Clip vectors ready for a linear SVM (Knyazev et al., EmotiW 2017, section 2.5), as scikit-learn steps.

As in the paper ("rescaling to range [-1, 1] and concatenation ... rootsift normalization
(sign(x) sqrt(|x|/||x||_1)) and global standardization is also applied to concatenated features"):
the clips are aggregated (emoframe.clipsvm.aggregations), then ``MinMaxScaler((-1, 1))`` per column fitted on
the training clips (test clips may fall outside [-1, 1]; they are not clipped), ``RootSIFT`` per clip,
``StandardScaler`` per column fitted on the training clips. Per-column rescaling of the concatenation is the
same as rescaling each aggregation separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from emoframe.clipsvm.aggregations import aggregate, check_aggregations, check_clips
from emoframe.errors import RecipeError


class ClipAggregator(TransformerMixin, BaseEstimator):
    """Variable-length clips -> fixed-length vectors; stateless except the per-frame width it checks later."""

    def __init__(self, aggregations: Sequence[str] = ("stat_star",), fft_length: int | None = None) -> None:
        check_aggregations(aggregations)  # a recipe typo fails at construction, not after feature loading
        bad_length = isinstance(fft_length, bool) or not isinstance(fft_length, int) or fft_length < 1
        if fft_length is not None and bad_length:
            raise RecipeError(f"fft_length: expected a positive integer or null, got {fft_length!r}")
        self.aggregations = aggregations
        self.fft_length = fft_length

    def fit(self, clips: Any, y: Any = None) -> ClipAggregator:
        """Remember the per-frame width so clips of another network are refused at transform time."""
        self.n_frame_features_ = check_clips(clips)[0].shape[1]
        return self

    def transform(self, clips: Any) -> np.ndarray:
        """``(N, k * D)`` clip vectors."""
        width = getattr(self, "n_frame_features_", None)
        frames = check_clips(clips, n_features=width)
        return aggregate(frames, self.aggregations, self.fft_length)


class RootSIFT(TransformerMixin, BaseEstimator):
    """sign(x) * sqrt(|x| / ||x||_1) per row (Arandjelović and Zisserman): Hellinger kernel under a linear SVM.

    Stateless; an all-zero row stays zero.
    """

    def fit(self, x: Any, y: Any = None) -> RootSIFT:
        """Nothing to fit; records the width like every sklearn transformer."""
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def transform(self, x: Any) -> np.ndarray:
        """The normalised rows (the squares of each row sum to 1)."""
        a = np.asarray(x, dtype=np.float64)
        l1 = np.abs(a).sum(axis=1, keepdims=True)
        return np.sign(a) * np.sqrt(np.abs(a) / np.where(l1 > 0, l1, 1.0))


def clip_feature_steps(
    aggregations: Sequence[str] = ("stat_star",), fft_length: int | None = None
) -> list[tuple[str, Any]]:
    """The paper's steps as ``Pipeline`` steps: aggregate, rescale to [-1, 1], RootSIFT, standardise."""
    return [
        ("aggregate", ClipAggregator(aggregations, fft_length)),
        ("rescale", MinMaxScaler(feature_range=(-1, 1))),
        ("rootsift", RootSIFT()),
        ("standardize", StandardScaler()),
    ]


def clip_feature_pipeline(aggregations: Sequence[str] = ("stat_star",), fft_length: int | None = None) -> Pipeline:
    """clips -> standardised clip vectors; ``fit`` on training clips only, then ``transform`` any clips."""
    return Pipeline(clip_feature_steps(aggregations, fft_length))
