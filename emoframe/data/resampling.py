"""Window re-sampling for imbalanced multi-label video (Tzirakis et al.'s "boosting" by re-sampling).

Training windows that contain a rare label and none of the frequent ones (neutral, in the paper) are
served ``factor`` times per epoch instead of once. Emotions are expressed over several frames, so whole
windows are repeated, not single frames. ``count_table`` gives the per-label frame counts a training
epoch serves before and after, the paper's Table 4; the class-weighted loss is computed from the
"after" counts, since those are the frames it sees.

A frame counts for a label when its target is >= 0.5 (a soft target counts once it is a majority).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emoframe.errors import DataError

Window = tuple[int, int]
"""(recording index, first frame)."""


@dataclass
class LabelledFrames:
    """What re-sampling needs of a recording: per-frame targets and which frames are usable."""

    labels: np.ndarray  # (N, K) float32, NaN where unlabelled
    valid: np.ndarray  # (N,) bool: a crop exists


def positives(rec: LabelledFrames) -> np.ndarray:
    """(N, K) bool: usable, labelled frames showing each label."""
    usable = rec.valid & np.isfinite(rec.labels).all(axis=1)
    return usable[:, None] & (np.nan_to_num(rec.labels, nan=0.0) >= 0.5)


def labelled(rec: LabelledFrames) -> np.ndarray:
    """(N,) bool: usable frames with a target."""
    return rec.valid & np.isfinite(rec.labels).all(axis=1)


def _cumulative(x: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading zero row, so a window's count is ``c[stop] - c[start]``."""
    return np.concatenate([np.zeros((1, *x.shape[1:]), np.int64), np.cumsum(x, axis=0, dtype=np.int64)])


def window_counts(
    recordings: Sequence[LabelledFrames], windows: Sequence[Window], window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per window: (W, K) frames showing each label and (W,) labelled frames."""
    k = recordings[0].labels.shape[1] if recordings else 0
    pos_sums = [_cumulative(positives(r)) for r in recordings]
    lab_sums = [_cumulative(labelled(r)) for r in recordings]
    per_label = np.zeros((len(windows), k), np.int64)
    per_window = np.zeros(len(windows), np.int64)
    for w, (r, start) in enumerate(windows):
        stop = min(start + window, len(recordings[r].valid))
        per_label[w] = pos_sums[r][stop] - pos_sums[r][start]
        per_window[w] = lab_sums[r][stop] - lab_sums[r][start]
    return per_label, per_window


def frequent_labels(frame_counts: np.ndarray, labelled_frames: int, share: float) -> list[int]:
    """Labels present in at least ``share`` of the labelled frames (neutral's 78% in the paper)."""
    if labelled_frames <= 0:
        return []
    return [int(i) for i in np.flatnonzero(frame_counts / labelled_frames >= share)]


@dataclass
class Resampling:
    """The re-sampled window list and what it did."""

    windows: list[Window]
    eligible: int  # windows repeated
    frequent: list[int]
    rare: list[int]
    before: np.ndarray  # (K,) frames served per label per epoch without re-sampling
    after: np.ndarray  # (K,) with it
    labelled_before: int
    labelled_after: int


def resample_windows(
    recordings: Sequence[LabelledFrames],
    windows: Sequence[Window],
    window: int,
    factor: int,
    frequent: list[int],
    rare: list[int],
    max_frequent_share: float = 0.0,
) -> Resampling:
    """Repeat (``factor`` times in all) each window with a rare label and frequent labels in at most
    ``max_frequent_share`` of its labelled frames (0: none, the paper's rule)."""
    if not isinstance(factor, int) or factor < 1:
        raise DataError(f"data.resample.factor: expected an integer >= 1 (times a window is served), got {factor!r}")
    if not 0.0 <= max_frequent_share <= 1.0:
        raise DataError(f"data.resample.max_frequent_share: expected a share in [0, 1], got {max_frequent_share!r}")
    per_label, per_window = window_counts(recordings, windows, window)
    has_rare = per_label[:, rare].sum(axis=1) > 0 if rare else np.zeros(len(windows), bool)
    frequent_frames = per_label[:, frequent].max(axis=1) if frequent else np.zeros(len(windows), np.int64)
    eligible = has_rare & (frequent_frames <= max_frequent_share * np.maximum(per_window, 1))
    repeats = np.where(eligible, factor, 1)
    out = [w for w, n in zip(windows, repeats) for _ in range(int(n))]
    return Resampling(
        windows=out,
        eligible=int(eligible.sum()),
        frequent=list(frequent),
        rare=list(rare),
        before=per_label.sum(axis=0),
        after=(per_label * repeats[:, None]).sum(axis=0),
        labelled_before=int(per_window.sum()),
        labelled_after=int((per_window * repeats).sum()),
    )


def count_table(
    result: Resampling, names: Sequence[str], raw: np.ndarray, raw_labelled: int
) -> list[dict[str, object]]:
    """Rows of the Table-4-style report: per label, frames in the split, served before and after, shares."""
    rows: list[dict[str, object]] = []
    role = {i: "frequent" for i in result.frequent} | {i: "rare" for i in result.rare}
    for i, name in enumerate(names):
        rows.append(
            {
                "label": name,
                "role": role.get(i, ""),
                "frames": int(raw[i]),
                "served_before": int(result.before[i]),
                "served_after": int(result.after[i]),
                "share_before": result.before[i] / max(result.labelled_before, 1),
                "share_after": result.after[i] / max(result.labelled_after, 1),
            }
        )
    rows.append(
        {
            "label": "labelled frames",
            "role": "",
            "frames": int(raw_labelled),
            "served_before": result.labelled_before,
            "served_after": result.labelled_after,
            "share_before": 1.0,
            "share_after": 1.0,
        }
    )
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """The report as aligned text, for the log."""
    lines = [f"{'label':<18}{'role':<10}{'frames':>10}{'before':>10}{'after':>10}{'share':>20}"]
    for row in rows:
        share = f"{row['share_before']:.1%} -> {row['share_after']:.1%}"
        lines.append(
            f"{row['label']!s:<18}{row['role']!s:<10}{row['frames']:>10,}{row['served_before']:>10,}"
            f"{row['served_after']:>10,}{share:>20}"
        )
    return "\n".join(lines)
