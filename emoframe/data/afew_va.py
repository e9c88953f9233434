"""AFEW-VA (Kossaifi et al., 2017): movie clips as PNG frames with per-frame valence, arousal and 68 landmarks.

    <root>/<id>/<frame>.png      e.g. 001/00000.png ... 001/00041.png
    <root>/<id>/<id>.json        {"actor", "video_id", "frames": {"00000": {"valence", "arousal",
                                  "landmarks": [[x, y] x 68]}, ...}}

Valence and arousal are integers on [-10, 10]; ``rescale`` divides them by 10 to [-1, 1], the range of
RECOLA's gold standard. Faces are cropped by the face pipeline over each clip's frames, cached like
video face tracks (``emoframe.faces.folders``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoframe.data.sequences import (
    SPLITS,
    TARGETS,
    Aligner,
    OnBad,
    SequenceRegressionDataModule,
    Source,
    split_by_ratio,
)
from emoframe.errors import DataError
from emoframe.faces.folders import frame_files
from emoframe.registry import DATAMODULES

AFEW_VA_RANGE = 10.0


@dataclass
class AfewVaClip:
    """One clip's annotations, in frame-file order: ``labels`` (N, 2) (arousal, valence), ``landmarks`` (N, 68, 2)."""

    name: str
    frames: list[str]  # frame file stems, in order
    labels: np.ndarray
    landmarks: np.ndarray
    actor: str


def read_afew_va_clip(folder: str | Path, rescale: bool = True) -> AfewVaClip:
    """The frames and annotations of one clip folder; a frame without annotation gets NaN labels."""
    folder = Path(folder)
    path = folder / f"{folder.name}.json"
    if not path.is_file():
        raise DataError(
            f"{path}: expected the AFEW-VA annotation of clip {folder.name} ({folder.name}/{folder.name}.json)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        annotated = doc["frames"]
        if not isinstance(annotated, dict):
            raise TypeError("'frames' is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: expected JSON with a 'frames' mapping of frame name -> annotation ({err})") from None
    stems = [f.stem for f in frame_files(folder)]
    labels = np.full((len(stems), len(TARGETS)), np.nan, np.float32)
    landmarks = np.full((len(stems), 68, 2), np.nan, np.float32)
    scale = AFEW_VA_RANGE if rescale else 1.0
    for i, stem in enumerate(stems):
        entry = annotated.get(stem)
        if entry is None:
            continue
        try:
            labels[i] = [float(entry[t]) / scale for t in TARGETS]
            points = np.asarray(entry["landmarks"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path}: frame {stem}: expected numeric 'valence', 'arousal' and 68 [x, y] 'landmarks' ({err})"
            ) from None
        if points.shape != (68, 2):
            raise DataError(f"{path}: frame {stem}: expected 68 [x, y] landmarks, got shape {points.shape}")
        landmarks[i] = points
    missing = sorted(set(annotated) - set(stems))
    if missing:
        raise DataError(f"{path}: annotated frame {missing[0]} has no image {folder}/{missing[0]}.png")
    return AfewVaClip(folder.name, stems, labels, landmarks, str(doc.get("actor", "")))


@DATAMODULES.register("afew_va")
class AfewVaDataModule(SequenceRegressionDataModule):
    """AFEW-VA clip folders -> face-crop windows with (arousal, valence) targets (rescaled to [-1, 1]).

    Splits: ``train_clips``/``val_clips``/``test_clips`` (clip ids), or every clip dealt by ``ratios``
    with ``seed``. Each recording keeps its annotated landmarks in ``extra["landmarks"]``. Frames are
    ``fps`` apart (AFEW-VA gives no rate; it only sets the times written by ``predict``).
    """

    def __init__(
        self,
        root: str,
        train_clips: list[str] | None = None,
        val_clips: list[str] | None = None,
        test_clips: list[str] | None = None,
        ratios: list[float] | None = None,
        rescale: bool = True,
        fps: float = 25.0,
        window: int = 50,
        stride: int | None = None,
        batch_size: int = 4,
        num_workers: int = 2,
        image_size: int = 150,
        channels: int = 3,
        mean: float | list[float] = 0.5,
        std: float | list[float] = 0.5,
        faces: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        workers: int = 1,
        on_bad_recording: OnBad = "error",
        predict_videos: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root).expanduser()
        lists = {"train": train_clips, "val": val_clips, "test": test_clips}
        if any(v is not None for v in lists.values()) and ratios is not None:
            raise DataError("data: give either train_clips/val_clips/test_clips or ratios, not both")
        self.clip_lists = {s: list(v) for s, v in lists.items() if v is not None} or None
        self.ratios = [float(r) for r in (ratios or (0.8, 0.1, 0.1))]
        self.rescale = rescale
        if not fps > 0:
            raise DataError(f"data.fps: expected a frame rate > 0, got {fps!r}")
        self.fps = float(fps)
        super().__init__(
            window, stride, batch_size, num_workers, image_size, channels, mean, std, faces, cache_dir, workers,
            on_bad_recording, predict_videos, seed,
        )  # fmt: skip
        if not self.predict_videos:
            self.clips()

    def clips(self) -> list[str]:
        """Clip ids under the root (folders holding ``<id>/<id>.json``), or a one-line layout error."""
        expected = f"expected {self.root}/<id>/<frame>.png and {self.root}/<id>/<id>.json (AFEW-VA layout)"
        if not self.root.is_dir():
            raise DataError(f"AFEW-VA not found at {self.root}: {expected}; set AFEW_VA_ROOT or data.root")
        clips = sorted(p.name for p in self.root.iterdir() if (p / f"{p.name}.json").is_file())
        if not clips:
            raise DataError(f"No AFEW-VA clips in {self.root}: {expected}")
        return clips

    def sources(self) -> dict[str, list[Source]]:
        clips = self.clips()
        if self.clip_lists is not None:
            split_of = {s: [_clip_id(c, clips, s, self.root) for c in self.clip_lists.get(s, [])] for s in SPLITS}
        else:
            split_of = split_by_ratio(clips, self.ratios, self.seed, "data")
        plan: dict[str, list[Source]] = {}
        for split, names in split_of.items():
            plan[split] = []
            for name in names:
                try:
                    clip = read_afew_va_clip(self.root / name, self.rescale)
                except DataError as err:
                    self.bad(name, str(err))
                    continue
                extra = {"landmarks": clip.landmarks, "actor": clip.actor}
                plan[split].append(Source(name, str(self.root / name), _fixed(clip), self.fps, extra))
        return plan


def _fixed(clip: AfewVaClip) -> Aligner:
    """An aligner returning the clip's per-frame labels (one label per frame file)."""

    def align(frames: int, fps: float) -> np.ndarray:
        if frames != len(clip.labels):
            raise DataError(f"clip {clip.name}: {frames} frames were cropped but {len(clip.labels)} are annotated")
        return clip.labels

    return align


def _clip_id(value: str | int, clips: list[str], split: str, root: Path) -> str:
    """A clip id from a recipe list; YAML reads ``001`` as the number 1, so numbers match zero-padded ids."""
    if str(value) in clips:
        return str(value)
    if isinstance(value, int):
        for clip in clips:
            if clip.isdigit() and int(clip) == value:
                return clip
    raise DataError(f"data.{split}_clips: no clip '{value}' in {root} (found {len(clips)} clips, e.g. {clips[0]})")
