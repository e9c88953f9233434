"""Report files: rows as CSV (``write_rows``), the confusion matrix as CSV (for tools) and PNG (for people)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_rows(rows: Sequence[Mapping[str, Any]], path: Path, float_format: str | None = "{:.6f}") -> Path:
    """A CSV with the first row's keys as header; None written empty, floats with ``float_format``
    (``None``: as Python prints them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = list(rows[0])
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            values = (row.get(k) for k in header)
            w.writerow(
                [
                    "" if v is None else float_format.format(v) if float_format and isinstance(v, float) else v
                    for v in values
                ]
            )
    return path


def write_confusion_reports(confusion: np.ndarray, class_names: list[str], out_dir: Path, prefix: str) -> list[Path]:
    """Write ``<prefix>_confusion.csv`` (counts, rows = true class) and ``<prefix>_confusion.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{prefix}_confusion.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\pred", *class_names])
        for name, row in zip(class_names, confusion.astype(int)):
            w.writerow([name, *row.tolist()])
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.2f}\n({int(confusion[i, j])})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    acc = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"{prefix}: accuracy {acc:.4f} (n={int(confusion.sum())})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    png_path = out_dir / f"{prefix}_confusion.png"
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return [csv_path, png_path]
