"""Imports every built-in component module so that its registration decorators run."""

import emoframe.backbones
import emoframe.callbacks
import emoframe.clipsvm.aggregations
import emoframe.data
import emoframe.faces
import emoframe.features
import emoframe.finetune
import emoframe.heads
import emoframe.losses
import emoframe.optim
import emoframe.tasks
import emoframe.temporal  # noqa: F401
