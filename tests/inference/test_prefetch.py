"""A video's chunks decoded by a thread one chunk ahead (emoframe.inference.sources.prefetched): same frames in
the same order as decoding inline, errors where they happened, bounded look-ahead, and a clean stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emoframe.inference.sources import Sampling, Source, _video_frames, iter_source, prefetched


def test_prefetched_video_chunks_equal_inline_decoding(videos) -> None:
    source = Source("video", str(videos["angry"]), Path(videos["angry"]))
    inline = [f for chunk in _video_frames(source, Sampling(every=3), 8, 640) for f in chunk]
    ahead = [f for chunk in iter_source(source, Sampling(every=3), 8, 640) for f in chunk]
    assert [f.index for f in ahead] == [f.index for f in inline] == list(range(0, 68, 3))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(ahead, inline, strict=True))


def test_errors_arrive_in_order_and_the_look_ahead_is_bounded() -> None:
    made: list[int] = []

    def items() -> Iterator[int]:
        for i in range(5):
            made.append(i)
            yield i
        raise ValueError("broken at 5")

    out = prefetched(items(), depth=1)
    assert next(out) == 0
    time.sleep(0.3)
    assert len(made) <= 3, made  # the one handed out, one waiting, one being made
    got = [next(out) for _ in range(4)]
    assert got == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="broken at 5"):
        next(out)


def test_closing_early_stops_the_thread() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    out = prefetched(endless())
    assert [next(out) for _ in range(3)] == [0, 1, 2]
    out.close()
    time.sleep(0.3)
    assert threading.active_count() == before
