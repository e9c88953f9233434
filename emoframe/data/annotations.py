"""Per-frame multi-label annotation tables (CSV or Parquet): read, check and turn votes into targets.

One row per annotated frame::

    video, frame, participant, neutral, happy, surprise, ...      (``time`` in seconds instead of ``frame``)
    p01_ad3, 0, p01, 7, 0, 0, ...

Every column that is not an id column (``video``, ``frame`` or ``time``, ``participant``, optional
``split``) is a label, named by the header; its cells are 0/1 or vote counts. ``votes`` says how counts
become targets: ``binary`` (cells must be 0 or 1), ``majority`` (more than half of ``raters``; Tzirakis
et al.'s winner-takes-all over 7 annotators), ``threshold`` (at least ``vote_threshold`` votes) or
``soft`` (votes / raters, kept as a soft target).

Bad rows (a missing participant, a non-numeric or out-of-range cell, a repeated frame) stop with one
line naming ``file:line``, or are counted and dropped under ``on_bad_rows: skip``. Rows with no label
set (``empty_rows``) are left unlabelled and counted (``skip``), kept as all-negative targets
(``keep``), or stop the run (``error``). Nothing is dropped without a count in ``AnnotationTable.issues``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emoframe.errors import DataError

Votes = Literal["binary", "majority", "threshold", "soft"]
RowPolicy = Literal["error", "skip"]
EmptyRows = Literal["skip", "keep", "error"]
ID_COLUMNS = ("video", "frame", "time", "participant", "split")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass
class VideoLabels:
    """The annotated rows of one video: frame indices (or times) and their targets, table lines for messages."""

    video: str
    participant: str
    index: np.ndarray  # (n,) int64 frame indices, or float64 seconds when ``by_time``
    values: np.ndarray  # (n, K) float32 targets in [0, 1]; NaN rows: no label set (empty_rows: skip)
    lines: np.ndarray  # (n,) int64 line of each row in the table (header = line 1)
    by_time: bool = False
    split: str | None = None


@dataclass
class AnnotationTable:
    """A checked annotation table: label names, rows per video, and counts of everything left out."""

    path: Path
    labels: list[str]
    videos: dict[str, VideoLabels]
    issues: Counter[str] = field(default_factory=Counter)  # reason -> rows affected
    first: dict[str, str] = field(default_factory=dict)  # reason -> the first such row, as file:line

    @property
    def participants(self) -> dict[str, str]:
        """video -> participant."""
        return {v: labels.participant for v, labels in self.videos.items()}

    def count(self, reason: str, where: str, n: int = 1) -> None:
        self.issues[reason] += n
        self.first.setdefault(reason, where)

    def report(self) -> str:
        rows = sum(len(v.index) for v in self.videos.values())
        people = len(set(self.participants.values()))
        line = (
            f"Annotations {self.path.name}: {rows:,} rows, {len(self.videos)} videos, {people} participants, "
            f"labels {', '.join(self.labels)}"
        )
        if self.issues:
            parts = [f"{n:,} {reason} (first: {self.first[reason]})" for reason, n in self.issues.items()]
            line += "; " + "; ".join(parts)
        return line


def read_table(path: Path) -> dict[str, Any]:
    """Columns of a CSV or Parquet file as pyarrow arrays (ids as strings), in header order."""
    import pyarrow as pa

    if not path.is_file():
        raise DataError(
            f"Annotation table not found: {path} (expected a CSV or Parquet file, see docs/multilabel_video.md)"
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            from pyarrow import csv as pa_csv

            string_ids = {c: pa.string() for c in ("video", "participant", "split")}
            table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=string_ids))
        elif suffix in (".parquet", ".pq"):
            from pyarrow import parquet as pq

            table = pq.read_table(path)
        else:
            raise DataError(f"{path}: expected a {', '.join(TABLE_SUFFIXES)} annotation table, got '{suffix}'")
    except pa.ArrowInvalid as err:
        raise DataError(f"{path}: not a readable table ({str(err).splitlines()[0]})") from None
    return {name: table.column(name).combine_chunks() for name in table.column_names}


def _codes(column: Any) -> tuple[np.ndarray, list[str]]:
    """An id column as integer codes (-1: empty or missing) and the stripped distinct values (hash-encoded
    by pyarrow: a million rows in milliseconds, where sorting Python strings takes a second)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column.cast(pa.string()))
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    values = [str(v).strip() for v in encoded.dictionary.to_pylist()]
    empty = np.array([not v for v in values] + [True])  # the extra entry answers code -1
    codes = np.where(empty[codes], -1, codes)
    return codes, values


def _numbers(column: Any) -> np.ndarray:
    """float64 values of a column; NaN where a cell is empty or not a number."""
    import pyarrow as pa

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_null(column.type):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN: the common case, fast
    out = np.full(len(column), np.nan)
    for i, cell in enumerate(column.to_pylist()):
        if cell is None:
            continue
        try:
            out[i] = float(cell)
        except (TypeError, ValueError):
            pass
    return out


def to_targets(votes: np.ndarray, mode: Votes, raters: int | None, threshold: float | None) -> np.ndarray:
    """(n, K) vote counts -> float32 targets: 0/1, or votes / raters for ``soft``."""
    if mode == "binary":
        return votes.astype(np.float32)
    if mode == "majority":
        return (2 * votes > float(raters)).astype(np.float32)  # type: ignore[arg-type]
    if mode == "threshold":
        return (votes >= float(threshold)).astype(np.float32)  # type: ignore[arg-type]
    return (votes / float(raters)).astype(np.float32)  # type: ignore[arg-type]


def check_vote_options(mode: str, raters: int | None, threshold: float | None) -> None:
    if mode not in ("binary", "majority", "threshold", "soft"):
        raise DataError(f"data.table.votes: expected binary, majority, threshold or soft, got {mode!r}")
    if mode in ("majority", "soft") and not (isinstance(raters, int) and raters >= 1):
        raise DataError(
            f"data.table.raters: votes: {mode} needs the number of raters per frame (e.g. 7), got {raters!r}"
        )
    if mode == "threshold" and not (isinstance(threshold, (int, float)) and threshold > 0):
        raise DataError(f"data.table.vote_threshold: votes: threshold needs a number of votes > 0, got {threshold!r}")


def read_annotations(
    path: str | Path,
    labels: list[str] | None = None,
    ignore_columns: list[str] | None = None,
    votes: Votes = "binary",
    raters: int | None = None,
    vote_threshold: float | None = None,
    empty_rows: EmptyRows = "skip",
    on_bad_rows: RowPolicy = "error",
) -> AnnotationTable:
    """Read and check ``path``; see the module docstring for the format and the policies."""
    path = Path(path).expanduser()
    check_vote_options(votes, raters, vote_threshold)
    if empty_rows not in ("skip", "keep", "error"):
        raise DataError(f"data.table.empty_rows: expected skip, keep or error, got {empty_rows!r}")
    if on_bad_rows not in ("error", "skip"):
        raise DataError(f"data.table.on_bad_rows: expected error or skip, got {on_bad_rows!r}")
    columns = read_table(path)
    header = list(columns)
    for required in ("video", "participant"):
        if required not in columns:
            raise DataError(
                f"{path}: no '{required}' column; header is {', '.join(header)} (see docs/multilabel_video.md)"
            )
    if ("frame" in columns) == ("time" in columns):
        raise DataError(
            f"{path}: expected exactly one of a 'frame' (index) or 'time' (seconds) column; header is {', '.join(header)}"
        )
    ignored = set(ignore_columns or [])
    found = [c for c in header if c not in ID_COLUMNS and c not in ignored]
    if labels is not None:
        extra = [c for c in found if c not in labels]
        if extra:
            raise DataError(
                f"{path}: column '{extra[0]}' is a label in the table but not in data.labels [{', '.join(labels)}]: "
                "add it to data.labels, or to data.table.ignore_columns to leave it out"
            )
        absent = [c for c in labels if c not in found]
        if absent:
            raise DataError(
                f"{path}: data.labels names '{absent[0]}', which is not a column; header is {', '.join(header)}"
            )
        found = list(labels)
    if not found:
        raise DataError(f"{path}: no label columns besides {', '.join(c for c in header if c in ID_COLUMNS)}")
    table = AnnotationTable(path, found, {})
    n = len(columns["video"])
    lines = np.arange(n) + 2  # line 1 is the header (a Parquet "line" is the row number + 2, as in a CSV export)
    bad = np.zeros(n, dtype=bool)

    def reject(mask: np.ndarray, reason: str) -> None:
        mask = mask & ~bad
        if not mask.any():
            return
        where = f"{path}:{lines[np.argmax(mask)]}"
        if on_bad_rows == "error":
            raise DataError(
                f"{where}: {reason}. Fix the table, or set data.table.on_bad_rows: skip to count and drop such rows"
            )
        table.count(f"rows with {reason}", where, int(mask.sum()))
        bad[mask] = True

    video, video_names = _codes(columns["video"])
    participant, people_names = _codes(columns["participant"])
    reject(video < 0, "no video id")
    reject(participant < 0, "no participant")
    by_time = "time" in columns
    index = _numbers(columns["time" if by_time else "frame"])
    if by_time:
        reject(~np.isfinite(index) | (index < 0), "a time that is not a number of seconds >= 0")
    else:
        reject(~np.isfinite(index) | (index < 0) | (index != np.round(index)), "a frame that is not an index >= 0")
    counts = np.stack([_numbers(columns[c]) for c in found], axis=1)
    reject(~np.isfinite(counts).all(axis=1), "a label cell that is empty or not a number")
    reject((counts < 0).any(axis=1), "a negative label value")
    if votes == "binary":
        reject(~np.isin(counts, (0.0, 1.0)).all(axis=1), "a label value other than 0 or 1 (votes: binary)")
    elif raters is not None:
        reject((counts > raters).any(axis=1), f"more votes than data.table.raters ({raters})")
    rows = np.flatnonzero(~bad)
    order = rows[np.lexsort((rows, index[rows], video[rows]))]  # by video, then frame, then line
    same = (video[order][1:] == video[order][:-1]) & (index[order][1:] == index[order][:-1])
    repeated = np.zeros(n, dtype=bool)
    repeated[order[1:][same]] = True  # the later line of each repeated (video, frame)
    reject(repeated, f"a repeated (video, {'time' if by_time else 'frame'})")
    targets = np.zeros(counts.shape, np.float32)
    ok = ~bad
    targets[ok] = to_targets(counts[ok], votes, raters, vote_threshold)
    empty = ok & ~(targets > 0).any(axis=1)
    if empty.any():
        where = f"{path}:{lines[np.argmax(empty)]}"
        if empty_rows == "error":
            raise DataError(
                f"{where}: no label set in this row (data.table.empty_rows: error); use skip or keep to allow it"
            )
        if empty_rows == "skip":
            table.count(
                "rows with no label set, left unlabelled (data.table.empty_rows: skip)", where, int(empty.sum())
            )
            targets[empty] = np.nan
    split, split_names = _codes(columns["split"]) if "split" in columns else (None, [])
    rows_ok = np.flatnonzero(ok)
    rows_ok = rows_ok[np.lexsort((index[rows_ok], video[rows_ok]))]  # by video, then frame (or time)
    bounds = np.flatnonzero(np.diff(video[rows_ok])) + 1
    for group in np.split(rows_ok, bounds) if len(rows_ok) else []:
        name = video_names[video[group[0]]]
        people = sorted({people_names[c] for c in np.unique(participant[group])})
        if len(people) > 1:
            raise DataError(
                f"{path}:{lines[group[0]]}: video '{name}' has rows of participants {', '.join(people)}; "
                "one video, one participant"
            )
        splits = (
            [None] if split is None else sorted({split_names[c] if c >= 0 else "" for c in np.unique(split[group])})
        )
        if len(splits) > 1:
            raise DataError(
                f"{path}:{lines[group[0]]}: video '{name}' has rows in splits {', '.join(map(str, splits))}"
            )
        frame_index = index[group] if by_time else index[group].astype(np.int64)
        table.videos[name] = VideoLabels(name, people[0], frame_index, targets[group], lines[group], by_time, splits[0])
    if not table.videos:
        raise DataError(f"{path}: no usable annotated rows ({', '.join(table.issues) or 'the table is empty'})")
    return table


def frame_targets(
    labels: VideoLabels, frames: int, fps: float, table: AnnotationTable, on_bad_rows: RowPolicy
) -> np.ndarray:
    """(frames, K) float32 targets of one video, NaN where no row labels a frame.

    Rows beyond the video's last frame stop with one line or, under ``on_bad_rows: skip``, are counted.
    Time rows go to the nearest frame; several rows on one frame keep the nearest in time (counted).
    """
    out = np.full((frames, labels.values.shape[1]), np.nan, np.float32)
    if labels.by_time:
        exact = labels.index * fps
        frame = np.round(exact).astype(np.int64)
    else:
        exact = labels.index.astype(np.float64)
        frame = labels.index
    beyond = frame >= frames
    if beyond.any():
        i = int(np.argmax(beyond))
        unit = f"time {labels.index[i]:g} s (frame {frame[i]})" if labels.by_time else f"frame {frame[i]}"
        where = f"{table.path}:{labels.lines[i]}"
        reason = f"{unit} is beyond the end of video '{labels.video}' ({frames} frames at {fps:g} fps)"
        if on_bad_rows == "error":
            raise DataError(
                f"{where}: {reason}. Fix the table, or set data.table.on_bad_rows: skip to count and drop such rows"
            )
        table.count("rows beyond their video's last frame", f"{where} ({reason})", int(beyond.sum()))
    keep = np.flatnonzero(~beyond)
    if labels.by_time and len(keep):
        distance = np.abs(exact[keep] - frame[keep])
        order = keep[np.lexsort((distance, frame[keep]))]  # by frame, nearest first
        first = np.ones(len(order), dtype=bool)
        first[1:] = frame[order][1:] != frame[order][:-1]
        if not first.all():
            where = f"{table.path}:{labels.lines[order[np.argmax(~first)]]}"
            table.count("time rows sharing a frame with a nearer row (the nearer one kept)", where, int((~first).sum()))
        keep = order[first]
    out[frame[keep]] = labels.values[keep]
    return out


def check_labels_named(names: list[str] | None, labels: list[str], key: str, path: Any) -> list[int]:
    """Indices of ``names`` among the table's labels; a name the header lacks stops with one line."""
    out = []
    for name in names or []:
        if name not in labels:
            raise DataError(f"{key}: '{name}' is not a label of {path} (its labels: {', '.join(labels)})")
        out.append(labels.index(name))
    return out
