"""Evaluation outputs: reports written by `emoframe test` and `emoframe predict`, and post-processing.

Light on purpose: tasks import it, so nothing here imports scikit-learn (the clip SVMs are emoframe.clipsvm).
"""

from emoframe.eval.va_postprocessing import PostProcessor, StepRow, apply_postprocessors, fit_postprocessors

__all__ = ["PostProcessor", "StepRow", "apply_postprocessors", "fit_postprocessors"]
