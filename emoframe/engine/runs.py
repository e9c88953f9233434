"""Run folders and output paths: made only once a verb knows it can proceed, and removed when it fails at once."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from emoframe.errors import RecipeError
from emoframe.files.atomic import removed_unless_finished as removed_unless_finished
from emoframe.launch import RUN_DIR_ENV


def check_output(path: str | Path | None, option: str = "--output", folder: bool = False) -> Path | None:
    """``path`` when it can be written: no part of its parent is a file, the nearest existing folder is writable,
    and it is not a folder where a file is expected (or the reverse). Checked before any work, in one line."""
    if path is None:
        return None
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        expected = "a folder" if folder else "a file"
        raise RecipeError(
            f"{option} {path}: expected {expected}, but it is {'a folder' if path.is_dir() else 'a file'}"
        )
    parent = path if folder else path.parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise RecipeError(f"{option} {path}: {ancestor} is a file, not a folder (choose another path)")
            if not os.access(ancestor, os.W_OK | os.X_OK) or _read_only(ancestor):
                why = "Read-only file system" if _read_only(ancestor) else "Permission denied"
                raise RecipeError(f"{option} {path}: cannot write {ancestor}: {why} (choose a writable folder)")
            return path
    return path


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only (root may write anywhere else)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def remove_unstarted_run(run_dir: Path, fresh: bool, global_zero: bool = True) -> None:
    """A run folder this command made that holds no checkpoint yet is removed, so a failed start uses up no version.

    Only global rank 0 removes it (it alone creates files); a failing rank on another node leaves rank 0's run alone.
    """
    if fresh and global_zero and not list(run_dir.glob("checkpoints/*.ckpt")):
        shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the recipe's folder too, when this was its first run
            run_dir.parent.rmdir()


@contextlib.contextmanager
def handed_to_launched_ranks(run_dir: Path) -> Iterator[None]:
    """The run folder in the environment for the duration of a fit only: Lightning's DDP launcher starts the other
    ranks as new processes, and this is how they learn rank 0's choice. Nothing else reads it."""
    before = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = before
