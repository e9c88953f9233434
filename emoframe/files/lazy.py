"""Read one array of an ``.npz`` cache entry straight from disk, without loading it.

A face track of a 5-minute RECOLA video at 150x150 RGB is 0.5 GB, and a dataset of 27 of them does
not fit in memory. ``np.savez`` stores members uncompressed, so a member's bytes sit contiguously in
the zip file: we memory-map them where they are (no second copy on disk), and windows read only the
frames they need. The object pickles as (path, offset, shape, dtype), so DataLoader workers started
with ``spawn`` re-open the map instead of receiving a copy of the data.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from emoframe.errors import DataError

_LOCAL_HEADER = 30  # bytes of a zip local file header before the name and extra field


class NpzMember:
    """A read-only, lazily memory-mapped array stored in an ``.npz`` file; index it like an ndarray."""

    def __init__(self, path: str | Path, name: str) -> None:
        self.path = str(path)
        self.name = name
        self.offset, self.shape, self.dtype, self.fortran = _locate(Path(path), name)
        self._map: np.memmap | None = None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def array(self) -> np.ndarray:
        """The memory map (opened on first use in each process)."""
        if self._map is None:
            order = "F" if self.fortran else "C"
            self._map = np.memmap(self.path, self.dtype, "r", self.offset, self.shape, order=order)
        return self._map

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.array()[index])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_map": None}


def _locate(path: Path, name: str) -> tuple[int, tuple[int, ...], np.dtype, bool]:
    """(data offset, shape, dtype, fortran order) of ``name`` inside the npz at ``path``."""
    member = name if name.endswith(".npy") else name + ".npy"
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            raise DataError(f"{path}: member {member} is compressed; cannot map it (rebuild the cache entry)")
        with path.open("rb") as f:
            f.seek(info.header_offset)
            header = f.read(_LOCAL_HEADER)
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            f.seek(info.header_offset + _LOCAL_HEADER + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"Cannot map {member} in cache entry {path}: {err}") from None
    if dtype.hasobject:
        raise DataError(f"{path}: member {member} holds Python objects; cannot map it")
    return offset, tuple(shape), dtype, fortran
