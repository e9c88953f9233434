"""What ``emoframe predict`` writes: the rows (CSV or Parquet), JSON lines, a timeline PNG per video, a rendered mp4.

Every file is written under a temporary name in its own folder and renamed into place when it is finished
(``os.replace``), and the rows are flushed after every chunk: an interrupted run (Ctrl-C, a dropped stream)
still finalises what it has, and a run killed outright leaves only complete rows in the ``.partial`` file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from emoframe.errors import DataError

BASE_COLUMNS = (
    "source",
    "frame",
    "time_s",
    "track_id",
    "status",
    "box_left",
    "box_top",
    "box_right",
    "box_bottom",
    "det_score",
    "prediction",
)
"""Columns of every row, then one per class (``p_<class>``) or regressed value; clip models add ``CLIP_COLUMNS``."""
CLIP_COLUMNS = ("level", "frames", "last_frame", "end_s")
ERROR_COLUMN = "error"
"""The last column of every row: why its frame or input is ``unreadable`` ("" otherwise)."""
STATUSES = ("face", "no_face", "unreadable", "whole")
"""``face``: a detected face; ``no_face``: a frame or picture without one (no prediction); ``unreadable``: it
could not be decoded (no prediction); ``whole``: the whole picture taken as the face (``--faces none``)."""


def partial_name(path: Path) -> Path:
    """The temporary name a file is written under until it is finished (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.partial{path.suffix}")


class RowSink:
    """Base of the row writers: ``write(rows)`` per chunk, ``close()`` once (finalises the file)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.count = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.count += len(rows)

    def close(self) -> list[Path]:
        return []


class MemorySink(RowSink):
    """Rows kept in memory (``emoframe.load_model(...).predict`` returns them as a DataFrame)."""

    def __init__(self, columns: Sequence[str]) -> None:
        super().__init__(columns)
        self.rows: list[dict[str, Any]] = []

    def write(self, rows: list[dict[str, Any]]) -> None:
        super().write(rows)
        self.rows += rows

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


class FileSink(RowSink):
    """A sink writing ``path`` under a partial name, moved into place on ``close``: never a half-written table."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        super().__init__(columns)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_name(path)


class CsvSink(FileSink):
    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        import csv

        super().__init__(path, columns)
        self.file = self.tmp.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.columns, extrasaction="ignore")
        self.writer.writeheader()
        self.file.flush()

    def write(self, rows: list[dict[str, Any]]) -> None:
        super().write(rows)
        self.writer.writerows({k: _csv_value(v) for k, v in r.items()} for r in rows)
        self.file.flush()

    def close(self) -> list[Path]:
        if not self.file.closed:
            self.file.close()
            os.replace(self.tmp, self.path)
        return [self.path]


class ParquetSink(FileSink):
    """One Parquet row group per chunk (pyarrow), the footer written on ``close``."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        import pyarrow as pa

        super().__init__(path, columns)
        strings = {"source", "status", "prediction", "level", "error"}
        ints = {"frame", "track_id", "frames", "last_frame"}
        self.schema = pa.schema(
            [(c, pa.string() if c in strings else pa.int64() if c in ints else pa.float64()) for c in self.columns]
        )
        self.writer: Any = None
        self.closed = False

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().write(rows)
        if not rows:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.tmp), self.schema)
        data = {c: [_parquet_value(r.get(c), self.schema.field(c).type) for r in rows] for c in self.columns}
        self.writer.write_table(pa.table(data, schema=self.schema))

    def close(self) -> list[Path]:
        import pyarrow.parquet as pq

        if self.closed:
            return [self.path]
        self.closed = True
        if self.writer is None:
            pq.write_table(self.schema.empty_table(), str(self.tmp))
        else:
            self.writer.close()
        os.replace(self.tmp, self.path)
        return [self.path]


class JsonLines(RowSink):
    """Rows as JSON objects, one a line, flushed at once (for live sources; NaN becomes null)."""

    def __init__(self, columns: Sequence[str], stream: TextIO | None = None) -> None:
        super().__init__(columns)
        self.stream = stream or sys.stdout

    def write(self, rows: list[dict[str, Any]]) -> None:
        super().write(rows)
        for row in rows:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            self.stream.write(json.dumps(clean) + "\n")
        self.stream.flush()


def open_sink(path: Path, columns: Sequence[str]) -> RowSink:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return CsvSink(path, columns)
    if suffix in (".parquet", ".pq"):
        return ParquetSink(path, columns)
    raise DataError(f"--output {path}: expected a .csv or .parquet file name")


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return v


def _parquet_value(v: Any, kind: Any) -> Any:
    import pyarrow as pa

    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if kind == pa.int64():
        return int(v)
    if kind == pa.float64():
        return float(v)
    return str(v)


# -- timeline ----------------------------------------------------------------------------------------
class Timeline:
    """Per-video outputs over time (time, track, values), kept small (a float per value per frame), plotted once
    the video ends: probabilities or valence/arousal against seconds, one panel per track (at most four)."""

    def __init__(self, columns: Sequence[str], title: str) -> None:
        self.columns = list(columns)
        self.title = title
        self.points: dict[int, list[tuple[float, np.ndarray]]] = defaultdict(list)

    def add(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            if r.get("status") in ("face", "whole") and r.get("level", "window") == "window":
                values = np.array([r[c] for c in self.columns], dtype=np.float32)
                if np.all(np.isfinite(values)):
                    self.points[int(r["track_id"])].append((float(r["time_s"]), values))

    def write(self, path: Path) -> Path | None:
        if not self.points:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tracks = sorted(self.points, key=lambda k: -len(self.points[k]))[:4]
        fig, axes = plt.subplots(len(tracks), 1, figsize=(10, 2.6 * len(tracks)), squeeze=False, sharex=True)
        for ax, track in zip(axes[:, 0], tracks, strict=True):
            times = np.array([t for t, _ in self.points[track]])
            values = np.stack([v for _, v in self.points[track]])
            order = np.argsort(times, kind="stable")
            for j, name in enumerate(self.columns):
                ax.plot(times[order], values[order, j], label=name.removeprefix("p_"), lw=1.2)
            ax.set_ylabel(f"face {track}")
            ax.grid(alpha=0.3)
        axes[0, 0].set_title(self.title)
        axes[0, 0].legend(loc="upper right", ncol=min(7, len(self.columns)), fontsize=8)
        axes[-1, 0].set_xlabel("time (s)")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_name(path)
        fig.savefig(tmp, dpi=90, format="png")
        plt.close(fig)
        os.replace(tmp, path)
        return path


# -- rendered video ----------------------------------------------------------------------------------
class Renderer:
    """The input video again, every frame, with the faces' boxes, labels and a small bar chart drawn on it
    (OpenCV: ``cv2.VideoWriter`` with the ``mp4v`` codec, which every OpenCV wheel can write).

    Frames between two sampled frames (``--every``, ``--fps``) show the last sampled frame's faces; labels are
    each face's latest prediction (for window models, those of its last finished window)."""

    def __init__(self, video: Path, path: Path, fps: float, size: tuple[int, int], columns: Sequence[str]) -> None:
        import cv2
        import decord

        self.cv2 = cv2
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_name(path)
        self.reader = decord.VideoReader(str(video), num_threads=1)
        self.total = len(self.reader)
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise DataError(f"--render {path}: OpenCV cannot write an mp4v video there")
        self.columns = list(columns)
        self.position = 0
        self.faces: list[dict[str, Any]] = []  # the faces to draw: box, track_id
        self.latest: dict[int, dict[str, Any]] = {}  # track id -> its latest row with values
        self.closed = False

    def update(self, rows: list[dict[str, Any]]) -> None:
        """Rows with values: each track's latest prediction."""
        for r in rows:
            if r.get("prediction") is not None and r.get("status") in ("face", "whole") and r.get("track_id", -1) >= 0:
                values = [r.get(c) for c in self.columns]
                if all(isinstance(v, float) and math.isfinite(v) for v in values):
                    self.latest[int(r["track_id"])] = r

    def frame(self, index: int, faces: list[dict[str, Any]]) -> None:
        """Frame ``index`` was looked at and these faces found: draw up to it, then show them."""
        self.advance(index)
        self.faces = faces

    def advance(self, stop: int) -> None:
        stop = min(stop, self.total)
        while self.position < stop:
            count = min(32, stop - self.position)
            frames = self.reader.get_batch(list(range(self.position, self.position + count))).asnumpy()
            for rgb in frames:
                self.writer.write(self._draw(self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2BGR)))
            self.position += count

    def _draw(self, bgr: np.ndarray) -> np.ndarray:
        cv2 = self.cv2
        height = bgr.shape[0]
        thick = max(1, round(height / 360))
        font = 0.45 * max(1.0, height / 480)
        for k, face in enumerate(self.faces):
            left, top, right, bottom = (round(v) for v in face["box"])
            cv2.rectangle(bgr, (left, top), (right, bottom), (0, 220, 0), thick)
            row = self.latest.get(int(face["track_id"]))
            label = f"#{face['track_id']}"
            if row is not None:
                label += " " + _label(row, self.columns)
            cv2.putText(bgr, label, (left, max(12, top - 6)), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 220, 0), thick)
            if k == 0 and row is not None:
                self._bars(bgr, row, font, thick)
        return bgr

    def _bars(self, bgr: np.ndarray, row: dict[str, Any], font: float, thick: int) -> None:
        cv2 = self.cv2
        line = round(22 * font / 0.45)
        width = round(120 * font / 0.45)
        x0, y0 = 10, 10
        panel = bgr[y0 : y0 + line * len(self.columns) + 8, x0 : x0 + width * 2 + 16]
        panel[:] = (panel * 0.35).astype(np.uint8)
        for j, column in enumerate(self.columns):
            v = float(row[column])
            y = y0 + 4 + j * line
            name = column.removeprefix("p_")
            cv2.putText(bgr, name[:9], (x0 + 4, y + line - 6), cv2.FONT_HERSHEY_SIMPLEX, font * 0.8, (255, 255, 255), 1)
            base = x0 + width
            if column.startswith("p_"):
                cv2.rectangle(bgr, (base, y + 3), (base + round(v * width), y + line - 3), (0, 200, 255), -1)
            else:  # a value in about [-1, 1], drawn from the middle
                mid = base + width // 2
                end = mid + round(max(-1.0, min(1.0, v)) * width / 2)
                cv2.rectangle(bgr, (min(mid, end), y + 3), (max(mid, end), y + line - 3), (255, 160, 0), -1)

    def close(self) -> list[Path]:
        if self.closed:
            return [self.path]
        self.closed = True
        with contextlib.suppress(Exception):
            self.advance(self.total)
        self.writer.release()
        os.replace(self.tmp, self.path)
        return [self.path]


def _label(row: dict[str, Any], columns: Sequence[str]) -> str:
    if row.get("prediction"):
        top = max((float(row[c]) for c in columns if c.startswith("p_")), default=float("nan"))
        return (
            f"{row['prediction']} {top:.2f}"
            if math.isfinite(top) and "|" not in row["prediction"]
            else row["prediction"]
        )
    return " ".join(f"{c[:1]} {float(row[c]):+.2f}" for c in columns)
