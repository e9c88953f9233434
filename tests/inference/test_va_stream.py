"""A valence/arousal model's fitted post-processing on a stream of rows equals ``PostProcessor.apply`` on each
whole track, however the rows are chunked (emoframe.inference.va_stream)."""

from __future__ import annotations

import numpy as np
import pytest

from emoframe.eval.va_postprocessing import PostProcessor
from emoframe.inference.va_stream import StreamingPostProcess

NAMES = ("arousal", "valence")


def processors(median: int, shift: int) -> dict[str, PostProcessor]:
    return {
        "arousal": PostProcessor(fps=25.0, median_window=median, bias=0.1, scale_centre=0.05, scale=1.3, shift=shift),
        "valence": PostProcessor(fps=25.0, median_window=1, bias=-0.2, scale_centre=0.0, scale=0.7, shift=0),
    }


@pytest.mark.parametrize(("median", "shift"), [(7, 2), (9, 6), (1, 3), (31, 0)])
def test_streamed_rows_equal_whole_track_post_processing(median: int, shift: int) -> None:
    rng = np.random.default_rng(median * 10 + shift)
    lengths = {0: 53, 1: 4}  # a short track too: shorter than the median window
    raw = {k: rng.normal(size=(n, 2)) for k, n in lengths.items()}
    rows, t = [], {0: 0, 1: 0}
    for frame in range(60):
        for k in (0, 1):
            if t[k] < lengths[k] and (k == 0 or frame % 3 == 0):
                rows.append({"frame": frame, "track_id": k, **dict(zip(NAMES, raw[k][t[k]]))})
                t[k] += 1
        if frame % 7 == 0:
            rows.append({"frame": frame, "track_id": -1, "arousal": float("nan"), "valence": float("nan")})
    stream = StreamingPostProcess(processors(median, shift), rate=25.0)
    out, start = [], 0
    while start < len(rows):  # chunks of uneven sizes
        size = int(rng.integers(1, 9))
        out += stream.add(rows[start : start + size])
        start += size
    out += stream.finish()
    assert sorted((r["frame"], r["track_id"]) for r in out) == sorted((r["frame"], r["track_id"]) for r in rows)
    for k in (0, 1):
        mine = sorted((r for r in out if r["track_id"] == k), key=lambda r: r["frame"])
        for d, name in enumerate(NAMES):
            expected = processors(median, shift)[name].apply([raw[k][:, d]])[0]
            np.testing.assert_allclose([r[name] for r in mine], expected, rtol=0, atol=1e-12)
            np.testing.assert_array_equal([r[f"raw_{name}"] for r in mine], raw[k][:, d])
    assert all(np.isnan(r["raw_arousal"]) for r in out if r["track_id"] == -1)


def test_rows_are_held_back_no_longer_than_the_median_needs() -> None:
    stream = StreamingPostProcess(processors(median=9, shift=1), rate=25.0)  # half-window 4, shift 1: 3 ahead
    released = stream.add([{"frame": i, "track_id": 0, "arousal": float(i), "valence": 0.0} for i in range(10)])
    assert [r["frame"] for r in released] == list(range(7))
    assert [r["frame"] for r in stream.finish()] == [7, 8, 9]


def test_windows_follow_the_looked_at_frame_rate() -> None:
    """Fitted at 25 frames/s; one frame in 5 looked at (5 frames/s): a 21-frame median becomes 5, a 10-frame
    shift 2."""
    p = {"arousal": PostProcessor(fps=25.0, median_window=21, shift=10), "valence": PostProcessor(fps=25.0)}
    steps = StreamingPostProcess(p, rate=5.0).steps
    assert (steps[0].half, steps[0].shift) == (2, 2) and (steps[1].half, steps[1].shift) == (0, 0)
