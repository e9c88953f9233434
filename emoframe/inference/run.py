"""The inference run: sources -> (worker process: decode, detect, crop, track, features) -> batches through the
network -> rows, timelines, rendered video.

Work moves in bounded chunks (``chunk`` frames): the worker process decodes and finds faces in one chunk while
the network scores the previous one, and at most ``QUEUE_CHUNKS`` chunks wait between them, so memory stays
flat however long the video is. The worker is a separate process, not a thread, because dlib's detector holds
the GIL. Rows are written after every chunk; on Ctrl-C or when a stream drops, every file is finalised with
what it has. A tqdm bar shows frames/s (and the time left, for files).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from emoframe.errors import DataError, RecipeError
from emoframe.files.pictures import max_pixels
from emoframe.files.processes import die_with_parent
from emoframe.inference.faces import Face, FaceCropper, FaceMode, Tracker, face_cropper
from emoframe.inference.outputs import (
    BASE_COLUMNS,
    CLIP_COLUMNS,
    ERROR_COLUMN,
    JsonLines,
    MemorySink,
    Renderer,
    RowSink,
    Timeline,
    open_sink,
)
from emoframe.inference.sources import Frame, Sampling, Source, expand_inputs, iter_source, probe
from emoframe.inference.spec import Runner
from emoframe.inference.va_stream import RAW_PREFIX, StreamingPostProcess

QUEUE_CHUNKS = 3
"""Chunks that may wait between the worker and the network (the bound on memory, with ``chunk``)."""


@dataclass
class Options:
    """How ``emoframe predict`` runs (the CLI flags of the same names)."""

    faces: FaceMode = "all"
    every: int = 1
    fps: float | None = None
    detect_every: int = 1  # run the face detector on one looked-at frame in N (the others reuse its boxes)
    batch_size: int = 64
    chunk: int = 32
    decode_side: int | None = 640
    output: Path | None = None
    render: Path | None = None
    timeline: bool = True
    json_lines: bool | None = None  # None: for live sources
    progress: bool = True
    worker: bool = True  # decode and detect in a worker process (False: in this one, e.g. for a few pictures)
    keep_rows: bool = False


@dataclass
class Summary:
    frames: int = 0
    faces: int = 0
    no_face: int = 0
    rows: int = 0
    sources: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    table: Any = None  # the rows as a DataFrame (keep_rows)
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = (
            f"Predicted {self.frames} frames/pictures of {self.sources} inputs: {self.faces} faces, "
            f"{self.no_face} without a face; {self.rows} rows in {self.seconds:.1f} s ({self.fps:.1f} frames/s)"
        )
        if self.skipped:
            name, why = next(iter(self.skipped.items()))
            text += f"; skipped {len(self.skipped)} unreadable (first: {name}: {why})"
        return text + (" [interrupted: the files hold everything up to here]" if self.interrupted else "")


@dataclass
class Looked:
    """What the worker made of one frame: its faces (crops, boxes in the source's pixels, track ids)."""

    source: str
    index: int
    time_s: float
    status: str
    faces: list[Face]
    features: np.ndarray | None = None
    error: str = ""


# -- the worker side ---------------------------------------------------------------------------------
def look(
    sources: Sequence[Source], sampling: Sampling, cropper: FaceCropper, spec: Runner | None, options: Options
) -> Iterator[tuple[Any, ...]]:
    """Events: ("source", i, source), ("chunk", i, [Looked]), ("end", i, source), ("skip", i, name, reason)."""
    for i, source in enumerate(sources):
        try:
            probe(source, sampling)
        except DataError as err:
            yield ("skip", i, source.name, str(err))
            continue
        yield ("source", i, source)
        tracker = Tracker()
        cropper.reset()
        try:
            for frames in iter_source(source, sampling, options.chunk, options.decode_side):
                yield ("chunk", i, [_look(f, cropper, tracker, spec) for f in frames])
        except DataError as err:
            if source.kind == "live":
                raise  # a camera or URL that cannot be opened stops the run
            yield ("skip", i, source.name, str(err))
        yield ("end", i, source)


def _look(frame: Frame, cropper: FaceCropper, tracker: Tracker, spec: Runner | None) -> Looked:
    if frame.image is None:
        return Looked(frame.source, frame.index, frame.time_s, "unreadable", [], error=frame.error)
    faces = cropper(frame.image)
    tracker.assign(faces, frame.time_s)
    if frame.scale != 1.0:
        for face in faces:
            face.box = tuple(v * frame.scale for v in face.box)  # type: ignore[assignment]
    status = "whole" if cropper.mode == "none" else ("face" if faces else "no_face")
    features = None
    if faces and spec is not None and spec.kind == "fusion":
        features = spec.features(np.stack([f.crop for f in faces]))
    return Looked(frame.source, frame.index, frame.time_s, status, faces, features)


def _worker(
    out: Any, sources: list[Source], sampling: Sampling, cropper: FaceCropper, spec: Any, options: Options
) -> None:
    die_with_parent()
    try:
        for event in look(sources, sampling, cropper, spec, options):
            out.put(event)
        out.put(("done",))
    except DataError as err:
        out.put(("fatal", str(err)))
    except KeyboardInterrupt:
        out.put(("done",))
    except Exception:  # a bug: its traceback goes to the parent, which raises it
        out.put(("crash", traceback.format_exc()))


class _FeatureSpec:
    """What the worker needs of a fusion model (its extractors and statistics), without the network."""

    def __init__(self, spec: Runner) -> None:
        self.kind = spec.kind
        self.extractors, self.feature_mean, self.feature_std = spec.extractors, spec.feature_mean, spec.feature_std

    features = Runner.features


def events(
    sources: list[Source], sampling: Sampling, cropper: FaceCropper, spec: Runner, options: Options
) -> Iterator[tuple[Any, ...]]:
    """The worker's events, from a worker process (``options.worker``) or from this one."""
    light = _FeatureSpec(spec)
    if not options.worker:
        yield from look(sources, sampling, cropper, light, options)  # type: ignore[arg-type]
        return
    context = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    q = context.Queue(maxsize=QUEUE_CHUNKS)
    process = context.Process(target=_worker, args=(q, sources, sampling, cropper, light, options), daemon=True)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # stops OpenCV's thread pool: a forked child inheriting a live one hangs in its first call
    try:
        process.start()
    finally:
        cv2.setNumThreads(threads)
    try:
        while True:
            try:
                event = q.get(timeout=1.0)
            except queue_module.Empty:
                if not process.is_alive():
                    raise DataError(f"the decoding worker died (exit code {process.exitcode})") from None
                continue
            if event[0] == "done":
                return
            if event[0] == "fatal":
                raise DataError(event[1])
            if event[0] == "crash":
                raise RuntimeError(f"the decoding worker failed:\n{event[1]}")
            yield event
    finally:
        if process.is_alive():
            process.terminate()
        process.join(timeout=5)
        q.close()
        q.cancel_join_thread()


# -- the network side --------------------------------------------------------------------------------
class Assembler:
    """Looked-at frames -> rows: faces batched through the network; clip and window models collect each track's
    faces into windows of ``spec.window`` first (rows come when a window is full, or at the source's end).
    A valence/arousal model's fitted post-processing runs on each video's tracks (``raw_*``: the values before)."""

    def __init__(self, spec: Runner, batch_size: int) -> None:
        self.spec, self.batch_size = spec, batch_size
        self.raw = [RAW_PREFIX + c for c in spec.value_columns] if spec.postprocessors else []
        self.columns = [
            *BASE_COLUMNS,
            *spec.value_columns,
            *self.raw,
            *(CLIP_COLUMNS if spec.kind == "clip" else ()),
            ERROR_COLUMN,
        ]
        self.post: dict[str, StreamingPostProcess] = {}
        self.pending: dict[tuple[str, int], list[tuple[Looked, Face]]] = defaultdict(list)
        self.clips: dict[tuple[str, int], dict[str, Any]] = {}
        self.no_face_sources: dict[str, int] = defaultdict(int)

    def row(self, looked: Looked, face: Face | None, values: np.ndarray | None) -> dict[str, Any]:
        nan = float("nan")
        box = face.box if face is not None else (nan, nan, nan, nan)
        row: dict[str, Any] = {
            "source": looked.source,
            "frame": looked.index,
            "time_s": round(looked.time_s, 4),
            "track_id": face.track_id if face is not None else -1,
            "status": looked.status,
            "box_left": float(box[0]),
            "box_top": float(box[1]),
            "box_right": float(box[2]),
            "box_bottom": float(box[3]),
            "det_score": float(face.score) if face is not None else nan,
            "prediction": self.spec.prediction(values) if values is not None else "",
        }
        for j, column in enumerate(self.spec.value_columns):
            row[column] = float(values[j]) if values is not None else nan
        for column, raw in zip(self.spec.value_columns, self.raw):
            row[raw] = row[column]
        if self.spec.kind == "clip":
            row.update(level="frame", frames=0, last_frame=looked.index, end_s=row["time_s"])
        row[ERROR_COLUMN] = looked.error
        return row

    def unreadable(self, source: str, reason: str) -> list[dict[str, Any]]:
        """The one row of an input that could not be opened at all (a truncated or sound-only video): every
        input gets at least one row saying what happened to it, as an unreadable picture does."""
        return [self.row(Looked(source, 0, 0.0, "unreadable", [], error=reason), None, None)]

    def start(self, source: Source, sampling: Sampling) -> None:
        """A source begins: a video's post-processing runs at the rate of its looked-at frames."""
        if self.spec.postprocessors and source.is_video:
            fps = float(source.fps or 25.0)
            self.post[source.name] = StreamingPostProcess(self.spec.postprocessors, fps / sampling.step(fps))

    def chunk(self, looked: list[Looked]) -> list[dict[str, Any]]:
        rows = self._chunk(looked)
        post = self.post.get(looked[0].source) if looked else None
        return post.add(rows) if post is not None else rows

    def _chunk(self, looked: list[Looked]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        if self.spec.kind in ("frame", "fusion") or (self.spec.kind == "window" and not self.spec.temporal):
            faces = [(item, face, k) for item in looked for k, face in enumerate(item.faces)]
            values = np.zeros((0, len(self.spec.value_columns)))
            if faces:
                crops = np.stack([face.crop for _, face, _ in faces])
                features = None
                if self.spec.kind == "fusion":
                    features = np.stack([item.features[k] for item, _, k in faces])  # type: ignore[index]
                values = self.spec.run_faces(crops, features, self.batch_size)
            by_frame = defaultdict(list)
            for (item, face, _), v in zip(faces, values, strict=True):
                by_frame[id(item)].append(self.row(item, face, v))
            for item in looked:
                rows += by_frame.get(id(item)) or [self.row(item, None, None)]
            return rows
        full: list[tuple[tuple[str, int], list[tuple[Looked, Face]]]] = []
        for item in looked:
            if not item.faces:
                if self.spec.kind == "window":
                    rows.append(self.row(item, None, None))
                else:
                    self.no_face_sources[item.source] += 1
            for face in item.faces:
                key = (item.source, face.track_id)
                self.pending[key].append((item, face))
                if len(self.pending[key]) >= self.spec.window:
                    full.append((key, self.pending.pop(key)))
        return rows + self._flush(full)

    def finish(self, source: str) -> list[dict[str, Any]]:
        """The source ended: its partial windows, and (clip models) one clip row per track."""
        rows = self._flush([(k, self.pending.pop(k)) for k in [k for k in self.pending if k[0] == source]])
        if self.spec.kind == "clip":
            mine = [k for k in self.clips if k[0] == source]
            for key in sorted(mine, key=lambda k: k[1]):
                clip = self.clips.pop(key)
                values = clip["sum"] / max(1, clip["frames"])
                row = self.row(clip["first"], clip["face"], values)
                row.update(
                    level="clip",
                    frames=clip["frames"],
                    last_frame=clip["last"].index,
                    end_s=round(clip["last"].time_s, 4),
                )
                rows.append(row)
            if not mine and self.no_face_sources.pop(source, 0):
                nothing = Looked(source, 0, 0.0, "no_face", [])
                row = self.row(nothing, None, None)
                row.update(level="clip", frames=0)
                rows.append(row)
        self.no_face_sources.pop(source, None)
        post = self.post.pop(source, None)
        return post.add(rows) + post.finish() if post is not None else rows

    def _flush(self, windows: list[tuple[tuple[str, int], list[tuple[Looked, Face]]]]) -> list[dict[str, Any]]:
        windows = [(key, items) for key, items in windows if items]
        if not windows:
            return []
        outputs = self.spec.run_windows([np.stack([f.crop for _, f in items]) for _, items in windows], self.batch_size)
        rows = []
        for (key, items), out in zip(windows, outputs, strict=True):
            if self.spec.kind == "window":
                rows += [self.row(item, face, v) for (item, face), v in zip(items, out, strict=True)]
                continue
            first, last = items[0], items[-1]
            row = self.row(first[0], last[1], out)
            row.update(level="window", frames=len(items), last_frame=last[0].index, end_s=round(last[0].time_s, 4))
            rows.append(row)
            clip = self.clips.setdefault(
                key, {"sum": np.zeros_like(out), "frames": 0, "first": first[0], "face": first[1]}
            )
            clip["sum"] = clip["sum"] + out * len(items)
            clip["frames"] += len(items)
            clip["last"] = last[0]
        return rows


def predict(spec: Runner, inputs: Sequence[Any], options: Options) -> Summary:
    """Run the model on every input (``emoframe predict --ckpt X INPUT...`` and ``Model.predict``)."""
    sampling = Sampling(options.every, options.fps)
    max_pixels()  # a bad EMOFRAME_MAX_PIXELS is one line for the run, not a skip of every picture
    if options.batch_size < 1 or options.chunk < 1:
        raise DataError("--batch-size: expected an integer >= 1")
    sources = expand_inputs(inputs)
    if not spec.accepts_images:
        pictures = [s.name for s in sources if s.kind == "image"]
        if pictures:
            raise DataError(
                f"{pictures[0]}: a {spec.task_name or spec.kind} model scores sequences of frames; "
                "give it videos or live sources, not pictures"
            )
    if options.render is not None:
        videos = [s for s in sources if s.kind == "video"]
        if len(videos) != 1 or len(sources) != 1:
            raise DataError("--render: give exactly one video file as the input")
    cropper = face_cropper(spec.image_size, spec.channels, spec.faces, options.faces, options.detect_every)
    live = any(s.kind == "live" for s in sources)
    sinks: list[RowSink] = []
    memory = MemorySink([]) if options.keep_rows else None
    summary = Summary(sources=len(sources))
    assembler = Assembler(spec, options.batch_size)
    if options.output is not None:
        sinks.append(open_sink(options.output, assembler.columns))
    if memory is not None:
        memory.columns = assembler.columns
        sinks.append(memory)
    if options.json_lines or (options.json_lines is None and live):
        sinks.append(JsonLines(assembler.columns))
    known = [s for s in sources if s.kind != "live"]
    total = None if live else sum(1 if s.kind == "image" else 0 for s in known)
    bar = tqdm(
        total=total, unit="frame", desc="Predicting", disable=not options.progress, dynamic_ncols=True, file=sys.stderr
    )
    timelines: dict[int, Timeline] = {}
    renderer: Renderer | None = None
    names: dict[str, int] = {}
    t0 = time.perf_counter()
    failed = False
    threads = torch.get_num_threads()
    if options.worker:  # the worker process decodes and detects on a core of its own: leave it that core
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 2) - 1)))

    def emit(rows: list[dict[str, Any]], index: int | None) -> None:
        for sink in sinks:
            sink.write(rows)
        summary.rows += len(rows)
        if index is not None and index in timelines:
            timelines[index].add(rows)
        if renderer is not None:
            renderer.update(rows)

    try:
        for event in events(sources, sampling, cropper, spec, options):
            kind, index = event[0], event[1]
            if kind == "skip":
                summary.skipped[event[2]] = event[3]
                emit(assembler.unreadable(event[2], event[3]), index)
            elif kind == "source":
                source: Source = event[2]
                assembler.start(source, sampling)
                if source.kind == "video" and bar.total is not None:
                    bar.total += source.frames or 0
                    bar.refresh()
                if source.is_video and options.timeline and options.output is not None:
                    timelines[index] = Timeline(spec.value_columns, f"{source.name} ({spec.task_name or spec.kind})")
                if options.render is not None and source.kind == "video":
                    assert source.fps and source.size
                    renderer = Renderer(Path(source.name), options.render, source.fps, source.size, spec.value_columns)
            elif kind == "chunk":
                looked: list[Looked] = event[2]
                for item in looked:
                    if item.status == "unreadable":
                        summary.skipped[item.source] = item.error
                    summary.frames += 1
                    summary.faces += len(item.faces)
                    summary.no_face += item.status == "no_face"
                emit(assembler.chunk(looked), index)
                if renderer is not None:
                    for item in looked:
                        renderer.frame(item.index, [{"box": f.box, "track_id": f.track_id} for f in item.faces])
                bar.update(len(looked))
                bar.set_postfix(faces=summary.faces, refresh=False)
            elif kind == "end":
                source = event[2]
                emit(assembler.finish(source.name), index)
                if index in timelines and options.output is not None:
                    path = _timeline_path(options.output, source, names)
                    written = timelines.pop(index).write(path)
                    if written is not None:
                        summary.paths.append(written)
                if source.kind == "live":
                    summary.notes.append(f"Stream {source.name} ended after {source.info.get('read', 0)} frames")
    except KeyboardInterrupt:
        summary.interrupted = True
    except BaseException:
        failed = True
        raise
    finally:
        torch.set_num_threads(threads)
        bar.close()
        summary.seconds = time.perf_counter() - t0
        for sink in sinks:
            summary.paths += sink.close()
        if renderer is not None:
            summary.paths += renderer.close()
        if failed and summary.rows == 0:  # a run that stopped before its first row (a camera that would not open)
            for path in summary.paths:
                path.unlink(missing_ok=True)
    if memory is not None:
        summary.table = memory.frame()
    return summary


def _timeline_path(output: Path, source: Source, names: dict[str, int]) -> Path:
    stem = Path(source.name).stem if source.kind == "video" else "live"
    names[stem] = names.get(stem, 0) + 1
    if names[stem] > 1:
        stem = f"{stem}_{names[stem]}"
    return output.with_name(f"{output.stem}.{stem}.timeline.png")


def check_options(options: Options) -> None:
    if options.decode_side is not None and options.decode_side < 80:
        raise RecipeError(f"--decode-side: expected 0 (full size) or >= 80 px, got {options.decode_side}")
