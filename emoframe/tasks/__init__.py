"""Tasks: the LightningModules.  Each wires plain modules (backbone, head, loss) into training."""

from emoframe.tasks import frame_classifier, fusion_classifier, sequence_classifier, va_regressor  # noqa: F401
from emoframe.tasks.base import Task

__all__ = ["Task"]
