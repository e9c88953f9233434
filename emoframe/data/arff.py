"""AVEC 2016 RECOLA gold standards: ARFF reading and writing, and alignment of labels to video frames.

Layout: ``ratings_gold_standard/{arousal,valence}/<split>_<n>.arff``, each file one recording with
attributes ``Instance_name`` (string), ``frameTime`` (numeric, seconds) and ``GoldStandard`` (numeric),
one row every 40 ms. The reader finds columns by attribute name (case-insensitive), so extra attributes
are tolerated; ``?`` is a missing value (NaN). Sparse ARFF (``{...}`` rows) is not part of the format and
is reported as an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from emoframe.errors import DataError

GOLD_STANDARD_DIR = "ratings_gold_standard"
DIMENSIONS = ("arousal", "valence")
# "@attribute <name> <type>": the name quoted (backslash escapes allowed) or a bare word, then a type.
_ATTRIBUTE = re.compile(r"""@attribute\s+('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"]+)\s+\S""", re.IGNORECASE)
# One ARFF value: a single- or double-quoted string (backslash escapes allowed), or anything up to a comma.
_TOKEN = re.compile(r"""\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^,]*?)\s*(,|$)""")


def _split_row(line: str) -> list[str] | None:
    """Comma-separated values with quotes removed; ``None`` if the quoting is broken."""
    values, pos = [], 0
    while True:
        m = _TOKEN.match(line, pos)
        if m is None:
            return None
        token = m.group(1)
        if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
            token = re.sub(r"\\(.)", r"\1", token[1:-1])
        elif token[:1] in ("'", '"'):
            return None
        values.append(token)
        if m.group(2) == "":
            return values if m.end() == len(line) else None
        pos = m.end()


def _number(token: str) -> float:
    return np.nan if token == "?" else float(token)


def read_arff(
    path: str | Path, time_attribute: str = "frameTime", value_attribute: str = "GoldStandard"
) -> tuple[np.ndarray, np.ndarray]:
    """(times float64 seconds, values float32) of one gold-standard ARFF; a malformed row names file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise DataError(f"cannot read ARFF gold standard {path}: {err.strerror or err}") from None
    attributes: list[str] = []
    in_data = False
    times: list[float] = []
    values: list[float] = []
    t_col = v_col = -1
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if not in_data:
            keyword = line.split(None, 1)[0].lower()
            if keyword == "@attribute":
                m = _ATTRIBUTE.match(line)
                if m is None:
                    raise DataError(f"{path}:{lineno}: expected '@attribute <name> <type>', got {line!r}")
                name = m.group(1)
                attributes.append(re.sub(r"\\(.)", r"\1", name[1:-1]) if name[0] in "'\"" else name)
            elif keyword == "@data":
                lowered = [a.lower() for a in attributes]
                for name in (time_attribute, value_attribute):
                    if name.lower() not in lowered:
                        raise DataError(
                            f"{path}:{lineno}: expected an attribute '{name}' before @data, found {attributes}"
                        )
                t_col, v_col = lowered.index(time_attribute.lower()), lowered.index(value_attribute.lower())
                in_data = True
            elif keyword != "@relation":
                raise DataError(f"{path}:{lineno}: expected @relation, @attribute or @data in the header, got {line!r}")
            continue
        row = _split_row(line)
        if row is None or len(row) != len(attributes):
            got = "broken quoting" if row is None else f"{len(row)} values"
            raise DataError(f"{path}:{lineno}: expected {len(attributes)} comma-separated values, got {got}: {line!r}")
        try:
            t, v = float(row[t_col]), _number(row[v_col])
        except ValueError:
            raise DataError(
                f"{path}:{lineno}: expected numeric {attributes[t_col]} and {attributes[v_col]} ('?' if missing), "
                f"got {row[t_col]!r}, {row[v_col]!r}"
            ) from None
        if not np.isfinite(t) or (times and t <= times[-1]):
            raise DataError(f"{path}:{lineno}: expected {attributes[t_col]} increasing, got {t} after {times[-1:]}")
        times.append(t)
        values.append(v)
    if not in_data:
        raise DataError(f"{path}: expected an ARFF header ending in @data, found none")
    if not times:
        raise DataError(f"{path}: expected at least one data row after @data, found none")
    return np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float32)


def write_arff(
    path: str | Path,
    instance: str,
    times: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    relation: str = "GoldStandard",
) -> Path:
    """Write one recording in the AVEC 2016 gold-standard format (NaN written as ``?``); returns the path."""
    times, values = np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if times.ndim != 1 or times.shape != values.shape:
        raise DataError(
            f"write_arff {path}: expected 1-D times and values of one length, got {times.shape}, {values.shape}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = instance.replace("\\", "\\\\").replace("'", "\\'")
    lines = [
        f"@relation {relation}",
        "",
        "@attribute Instance_name string",
        "@attribute frameTime numeric",
        "@attribute GoldStandard numeric",
        "",
        "@data",
        "",
    ]
    lines += [f"'{name}',{t:.6f},{'?' if np.isnan(v) else f'{v:.6f}'}" for t, v in zip(times, values)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class AlignedLabels(NamedTuple):
    """Per-frame labels (float32, NaN where none) and how many frames had no label within reach."""

    values: np.ndarray
    unmatched: int


def align_labels_to_frames(
    times: np.ndarray, values: np.ndarray, frame_times: np.ndarray, period: float | None = None
) -> AlignedLabels:
    """Each video frame gets the label nearest in time, if within half a label period; else NaN (counted).

    Nearest neighbour, not interpolation: at 25 fps the frames fall on the 40 ms label grid and get the
    exact gold-standard values AVEC scores; at other rates each frame takes the rating of the 40 ms slot it
    falls in. Frames beyond the rated span (e.g. video longer than the ratings) are NaN, so losses and
    metrics skip them. ``period`` defaults to the median spacing of ``times``.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float32)
    frame_times = np.asarray(frame_times, dtype=np.float64)
    if times.ndim != 1 or times.shape != values.shape or times.size == 0:
        raise DataError(
            f"align_labels_to_frames: expected 1-D label times and values of one length, got {times.shape}, {values.shape}"
        )
    if np.any(np.diff(times) <= 0):
        raise DataError("align_labels_to_frames: expected strictly increasing label times")
    if period is None:
        if times.size < 2:
            raise DataError("align_labels_to_frames: one label time gives no period; pass period= (seconds)")
        period = float(np.median(np.diff(times)))
    if not period > 0:
        raise DataError(f"align_labels_to_frames: expected period > 0 seconds, got {period!r}")
    right = np.clip(np.searchsorted(times, frame_times), 0, times.size - 1)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(frame_times - times[left]) <= np.abs(times[right] - frame_times), left, right)
    near_enough = np.abs(times[nearest] - frame_times) <= period / 2 + 1e-9  # 1 ns: float rounding of 0.04 * k
    out = np.where(near_enough, values[nearest], np.float32(np.nan)).astype(np.float32)
    return AlignedLabels(out, int(np.sum(~near_enough)))


def recola_recordings(root: str | Path, split: str, dimension: str = "arousal") -> list[str]:
    """Recording names of a split (``train_1, train_2, ..., train_9``, numerically sorted)."""
    folder = Path(root) / GOLD_STANDARD_DIR / dimension
    names = [p.stem for p in folder.glob(f"{split}_*.arff") if p.stem.split("_")[-1].isdigit()]
    if not names:
        raise DataError(f"{folder}: expected {split}_<n>.arff files (AVEC 2016 RECOLA layout), found none")
    return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]))


def read_recola_labels(
    root: str | Path, recording: str, dimensions: Sequence[str] = DIMENSIONS
) -> tuple[np.ndarray, np.ndarray]:
    """(times, values (T, D) float32) of one recording; the dimensions' time axes must agree."""
    times: np.ndarray | None = None
    columns = []
    for dim in dimensions:
        path = Path(root) / GOLD_STANDARD_DIR / dim / f"{recording}.arff"
        if not path.is_file():
            raise DataError(f"{path}: expected the {dim} gold standard of {recording} (AVEC 2016 RECOLA layout)")
        t, v = read_arff(path)
        if times is not None and (t.shape != times.shape or not np.allclose(t, times, atol=1e-6)):
            raise DataError(f"{path}: expected the same frameTime rows as {dimensions[0]} ({times.size}), got {t.size}")
        times = t
        columns.append(v)
    if times is None:
        raise DataError("read_recola_labels: expected at least one dimension, got none")
    return times, np.stack(columns, axis=1)
