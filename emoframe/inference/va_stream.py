"""A valence/arousal model's fitted post-processing (``emoframe.eval.va_postprocessing``), applied to a stream of rows.

Training fits, per target, a centred running median, a bias, a scale and a time shift on development
recordings, and ``emoframe test`` reports CCC after them. On a video, each face track is one recording. The
steps need frames that come later (the median's right half), so each track's rows are held back until the
frames they need have arrived, and released at the track's end (a source's end), where the median repeats the
last value as on whole recordings. Every released value equals ``PostProcessor.apply`` on the whole track: the
CSV has the same numbers whether the video is processed in chunks or at once. Only the raw values are kept
(a few bytes a frame), plus at most a median half-window of held rows per track, so memory stays flat.

The windows are fitted in seconds at the training frame rate; they are converted to frames at the rate of
the looked-at frames (``--every``/``--fps`` change it), rounded to an odd median window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoframe.eval.va_postprocessing import PostProcessor

RAW_PREFIX = "raw_"
"""Columns of the values before post-processing (``raw_arousal``...), beside the post-processed ones."""


@dataclass(frozen=True)
class Steps:
    """One target's steps in frames of the looked-at stream."""

    half: int  # median half-window (0: no filter)
    bias: float
    centre: float
    scale: float
    shift: int

    @classmethod
    def of(cls, p: PostProcessor, rate: float) -> Steps:
        ratio = rate / p.fps if p.fps > 0 and rate > 0 else 1.0
        window = max(1, round(p.median_window * ratio))
        window += 1 - window % 2  # odd
        return cls(window // 2 if p.median_window > 1 else 0, p.bias, p.scale_centre, p.scale, round(p.shift * ratio))

    def value(self, raw: np.ndarray, t: int) -> float:
        """The post-processed value at ``t`` from the track's raw values so far (``raw[: n]``; nearest padding)."""
        u = max(0, t - self.shift)
        if self.half:
            idx = np.clip(np.arange(u - self.half, u + self.half + 1), 0, len(raw) - 1)
            x = float(np.median(raw[idx]))
        else:
            x = float(raw[u])
        return (x + self.bias - self.centre) * self.scale + self.centre

    def lookahead(self) -> int:
        """Frames after ``t`` that the value at ``t`` needs."""
        return max(0, self.half - self.shift)


@dataclass
class _Track:
    raw: list[list[float]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    released: int = 0


class StreamingPostProcess:
    """Rows of one source in (any chunking) -> the same rows, post-processed, in track order once ready."""

    def __init__(self, processors: Mapping[str, PostProcessor], rate: float) -> None:
        self.names = list(processors)
        self.steps = [Steps.of(processors[n], rate) for n in self.names]
        self.ahead = max(s.lookahead() for s in self.steps)
        self.tracks: dict[Any, _Track] = {}

    def add(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with a face are held per track; rows without one pass through; returns the rows now ready."""
        out: list[dict[str, Any]] = []
        touched: dict[Any, _Track] = {}
        for row in rows:
            if row.get("track_id", -1) < 0 or not np.isfinite([row[n] for n in self.names]).all():
                out.append({**row, **{RAW_PREFIX + n: row[n] for n in self.names}})
                continue
            track = self.tracks.setdefault(row["track_id"], _Track())
            track.raw.append([float(row[n]) for n in self.names])
            track.held.append(row)
            touched[row["track_id"]] = track
        for track in touched.values():
            out += self._release(track, ended=False)
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The source ended: every held row, the medians' right ends repeating each track's last value."""
        out = []
        for track in self.tracks.values():
            out += self._release(track, ended=True)
        self.tracks = {}
        return out

    def _release(self, track: _Track, ended: bool) -> list[dict[str, Any]]:
        n = len(track.raw)
        ready = n if ended else max(track.released, n - self.ahead)
        if ready <= track.released:
            return []
        raw, base = np.asarray(track.raw, dtype=np.float64), track.released  # held[i] is frame base + i
        out = []
        for t in range(base, ready):
            row = track.held[t - base]
            done = dict(row)
            for d, (name, steps) in enumerate(zip(self.names, self.steps, strict=True)):
                done[RAW_PREFIX + name] = row[name]
                done[name] = steps.value(raw[:, d], t)
            out.append(done)
        track.held = track.held[ready - base :]
        track.released = ready
        return out


__all__ = ["RAW_PREFIX", "StreamingPostProcess"]
