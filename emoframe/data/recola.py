"""RECOLA in the AVEC 2016 layout, as windows of face crops with per-frame (arousal, valence) targets.

    <root>/recordings_video/{train,dev,test}_<n>.mp4
    <root>/ratings_gold_standard/{arousal,valence}/{train,dev,test}_<n>.arff   (one row every 40 ms)

Labels are aligned to video frames by time (``emoframe.data.arff.align_labels_to_frames``). AVEC's
``dev`` partition is the validation split. Each recording is one subject, so ``resplit`` deals whole
recordings to train/val/test (subject-independent) instead of using the AVEC partitions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Unpack

import numpy as np

from emoframe.data.arff import DIMENSIONS, GOLD_STANDARD_DIR, align_labels_to_frames, read_recola_labels
from emoframe.data.video.recordings import Aligner, Source, is_video
from emoframe.data.video.windows import TARGETS, WindowDataModule, WindowOptions, split_by_ratio
from emoframe.errors import DataError
from emoframe.registry import DATAMODULES

VIDEO_DIR = "recordings_video"
AVEC_SPLITS = {"train": "train", "dev": "val", "test": "test"}
_NAME = re.compile(r"(train|dev|test)_(\d+)")
assert tuple(DIMENSIONS) == TARGETS  # the ARFF columns are read in the order the targets are served


@DATAMODULES.register("recola")
class RecolaDataModule(WindowDataModule):
    """RECOLA (AVEC 2016 layout): videos + gold-standard ARFFs -> face-crop windows, (arousal, valence) targets.

    A video without gold standard in train/dev, gold standard without a video, or an unreadable ARFF
    or video stops with one line (``on_bad_recording: skip`` counts and reports them instead). Test
    videos without labels (AVEC 2016 withholds them) are kept for ``emoframe predict``.
    ``resplit: {seed: 0, ratios: [0.6, 0.2, 0.2]}`` reassigns the labelled recordings (subjects).
    """

    moved_keys: ClassVar[dict[str, str]] = {**WindowDataModule.moved_keys, "seed": "resplit.seed"}

    def __init__(self, root: str, resplit: dict[str, Any] | None = None, **options: Unpack[WindowOptions]) -> None:
        self.root = Path(root).expanduser()
        self.resplit = _check_resplit(resplit)
        super().__init__(**options)
        if not self.predict_videos:  # predicting on given videos needs no RECOLA
            self.check_layout()

    def check_layout(self) -> None:
        """One line saying what is expected where, when the root is not a RECOLA tree."""
        r = self.root
        expected = (
            f"expected {r}/{VIDEO_DIR}/train_1.mp4 ... and {r}/{GOLD_STANDARD_DIR}/arousal/train_1.arff "
            f"(and valence/), the AVEC 2016 layout; set RECOLA_ROOT or data.root"
        )
        if not r.is_dir():
            raise DataError(f"RECOLA not found at {r}: {expected}")
        missing = [
            d
            for d in (VIDEO_DIR, f"{GOLD_STANDARD_DIR}/arousal", f"{GOLD_STANDARD_DIR}/valence")
            if not (r / d).is_dir()
        ]
        if missing:
            found = sorted(p.name for p in r.iterdir() if not p.name.startswith("."))
            raise DataError(f"RECOLA at {r} has no {missing[0]}/: {expected}; found {', '.join(found) or 'nothing'}")
        if not any(is_video(p) and _NAME.fullmatch(p.stem) for p in (r / VIDEO_DIR).iterdir()):
            raise DataError(f"No <split>_<n> videos in {r / VIDEO_DIR}: {expected}")

    def sources(self) -> dict[str, list[Source]]:
        self.check_layout()
        videos = {
            p.stem: p for p in sorted((self.root / VIDEO_DIR).iterdir()) if is_video(p) and _NAME.fullmatch(p.stem)
        }
        labelled = set()
        for dim in DIMENSIONS:
            folder = self.root / GOLD_STANDARD_DIR / dim
            labelled |= {p.stem for p in folder.glob("*.arff") if _NAME.fullmatch(p.stem)}
        plan: dict[str, list[Source]] = {"train": [], "val": [], "test": []}
        for name in sorted(set(videos) | labelled, key=_order):
            split = AVEC_SPLITS[name.split("_")[0]]
            if name not in videos:
                arff = self.root / GOLD_STANDARD_DIR / "arousal" / f"{name}.arff"
                self.bad(name, f"{arff}: gold standard without a video (expected {self.root / VIDEO_DIR}/{name}.mp4)")
                continue
            if name not in labelled:
                if split == "test":  # AVEC 2016 releases test videos without labels: predict only
                    plan[split].append(Source(name, str(videos[name])))
                else:
                    expected = f"{self.root / GOLD_STANDARD_DIR}/arousal/{name}.arff and valence/"
                    self.bad(name, f"{videos[name]}: video without gold standard (expected {expected})")
                continue
            try:
                times, values = read_recola_labels(self.root, name, DIMENSIONS)
            except DataError as err:
                self.bad(name, str(err))
                continue
            plan[split].append(Source(name, str(videos[name]), _aligner(name, times, values)))
        if self.resplit is not None:
            by_name = {s.name: s for ss in plan.values() for s in ss if s.align is not None}
            ratios = [float(x) for x in self.resplit.get("ratios", (0.6, 0.2, 0.2))]
            split = split_by_ratio(
                sorted(by_name, key=_order), ratios, int(self.resplit.get("seed", 0)), "data.resplit"
            )
            plan = {s: [by_name[n] for n in sorted(names, key=_order)] for s, names in split.items()}
        return plan


def _aligner(name: str, times: np.ndarray, values: np.ndarray) -> Aligner:
    """Labels of one recording, nearest 40 ms slot per video frame (NaN outside the rated span)."""

    def align(frames: int, fps: float) -> np.ndarray:
        frame_times = np.arange(frames) / fps
        columns = [align_labels_to_frames(times, values[:, d], frame_times) for d in range(values.shape[1])]
        if all(c.unmatched == frames for c in columns):
            raise DataError(
                f"{name}: none of its {frames} video frames ({frame_times[-1]:.1f} s at {fps:g} fps) falls within "
                f"the rated span {times[0]:.2f}-{times[-1]:.2f} s of its gold standard"
            )
        return np.stack([c.values for c in columns], axis=1)

    return align


def _order(name: str) -> tuple[int, int]:
    kind, n = name.split("_")
    return list(AVEC_SPLITS).index(kind), int(n)


def _check_resplit(resplit: dict[str, Any] | None) -> dict[str, Any] | None:
    if resplit is None:
        return None
    unknown = sorted(set(resplit) - {"seed", "ratios"})
    if unknown:
        raise DataError(f"data.resplit.{unknown[0]}: unknown key; expected seed and ratios (e.g. [0.6, 0.2, 0.2])")
    ratios = resplit.get("ratios", (0.6, 0.2, 0.2))
    if not isinstance(ratios, (list, tuple)) or len(ratios) != 3:
        raise DataError(f"data.resplit.ratios: expected three numbers for train, val, test, got {ratios!r}")
    return dict(resplit)
