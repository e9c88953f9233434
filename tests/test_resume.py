"""Exact resume: kill -9 in the middle of an epoch, `--resume last`, and the run ends as the uninterrupted one.

The checkpoint carries the RNG states (emoframe.callbacks.resume), so shuffling and dropout after the epoch
boundary are those of the uninterrupted run. Augmentation is off here: albumentations' generators live in the
loader (its workers, or the main process), outside the global states (noted in docs/guide.md).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "fer2013_small_cnn.yaml")


def args(fer2013_zip: Path, runs: Path) -> list[str]:
    return [
        RECIPE,
        f"data.root={fer2013_zip}",
        f"run.dir={runs}",
        "data.subset=1500",
        "data.augment=null",
        "data.loader={batch_size: 50, num_workers: 0}",
        "model.backbone.widths=[8,16,32]",
        "model.channels_last=false",
        "trainer.max_epochs=3",
        "scheduler.warmup_epochs=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "loggers.wandb=null",
    ]


def fit(log: Path, *extra: str) -> subprocess.Popen[str]:
    """``emoframe fit`` in its own process (so it can be killed), its output in ``log`` (a pipe could fill up)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "emoframe", "fit", *extra]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, text=True, stdout=out, stderr=subprocess.STDOUT)


def val_acc(run: Path) -> list[float]:
    rows = [r for f in sorted(run.glob("csv/version_*/metrics.csv")) for r in csv.DictReader(f.open())]
    return [float(r["val/acc"]) for r in rows if r.get("val/acc")]


def test_kill_mid_epoch_then_resume_ends_as_the_uninterrupted_run(fer2013_zip: Path, tmp_path: Path) -> None:
    logs = [tmp_path / f"fit{i}.log" for i in range(3)]
    whole = fit(logs[0], *args(fer2013_zip, tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, logs[0].read_text()[-3000:]
    killed_runs = tmp_path / "killed"
    last = killed_runs / "fer2013_small_cnn" / "version_0" / "checkpoints" / "last.ckpt"
    proc = fit(logs[1], *args(fer2013_zip, killed_runs))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # wait for the end of the second epoch, then kill during the third
        if last.is_file() and torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 1:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = fit(logs[2], *args(fer2013_zip, killed_runs), "--resume", "last")
    assert resumed.wait(timeout=600) == 0, logs[2].read_text()[-3000:]
    expected = val_acc(tmp_path / "whole" / "fer2013_small_cnn" / "version_0")
    got = val_acc(killed_runs / "fer2013_small_cnn" / "version_0")
    assert len(expected) == 3 and got[-1] == expected[-1], (expected, got)
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 2 and any("RNGState" in k for k in ckpt["callbacks"])
