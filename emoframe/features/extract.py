"""Run feature extractors over an image array once, in parallel chunks, cached on disk and resumable.

Each chunk of each extractor is an ``ArrayCache`` entry keyed by (this module's version, the
extractor's class, version and settings, the sha256 of the images, the chunk bounds). Workers write
finished chunks atomically (temporary file + ``os.replace``), so a killed extraction resumes from the
chunks it finished and a half-written chunk is never read; the full array is assembled once every
chunk exists.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from emoframe.errors import DataError
from emoframe.features.base import FeatureExtractor, Stats, check_images
from emoframe.files.cache import ArrayCache
from emoframe.files.processes import die_with_parent

EXTRACT_VERSION = 1
CHUNK_SIZE = 2048
_STAT_PREFIX = "stat."


@dataclass
class Extracted:
    """The concatenated features of every extractor, and the counters each one reported."""

    values: np.ndarray  # float32 (N, sum of dims), extractors in the order given
    stats: dict[str, Stats] = field(default_factory=dict)  # extractor name -> summed counters
    dims: dict[str, int] = field(default_factory=dict)  # extractor name -> its number of columns


def images_fingerprint(images: np.ndarray) -> str:
    """sha256 of the array's shape, dtype and bytes: the cache key of its features."""
    digest = hashlib.sha256(f"{images.shape}|{images.dtype}".encode())
    digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    return digest.hexdigest()


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


def extract_features(
    images: np.ndarray,
    extractors: Sequence[FeatureExtractor],
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    desc: str = "features",
) -> Extracted:
    """Features of uint8 (N, H, W) ``images`` from each extractor, concatenated in order.

    ``cache_dir`` defaults to ``$EMOFRAME_CACHE`` (see ``emoframe.files.cache``); ``workers`` processes
    (default min(2, CPUs); 0 or 1 computes in this process) each take chunks of ``chunk_size`` images.
    Counters (e.g. landmark fallbacks) are summed over chunks, stored on each extractor's ``stats``,
    returned, and reported in one stderr line per extractor that has something to say.
    """
    images = check_images(images, desc)
    if not extractors:
        raise DataError(f"{desc}: expected at least one feature extractor, got none")
    names = [e.name for e in extractors]
    if len(set(names)) != len(names):
        raise DataError(
            f"{desc}: expected each extractor name once (their columns and counters are named), got {names}"
        )
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise DataError(f"{desc}: chunk_size: expected an integer >= 1, got {chunk_size!r}")
    workers = default_workers() if workers is None else workers
    cache = ArrayCache(cache_dir)
    fingerprint = images_fingerprint(images)
    bounds = [(s, min(s + chunk_size, len(images))) for s in range(0, len(images), chunk_size)]
    keys = {
        (e, c): _chunk_key(extractor, fingerprint, start, stop)
        for e, extractor in enumerate(extractors)
        for c, (start, stop) in enumerate(bounds)
    }
    pending = [task for task, (label, parts) in keys.items() if not cache.path(label, parts).is_file()]
    computed = _run(pending, images, extractors, bounds, keys, cache, workers, desc)

    values = np.empty((len(images), sum(e.dim for e in extractors)), dtype=np.float32)
    out = Extracted(values=values)
    column = 0
    for e, extractor in enumerate(extractors):
        total: Stats = {}
        for c, (start, stop) in enumerate(bounds):
            chunk = computed.get((e, c)) or _read(cache, *keys[e, c], (stop - start, extractor.dim))
            if chunk is None:  # unreadable or wrong shape (removed by the cache): compute it again here
                chunk = _compute_chunk(extractor, images[start:stop], cache.dir, *keys[e, c])
            chunk_values, chunk_stats = chunk
            values[start:stop, column : column + extractor.dim] = chunk_values
            for name, count in chunk_stats.items():
                total[name] = total.get(name, 0) + count
        extractor.stats = total
        out.stats[extractor.name] = total
        out.dims[extractor.name] = extractor.dim
        column += extractor.dim
        line = extractor.report(total, len(images), desc)
        if line:
            print(line, file=sys.stderr)
    return out


Chunk = tuple[np.ndarray, Stats]
Key = tuple[str, list[object]]


def _chunk_key(extractor: FeatureExtractor, fingerprint: str, start: int, stop: int) -> Key:
    kind = type(extractor)
    parts: list[object] = [
        EXTRACT_VERSION,
        f"{kind.__module__}.{kind.__qualname__}",
        extractor.version,
        extractor.settings(),
        fingerprint,
        start,
        stop,
    ]
    return f"features-{extractor.name}", parts


def _run(
    pending: list[tuple[int, int]],
    images: np.ndarray,
    extractors: Sequence[FeatureExtractor],
    bounds: list[tuple[int, int]],
    keys: dict[tuple[int, int], Key],
    cache: ArrayCache,
    workers: int,
    desc: str,
) -> dict[tuple[int, int], Chunk]:
    """Compute the missing chunks (in worker processes when there are several) and store each one.

    Returns the chunks the cache could not store (kept in memory instead); stored ones are read back.
    """
    if not pending:
        return {}
    names = ", ".join(dict.fromkeys(extractors[e].name for e, _ in pending))
    bar = tqdm(total=sum(bounds[c][1] - bounds[c][0] for _, c in pending), desc=f"{desc}: {names}", unit="img")
    kept: dict[tuple[int, int], Chunk] = {}

    def done(task: tuple[int, int], result: Chunk | None) -> None:
        if result is not None:
            kept[task] = result
        bar.update(bounds[task[1]][1] - bounds[task[1]][0])

    try:
        if workers <= 1 or len(pending) == 1:
            for e, c in pending:
                start, stop = bounds[c]
                done((e, c), _store_chunk(extractors[e], images[start:stop], cache.dir, *keys[e, c]))
            return kept
        # fork where available: workers inherit the imported modules (as DataLoader workers do)
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        executor = ProcessPoolExecutor(min(workers, len(pending)), mp_context=context, initializer=die_with_parent)
        try:
            futures: dict[Future[Chunk | None], tuple[int, int]] = {}
            for e, c in pending:
                start, stop = bounds[c]
                future = executor.submit(_store_chunk, extractors[e], images[start:stop], cache.dir, *keys[e, c])
                futures[future] = (e, c)
            for future in as_completed(futures):
                done(futures[future], future.result())  # a failed chunk stops the run; finished ones stay cached
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        return kept
    finally:
        bar.close()


def _compute_chunk(extractor: FeatureExtractor, images: np.ndarray, cache_dir: Path, label: str, parts: list) -> Chunk:
    """Compute one chunk and try to store it."""
    values, stats = extractor.compute(images)
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.shape != (len(images), extractor.dim):
        raise DataError(
            f"feature extractor {extractor.name}: expected ({len(images)}, {extractor.dim}) values, got {values.shape}"
        )
    arrays = {"values": values, **{_STAT_PREFIX + k: np.asarray(v, dtype=np.int64) for k, v in stats.items()}}
    ArrayCache(cache_dir).put(label, parts, arrays)
    return values, dict(stats)


def _store_chunk(
    extractor: FeatureExtractor, images: np.ndarray, cache_dir: Path, label: str, parts: list
) -> Chunk | None:
    """Worker task: compute and store one chunk; returns it only when the cache could not store it."""
    chunk = _compute_chunk(extractor, images, cache_dir, label, parts)
    return None if ArrayCache(cache_dir).path(label, parts).is_file() else chunk


def _read(cache: ArrayCache, label: str, parts: list, shape: tuple[int, int]) -> Chunk | None:
    """A stored chunk, or ``None`` when it is missing, unreadable or of another shape (then removed)."""
    arrays = cache.get(label, parts)
    if arrays is None or "values" not in arrays or arrays["values"].shape != shape:
        if arrays is not None:
            cache.path(label, parts).unlink(missing_ok=True)
        return None
    stats = {k[len(_STAT_PREFIX) :]: int(v) for k, v in arrays.items() if k.startswith(_STAT_PREFIX)}
    return arrays["values"].astype(np.float32, copy=False), stats
