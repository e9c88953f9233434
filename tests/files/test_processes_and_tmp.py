"""The file layer: stale temporary files of dead writers, and pool workers that die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from emoframe.files.cache import ArrayCache


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_writers_temporary_file_is_removed_on_the_next_write(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    first = cache.put("x", [1], {"a": np.zeros(3)})
    assert first is not None
    dead = tmp_path / f".{first.name}.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".{first.name}.{os.getppid()}.def456.tmp"  # a live process: a writer still at work
    dead.write_bytes(b"half a file")
    live.write_bytes(b"being written")
    assert cache.put("x", [2], {"a": np.ones(3)}) is not None
    assert not dead.exists() and live.exists()
    np.testing.assert_array_equal(cache.get("x", [2])["a"], np.ones(3))


PARENT = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
from emoframe.files.processes import die_with_parent
import os
def work(_):
    os.write(1, f'{os.getpid()}\\n'.encode())  # one write: the two workers' lines cannot interleave
    time.sleep(120)
pool = ProcessPoolExecutor(2, initializer=die_with_parent)
futures = [pool.submit(work, i) for i in range(2)]
time.sleep(120)
"""


def test_pool_workers_die_with_a_killed_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    workers = [int(parent.stdout.readline()) for _ in range(2)]
    for pid in workers:
        os.kill(pid, 0)  # running
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    alive = list(workers)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if _running(pid)]
    assert not alive, f"workers {alive} outlived their SIGKILLed parent"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())  # a zombie has exited
