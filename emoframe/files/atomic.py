"""Write a file whole or not at all, with the permissions a plain ``open`` would give it.

The temporary file sits beside the target (same file system, so ``os.replace`` is atomic) and is removed when
the write fails. ``tempfile.mkstemp`` creates files readable by their owner only (0600); that is right for a
temporary file and wrong for a user's report or probability file, so the umask's usual mode is restored first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def open_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file here: 0666 less the umask."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """``with atomic_write(path, "wb") as f: ...``: ``path`` appears, complete, when the block ends without an
    error; on an error (or Ctrl-C) an existing ``path`` is left as it was and no temporary file stays behind."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, open_mode())
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def removed_unless_finished(paths: list[Path] | tuple[Path, ...]) -> Iterator[None]:
    """Folders and files under ``paths`` that did not exist before are removed if the block fails: a refused or
    interrupted command leaves nothing behind."""
    before = {p: p.exists() for p in paths}
    try:
        yield
    except BaseException:
        for path, existed in before.items():
            if not existed and path.exists():
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise
