"""Pure tensor math shared by several layers (the loss, the metric, post-processing, reports), as in
torchmetrics' ``functional``: each function here has a stateful counterpart elsewhere (``ConcordanceMetric``)."""

from emoframe.functional.concordance import Estimator, concordance

__all__ = ["Estimator", "concordance"]
