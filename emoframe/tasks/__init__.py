"""Tasks: the LightningModules.  Each wires plain modules (backbone, head, loss) into training."""

from emoframe.tasks import (  # noqa: F401
    frame_classifier,
    fusion_classifier,
    multilabel_classifier,
    sequence_classifier,
    va_regressor,
)
from emoframe.tasks.base import Task

__all__ = ["Task"]
