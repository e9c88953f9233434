"""Evaluation outputs: reports written by `emoframe test` and `emoframe predict`, post-processing, and the
clip-feature SVMs (Knyazev et al.) trained on per-frame CNN features."""

from emoframe.eval.clip_features import (
    AGGREGATIONS,
    ClipAggregator,
    RootSIFT,
    aggregate,
    clip_feature_pipeline,
)
from emoframe.eval.postprocess import PostProcessor, StepRow, apply_postprocessors, fit_postprocessors
from emoframe.eval.svm import ClipSVM, SVMEnsemble, build_svm_ensemble, load_model, prior_weights, save_model

__all__ = [
    "AGGREGATIONS",
    "ClipAggregator",
    "ClipSVM",
    "PostProcessor",
    "RootSIFT",
    "SVMEnsemble",
    "StepRow",
    "aggregate",
    "apply_postprocessors",
    "build_svm_ensemble",
    "clip_feature_pipeline",
    "fit_postprocessors",
    "load_model",
    "prior_weights",
    "save_model",
]
