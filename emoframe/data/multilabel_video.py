"""Users' own videos with per-frame multi-label emotion annotations (Tzirakis et al.'s pre-training stage).

    <videos>/<video id>.mp4           (any decord-readable video, or a folder of frames with data.fps)
    <annotations>.csv | .parquet      video, frame (or time), participant, <label 1>, ..., <label K> [, split]

The table's format and vote handling are in ``emoframe.data.annotations`` and docs/multilabel_video.md.
Frames come through the face-track cache; batches are ``emoframe.data.video.windows``' windows with
(B, T, K) targets. Splits are by participant, so nobody is in two splits (checked, whatever made the
split). Training windows may be re-sampled for rare labels (``emoframe.data.resampling``), and the
per-label counts before and after are printed and kept for the task's report (the paper's Table 4).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Unpack

import numpy as np
from lightning_fabric.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader

from emoframe.data.annotations import (
    AnnotationTable,
    EmptyRows,
    RowPolicy,
    VideoLabels,
    Votes,
    check_labels_named,
    frame_targets,
    read_annotations,
)
from emoframe.data.common import FrameRate, Section, section
from emoframe.data.resampling import Resampling, count_table, format_table, frequent_labels, labelled, positives
from emoframe.data.resampling import resample_windows as resample_window_list
from emoframe.data.video.recordings import SPLITS, Aligner, Source
from emoframe.data.video.windows import WindowDataModule, WindowOptions, seed_and_ratios, split_by_ratio
from emoframe.errors import DataError
from emoframe.files.video import VIDEO_SUFFIXES
from emoframe.registry import DATAMODULES

RESAMPLE_KEYS = {"factor", "frequent", "frequent_share", "rare", "max_frequent_share"}
TABLE_KEYS = ("ignore_columns", "votes", "raters", "vote_threshold", "empty_rows", "on_bad_rows")


@dataclass(frozen=True)
class TableSettings:
    """``data.table``: how the annotation table is read (``emoframe.data.annotations``; docs/multilabel_video.md)."""

    ignore_columns: list[str] | None = None
    votes: Votes = "binary"
    raters: int | None = None
    vote_threshold: float | None = None
    empty_rows: EmptyRows = "skip"
    on_bad_rows: RowPolicy = "error"


def check_subject_independent(plan: dict[str, list[str]], participant_of: dict[str, str]) -> None:
    """No participant in two splits; one line naming the first one found otherwise."""
    seen: dict[str, str] = {}
    for split, videos in plan.items():
        for video in videos:
            person = participant_of[video]
            if seen.setdefault(person, split) != split:
                raise DataError(
                    f"participant '{person}' is in both the {seen[person]} and the {split} split (video '{video}'): "
                    "splits must be subject-independent; fix the table's split column or use data.split ratios"
                )


def split_videos(
    table: AnnotationTable, split: str | dict[str, Any], where: str = "data.split"
) -> dict[str, list[str]]:
    """Video ids per split: whole participants dealt by ``{seed, ratios}``, or the table's ``split`` column."""
    participant_of = table.participants
    if split == "column":
        plan: dict[str, list[str]] = {s: [] for s in SPLITS}
        for video, labels in table.videos.items():
            name = {"validation": "val", "dev": "val"}.get(str(labels.split), str(labels.split))
            if name not in plan:
                raise DataError(
                    f"{table.path}:{labels.lines[0]}: split '{labels.split}' of video '{video}' is not train, val or test"
                )
            plan[name].append(video)
    else:
        if not isinstance(split, dict) or set(split) - {"seed", "ratios"}:
            raise DataError(f"{where}: expected 'column' or {{seed: 0, ratios: [0.8, 0.2, 0.0]}}, got {split!r}")
        seed, ratios = seed_and_ratios(split, where, (0.8, 0.2, 0.0))
        people = split_by_ratio(sorted(set(participant_of.values())), ratios, seed, where)
        split_of = {person: s for s, persons in people.items() for person in persons}
        plan = {s: sorted(v for v, p in participant_of.items() if split_of[p] == s) for s in SPLITS}
    check_subject_independent(plan, participant_of)
    return plan


@DATAMODULES.register("multilabel_video")
class MultilabelVideoDataModule(WindowDataModule):
    """Videos + a per-frame multi-label table -> face-crop windows with one 0/1 (or soft) target per label.

    ``split``: ``{seed, ratios}`` over participants (the paper: 80/20), or ``column`` for the table's own.
    ``resample``: ``{factor, frequent, frequent_share, rare, max_frequent_share}``; frequent labels are
    given or those in at least ``frequent_share`` of the training frames; rare ones are given or all the
    others. ``null`` serves every window once. ``fps`` is needed for frame folders.
    """

    extract_chunk = 16

    moved_keys: ClassVar[dict[str, str]] = {
        **WindowDataModule.moved_keys,
        **{key: f"table.{key}" for key in TABLE_KEYS},
        "seed": "split.seed",
    }

    def __init__(
        self,
        videos: str,
        annotations: str,
        labels: list[str] | None = None,
        table: Section = None,
        split: str | dict[str, Any] | None = None,
        resample: dict[str, Any] | None = None,
        fps: FrameRate | None = None,
        **options: Unpack[WindowOptions],
    ) -> None:
        self.videos_dir = Path(videos).expanduser()
        self.annotations_path = Path(annotations).expanduser()
        self.table_settings = section(TableSettings, table, "table")
        self.on_bad_rows = self.table_settings.on_bad_rows
        self.split = split if split is not None else {"seed": 0, "ratios": [0.8, 0.2, 0.0]}
        self.fps = fps
        self.table: AnnotationTable | None = None
        predict_only = bool(options.get("predict_videos")) and not self.annotations_path.is_file()
        if predict_only:  # predicting on given videos needs only the label names
            if not labels:
                raise DataError(
                    f"data.labels: predicting without the annotation table ({self.annotations_path}) needs the label names"
                )
            self._labels = list(labels)
        else:  # read now: the label names size the model's head, and a bad table fails before any video is read
            self.table = read_annotations(self.annotations_path, labels, **dataclasses.asdict(self.table_settings))
            self._labels = self.table.labels
            if not self.videos_dir.is_dir():
                raise DataError(f"data.videos: {self.videos_dir} is not a folder (expected <videos>/<video id>.mp4)")
        self.resample = _check_resample(resample, self._labels, self.annotations_path)
        super().__init__(**options)
        self._resampling: Resampling | None = None
        self.count_rows: list[dict[str, object]] = []

    # --- what the builder, the loss and the task read ---------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self._labels)

    @property
    def train_label_counts(self) -> np.ndarray:
        """Frames per label one training epoch serves (after re-sampling): the class-weighted loss's counts."""
        return self.resampling.after

    @property
    def train_label_total(self) -> int:
        """Labelled frames one training epoch serves (for positive-class weights)."""
        return self.resampling.labelled_after

    @property
    def rare_labels(self) -> list[str]:
        return [self._labels[i] for i in self.resampling.rare]

    @property
    def resampling(self) -> Resampling:
        if self._resampling is None:
            self._windows("train", cover=False)
        assert self._resampling is not None
        return self._resampling

    # --- sources ---------------------------------------------------------------------------------
    def sources(self) -> dict[str, list[Source]]:
        if self.table is None:
            raise DataError(f"data.annotations: {self.annotations_path} not found (needed for every stage but predict)")
        plan = split_videos(self.table, self.split)
        found = self._video_files()
        unused = sorted(set(found) - set(self.table.videos))
        if unused:
            line = f"{len(unused)} videos in {self.videos_dir} have no annotation rows and are not used"
            print(f"{line} (first: {unused[0]})", file=sys.stderr, flush=True)
        out: dict[str, list[Source]] = {}
        for split, names in plan.items():
            out[split] = []
            for name in names:
                if name not in found:
                    expected = f"{self.videos_dir}/{name}.mp4 (or another video suffix, or a frame folder)"
                    self.bad(name, f"{self.table.path}: video '{name}' has annotation rows but no file {expected}")
                    continue
                out[split].append(Source(name, str(found[name]), self._aligner(self.table.videos[name]), self.fps))
        return out

    def _video_files(self) -> dict[str, Path]:
        out = {}
        for p in sorted(self.videos_dir.iterdir()):
            if p.is_dir() or (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
                out.setdefault(p.stem if p.is_file() else p.name, p)
        return out

    def _aligner(self, labels: VideoLabels) -> Aligner:
        table = self.table
        assert table is not None

        def align(frames: int, fps: float) -> np.ndarray:
            return frame_targets(labels, frames, fps, table, self.on_bad_rows)

        return align

    def _load(self, plan: dict[str, list[Source]]) -> dict[str, Any]:
        out = super()._load(plan)
        if self.table is not None and self.table.issues and _rank_zero():
            print(self.table.report(), file=sys.stderr, flush=True)
        return out

    # --- windows ---------------------------------------------------------------------------------
    def _windows(self, split: str, cover: bool) -> list[tuple[int, int]]:
        windows = super()._windows(split, cover)
        if split != "train":
            return windows
        if self._resampling is None:
            self._resampling = self._resample(windows)
        return self._resampling.windows

    def _resample(self, windows: list[tuple[int, int]]) -> Resampling:
        recordings = self.recordings("train")
        raw = sum((positives(r).sum(axis=0) for r in recordings), np.zeros(self.num_classes, np.int64))
        raw_labelled = int(sum(labelled(r).sum() for r in recordings))
        opts = self.resample or {}
        frequent = check_labels_named(
            opts.get("frequent"), self._labels, "data.resample.frequent", self.annotations_path
        )
        if opts.get("frequent") is None:
            frequent = frequent_labels(raw, raw_labelled, float(opts.get("frequent_share", 0.5)))
        rare = check_labels_named(opts.get("rare"), self._labels, "data.resample.rare", self.annotations_path)
        if opts.get("rare") is None:
            rare = [i for i in range(self.num_classes) if i not in frequent]
        factor = int(opts.get("factor", 1)) if self.resample is not None else 1
        result = resample_window_list(
            recordings, windows, self.window, factor, frequent, rare, float(opts.get("max_frequent_share", 0.0))
        )
        self.count_rows = count_table(result, self._labels, raw, raw_labelled)
        if _rank_zero():
            print(
                f"Training frames per label, one epoch, before and after re-sampling ({result.eligible} of "
                f"{len(windows)} windows served x{factor}):\n{format_table(self.count_rows)}",
                file=sys.stderr,
                flush=True,
            )
        return result

    def test_dataloader(self) -> DataLoader:
        if not self.recordings("test"):
            raise DataError(
                "multilabel_video: the test split is empty (data.split ratios give it no participant): "
                "set a test ratio, e.g. data.split.ratios='[0.7, 0.15, 0.15]', or run `emoframe validate`"
            )
        return self._loader("test", shuffle=False)


def _rank_zero() -> bool:
    """Global rank 0, as Lightning knows it (RANK, LOCAL_RANK, SLURM_PROCID; the Trainer's own once it exists)."""
    return int(getattr(rank_zero_only, "rank", 0) or 0) == 0


def _check_resample(resample: dict[str, Any] | None, labels: list[str], path: Path) -> dict[str, Any] | None:
    if resample is None:
        return None
    if not isinstance(resample, dict):
        raise DataError(
            f"data.resample: expected a mapping such as {{factor: 3, frequent: [neutral]}}, got {resample!r}"
        )
    unknown = sorted(set(resample) - RESAMPLE_KEYS)
    if unknown:
        raise DataError(f"data.resample.{unknown[0]}: unknown key; expected {', '.join(sorted(RESAMPLE_KEYS))}")
    for key in ("frequent", "rare"):
        check_labels_named(resample.get(key), labels, f"data.resample.{key}", path)
    return dict(resample)
