"""A small on-disk cache of decoded arrays, so a dataset's images are decoded once per content.

Entries are ``.npz`` files named ``<label>-<key>.npz`` where ``key`` hashes (reader version, source
kind, content fingerprint, ...). A file's fingerprint is the sha256 of its bytes; a folder's is a hash
of its sorted (relative path, size, mtime_ns). Writes go to a temporary file in the cache folder and
are renamed into place with ``os.replace``, so a run killed mid-write never leaves a half-written entry
under the final name; leftover temporary files are never read and are removed after a day.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from emoframe.files.atomic import open_mode

CACHE_ENV = "EMOFRAME_CACHE"
_TMP_SUFFIX = ".tmp"
_STALE_TMP_S = 24 * 3600
_file_hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process
_unwritable: dict[str, str] = {}  # cache folder -> why it cannot be written, per process (said once)


def default_cache_dir() -> Path:
    """``$EMOFRAME_CACHE`` if set, else ``~/.cache/emoframe``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emoframe"


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's content, streamed; memoised per process by (path, size, mtime_ns)."""
    path = Path(path).resolve()
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _file_hashes:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _file_hashes[memo] = digest.hexdigest()
    return _file_hashes[memo]


def folder_fingerprint(root: str | Path, keep: Callable[[str], bool] | None = None) -> str:
    """Hash of the sorted (relative path, size, mtime_ns) of the files under ``root``.

    Cheap (stat only) and changes whenever a file is added, removed, replaced or edited. Hidden files
    and folders are ignored; ``keep`` filters by relative path.
    """
    rows = []
    for rel in walk_files(root):
        if keep is None or keep(rel):
            st = os.stat(os.path.join(root, rel))
            rows.append((rel, st.st_size, st.st_mtime_ns))
    rows.sort()
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def walk_files(root: str | Path) -> Iterator[str]:
    """Relative POSIX paths of the visible files under ``root`` (hidden files and folders skipped)."""
    top = os.path.normpath(root)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")  # once per folder: relpath is slow
        prefix = "" if rel_dir == "." else rel_dir + "/"
        yield from (prefix + name for name in filenames if not name.startswith("."))


def cache_key(parts: Iterable[object]) -> str:
    """A short stable hash of JSON-serialisable parts."""
    return hashlib.sha256(json.dumps(list(parts), default=str).encode()).hexdigest()[:24]


class ArrayCache:
    """Named dictionaries of numpy arrays stored as ``.npz`` files, written atomically.

    A cache folder that cannot be written degrades to no caching with one warning line on stderr, once per
    folder (e.g. a read-only home on a cluster), never to a failed run; ``writable()`` tells a caller that keeps
    what it builds in memory instead.
    """

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    def path(self, label: str, parts: Iterable[object]) -> Path:
        """The entry file for ``label`` and the key parts."""
        return self.dir / f"{label}-{cache_key(parts)}.npz"

    def get(self, label: str, parts: Iterable[object]) -> dict[str, np.ndarray] | None:
        """The stored arrays, or ``None`` when absent or unreadable (an unreadable entry is removed)."""
        path = self.path(label, parts)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {name: z[name] for name in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            warnings.warn(f"Ignoring unreadable cache entry {path} ({err}); it will be rebuilt", stacklevel=2)
            _unlink(path)
            return None

    def writable(self) -> bool:
        """Whether entries can be written here (tried once per folder and process: a probe file made, removed)."""
        if str(self.dir) in _unwritable:
            return False
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=f".probe.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=self.dir)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            self._cannot_write(err)
            return False
        return True

    def _cannot_write(self, err: OSError) -> None:
        if str(self.dir) not in _unwritable:
            _unwritable[str(self.dir)] = err.strerror or str(err)
            reason = err.strerror or type(err).__name__
            print(
                f"Warning: cache folder {self.dir} is not writable ({reason}); continuing without cache",
                file=sys.stderr,
            )

    def put(self, label: str, parts: Iterable[object], arrays: Mapping[str, np.ndarray]) -> Path | None:
        """Store ``arrays`` atomically; returns the entry path, or ``None`` if the cache is not writable."""
        path = self.path(label, parts)
        tmp: str | None = None
        if str(self.dir) in _unwritable:
            return None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._remove_stale_tmp()
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=self.dir)
            os.fchmod(fd, open_mode())  # not mkstemp's 0600: a cache shared by a group stays readable to it
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
            return path
        except OSError as err:
            self._cannot_write(err)
            return None
        finally:
            if tmp is not None:  # failed or interrupted (KeyboardInterrupt too): leave no partial file
                _unlink(Path(tmp))

    def get_or_build(
        self, label: str, parts: Iterable[object], build: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """Cached arrays for the key, building and storing them on a miss."""
        parts = list(parts)
        hit = self.get(label, parts)
        if hit is not None:
            return hit
        arrays = dict(build())
        self.put(label, parts, arrays)
        return arrays

    def _remove_stale_tmp(self) -> None:
        """Remove temporary files left by killed writers: their writer's process is gone (the PID in the name),
        or, for names without one, they are a day old."""
        now = time.time()
        for tmp in self.dir.glob(f".*{_TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                pid = _writer_pid(tmp.name)
                if (pid is not None and not _alive(pid)) or now - tmp.stat().st_mtime > _STALE_TMP_S:
                    tmp.unlink()


def _writer_pid(name: str) -> int | None:
    """The PID in ``.<entry>.npz.<pid>.<random>.tmp``, the name ``put`` gives its temporary file."""
    parts = name.split(".")
    return int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
