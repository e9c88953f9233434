"""Losses: plain ``nn.Module``s.  A loss that needs training-set statistics defines ``set_class_counts``."""

from emoframe.losses.ccc import CCCLoss
from emoframe.losses.classification import CrossEntropy
from emoframe.losses.multilabel import WeightedBCE

__all__ = ["CCCLoss", "CrossEntropy", "WeightedBCE"]
