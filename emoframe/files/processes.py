"""Worker processes that end with their parent: a pool initializer, so a killed run leaves no orphan working on."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux); elsewhere a no-op.

    Used as ``ProcessPoolExecutor(initializer=die_with_parent)``: a SIGKILLed parent cannot clean up, and its
    pool workers would otherwise run on, idle or busy, until the machine restarts.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
