"""Valence/arousal outputs: whole-recording predictions from windows, post-processing reports, CSV and plots.

Windows come back from the model as (recording, start, per-frame predictions); ``assemble`` puts them
back into one (frames, 2) array per recording. ``postprocess_steps`` scores the checkpoint's
post-processing one step at a time (none, + median, + centre, + scale, + shift), which is what
``emoframe test`` reports; ``write_va_predictions`` writes the CSV and one PNG per recording.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoframe.eval.va_postprocessing import STEPS, PostProcessor, apply_postprocessors
from emoframe.functional.concordance import concordance

Window = tuple[int, int, np.ndarray]
"""(recording index, first frame, (window, D) predictions)."""


def assemble(windows: Sequence[Window], lengths: Sequence[int], dims: int = 2) -> list[np.ndarray]:
    """One (frames, D) float64 array per recording from its windows (frames no window covered are NaN)."""
    out = [np.full((n, dims), np.nan) for n in lengths]
    for r, start, preds in windows:
        n = min(len(preds), lengths[r] - start)
        out[r][start : start + n] = preds[:n]
    return out


def ccc_per_target(preds: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> np.ndarray:
    """AVEC CCC of each column over the concatenated recordings (NaN labels left out)."""
    p = torch.from_numpy(np.concatenate(list(preds)).astype(np.float64))
    y = torch.from_numpy(np.concatenate(list(labels)).astype(np.float64))
    return concordance(p, y, estimator="avec").numpy()


def partial(processor: PostProcessor, steps: int) -> PostProcessor:
    """A copy that applies only the first ``steps`` of median, centre, scale, shift (the rest identity)."""
    state = processor.to_dict()
    state["report"] = []
    if steps < 1:
        state["median_window"] = 1
    if steps < 2:
        state["bias"] = 0.0
    if steps < 3:
        state["scale"], state["scale_centre"] = 1.0, 0.0
    if steps < 4:
        state["shift"] = 0
    return PostProcessor.from_dict(state)


def at_rate(processor: PostProcessor, fps: float) -> PostProcessor:
    """The same processor for a recording at another frame rate (window and shift kept in seconds)."""
    if abs(fps - processor.fps) < 1e-6:
        return processor
    state = {**processor.to_dict(), "report": [], "fps": fps}
    window = round(processor.median_window * fps / processor.fps)
    state["median_window"] = max(1, window if window % 2 else window + 1)
    state["shift"] = round(processor.shift * fps / processor.fps)
    return PostProcessor.from_dict(state)


def parameter(processor: PostProcessor, step: str) -> float | None:
    """The fitted parameter of a step (window and shift in seconds), None when the step was not kept."""
    values = {
        "median": processor.median_window / processor.fps if processor.median_window > 1 else None,
        "centre": processor.bias if processor.bias != 0.0 else None,
        "scale": processor.scale if processor.scale != 1.0 else None,
        "shift": processor.shift / processor.fps if processor.shift else None,
    }
    return values[step]


def postprocess_steps(
    processors: Mapping[str, PostProcessor], preds: Sequence[np.ndarray], labels: Sequence[np.ndarray]
) -> list[dict[str, Any]]:
    """CCC per target after none, then each step cumulatively; one row per step."""
    names = list(processors)
    rows = []
    for k, step in enumerate(("none", *STEPS)):
        done = apply_postprocessors({n: partial(p, k) for n, p in processors.items()}, preds)
        ccc = ccc_per_target(done, labels)
        row: dict[str, Any] = {"step": step if k == 0 else f"+{step}"}
        for name in names:
            row[f"{name}_parameter"] = None if k == 0 else parameter(processors[name], step)
        for d, name in enumerate(names):
            row[f"ccc_{name}"] = float(ccc[d])
        row["ccc"] = float(np.mean(ccc))
        rows.append(row)
    return rows


def write_va_predictions(
    recordings: Sequence[Any],
    raw: Sequence[np.ndarray],
    processed: Sequence[np.ndarray],
    csv_path: Path,
    target_names: Sequence[str] = ("arousal", "valence"),
) -> list[Path]:
    """``csv_path`` (recording, frame, time, one column per target, face, raw values) and a PNG per recording."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    names = list(target_names)
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["recording", "frame", "time", *names, "face", *[f"{n}_raw" for n in names]])
        for rec, r, p in zip(recordings, raw, processed):
            times = rec.times
            for i in range(len(rec)):
                values = [f"{v:.5f}" for v in p[i]]
                w.writerow([rec.name, i, f"{times[i]:.3f}", *values, int(rec.valid[i]), *[f"{v:.5f}" for v in r[i]]])
    paths = [csv_path]
    for rec, r, p in zip(recordings, raw, processed):
        paths.append(plot_recording(rec, r, p, csv_path.parent / f"{_safe(rec.name)}.png", names))
    return paths


def plot_recording(rec: Any, raw: np.ndarray, processed: np.ndarray, path: Path, names: Sequence[str]) -> Path:
    """Predicted (raw and post-processed) and, where known, gold-standard curves per target over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.4 * len(names)), sharex=True, squeeze=False)
    times = rec.times
    for d, (ax, name) in enumerate(zip(axes[:, 0], names)):
        if np.isfinite(rec.labels[:, d]).any():
            ax.plot(times, rec.labels[:, d], color="black", lw=1.2, label="gold standard")
        ax.plot(times, raw[:, d], color="tab:blue", lw=0.8, alpha=0.5, label="predicted (raw)")
        ax.plot(times, processed[:, d], color="tab:red", lw=1.0, label="predicted")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(rec.name)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "recording"
