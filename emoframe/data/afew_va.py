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
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Unpack

import numpy as np

from emoframe.data.common import FrameRate
from emoframe.data.video.recordings import SPLITS, Aligner, Source
from emoframe.data.video.windows import TARGETS, WindowDataModule, WindowOptions, seed_and_ratios, split_by_ratio
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
    unlabelled: int = 0  # frames with no annotation, or a NaN valence/arousal: left out of the loss and metrics


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
            values = [float(entry[t]) for t in TARGETS]
            points = np.asarray(entry["landmarks"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path}: frame {stem}: expected numeric 'valence', 'arousal' and 68 [x, y] 'landmarks' ({err})"
            ) from None
        for target, value in zip(TARGETS, values):
            if not np.isnan(value) and not -AFEW_VA_RANGE <= value <= AFEW_VA_RANGE:
                raise DataError(
                    f"{path}: frame {stem}: {target} {value:g} is outside AFEW-VA's range "
                    f"[-{AFEW_VA_RANGE:g}, {AFEW_VA_RANGE:g}]"
                )
        labels[i] = [v / scale for v in values]
        if points.shape != (68, 2):
            raise DataError(f"{path}: frame {stem}: expected 68 [x, y] landmarks, got shape {points.shape}")
        landmarks[i] = points
    missing = sorted(set(annotated) - set(stems))
    if missing:
        raise DataError(f"{path}: annotated frame {missing[0]} has no image {folder}/{missing[0]}.png")
    unlabelled = int(np.isnan(labels).any(axis=1).sum())
    return AfewVaClip(folder.name, stems, labels, landmarks, str(doc.get("actor", "")), unlabelled)


@DATAMODULES.register("afew_va")
class AfewVaDataModule(WindowDataModule):
    """AFEW-VA clip folders -> face-crop windows with (arousal, valence) targets (rescaled to [-1, 1]).

    ``split``: ``{seed: 0, ratios: [0.8, 0.1, 0.1]}`` deals every clip by a seeded shuffle, or ``{train: [ids],
    val: [ids], test: [ids]}`` lists the clips of each split. Each recording keeps its annotated landmarks in
    ``extra["landmarks"]``. Frames are ``fps`` apart (AFEW-VA gives no rate; it only sets the times written
    by ``predict``).
    """

    moved_keys: ClassVar[dict[str, str]] = {
        **WindowDataModule.moved_keys,
        "train_clips": "split.train",
        "val_clips": "split.val",
        "test_clips": "split.test",
        "ratios": "split.ratios",
        "seed": "split.seed",
    }
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        **WindowDataModule.section_defaults,
        "windows": {"size": 50},
        "loader": {"batch_size": 4, "num_workers": 2},
    }

    def __init__(
        self,
        root: str,
        split: dict[str, Any] | None = None,
        rescale: bool = True,
        fps: FrameRate = 25.0,
        **options: Unpack[WindowOptions],
    ) -> None:
        self.root = Path(root).expanduser()
        self.clip_lists, self.ratios, self.seed = _check_split(split)
        self.rescale = rescale
        if not fps > 0:
            raise DataError(f"data.fps: expected a frame rate > 0, got {fps!r}")
        self.fps = float(fps)
        super().__init__(**options)
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
            split_of = split_by_ratio(clips, self.ratios, self.seed, "data.split")
        plan: dict[str, list[Source]] = {}
        unlabelled = frames = 0
        for split, names in split_of.items():
            plan[split] = []
            for name in names:
                try:
                    clip = read_afew_va_clip(self.root / name, self.rescale)
                except DataError as err:
                    self.bad(name, str(err))
                    continue
                unlabelled, frames = unlabelled + clip.unlabelled, frames + len(clip.frames)
                extra = {"landmarks": clip.landmarks, "actor": clip.actor}
                plan[split].append(Source(name, str(self.root / name), _fixed(clip), self.fps, extra))
        if unlabelled:
            print(
                f"AFEW-VA: {unlabelled} of {frames} frames have no valence/arousal (not annotated, or NaN); "
                "they are left out of the loss and metrics",
                file=sys.stderr,
                flush=True,
            )
        self.unlabelled_frames = unlabelled
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
    raise DataError(f"data.split.{split}: no clip '{value}' in {root} (found {len(clips)} clips, e.g. {clips[0]})")


def _check_split(split: dict[str, Any] | None) -> tuple[dict[str, list[str]] | None, list[float], int]:
    """(clip lists per split or None, ratios, seed) of ``data.split``."""
    if split is not None and not isinstance(split, Mapping):
        raise DataError(
            f"data.split: expected {{seed: 0, ratios: [0.8, 0.1, 0.1]}} or train/val/test lists, got {split!r}"
        )
    split = dict(split or {})
    unknown = sorted(set(split) - {"seed", "ratios", *SPLITS})
    if unknown:
        raise DataError(f"data.split.{unknown[0]}: unknown key; expected seed and ratios, or train, val and test lists")
    for s in SPLITS:
        if split.get(s) is not None and not isinstance(split[s], (list, tuple)):
            raise DataError(f"data.split.{s}: expected a list of clip ids, got {split[s]!r}")
    lists = {s: list(split[s]) for s in SPLITS if split.get(s) is not None}
    if lists and (split.get("ratios") is not None or split.get("seed") is not None):
        given = ", ".join(sorted(str(k) for k in split if split[k] is not None))
        raise DataError(f"data.split: give either train/val/test clip lists or seed and ratios, not both (got {given})")
    seed, ratios = seed_and_ratios(split, "data.split", (0.8, 0.1, 0.1))
    return lists or None, ratios, seed
