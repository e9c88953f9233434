"""Imports every built-in component module so that its registration decorators run."""

import emoframe.backbones  # noqa: F401
import emoframe.callbacks  # noqa: F401
import emoframe.data  # noqa: F401
import emoframe.heads  # noqa: F401
import emoframe.losses  # noqa: F401
import emoframe.optim  # noqa: F401
import emoframe.tasks  # noqa: F401
