"""Exact resume: kill -9 in the middle of an epoch, `--resume last`, and the run ends as the uninterrupted one.

The checkpoint carries the global RNG states (dropout; emoframe.callbacks.resume), and the training loader draws
epoch e's shuffle and augmentation from (seed, e, worker, rank) alone (emoframe.data.common.EpochSeeded), so
everything after the last epoch boundary repeats the uninterrupted run, with the FER2013 recipe's augmentation on
and persistent loader workers. The resumed run continues the same CSV file and the same W&B run.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "recipes" / "fer2013_small_cnn.yaml")


def args(fer2013_zip: Path, runs: Path) -> list[str]:
    return [
        RECIPE,
        f"data.root={fer2013_zip}",
        f"run.dir={runs}",
        "data.subset=400",
        "data.loader={batch_size: 50, num_workers: 2}",
        "model.backbone.widths=[8,16,32]",
        "model.channels_last=false",
        "trainer.max_epochs=3",
        "trainer.log_every_n_steps=1",
        "scheduler.warmup_epochs=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def fit(log: Path, *extra: str) -> subprocess.Popen[str]:
    """``emoframe fit`` in its own process (so it can be killed), its output in ``log`` (a pipe could fill up)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "emoframe", "fit", *extra]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, text=True, stdout=out, stderr=subprocess.STDOUT)


def val_rows(run: Path) -> list[dict[str, str]]:
    """The validation rows of the run's one metrics.csv."""
    files = sorted(run.glob("csv/version_*/metrics.csv"))
    assert len(files) == 1, files
    return [r for r in csv.DictReader(files[0].open()) if r.get("val/acc")]


def wandb_ids(run: Path) -> set[str]:
    """The run ids of the offline W&B run folders (``offline-run-<time>-<id>``; a resume opens a folder per process)."""
    return {p.name.rsplit("-", 1)[-1] for p in (run / "wandb").glob("offline-run-*")}


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_ends_as_the_uninterrupted_run(fer2013_zip: Path, tmp_path: Path) -> None:
    import wandb

    wandb.setup()  # as after any in-process W&B test: the fits inherit this process's service (WANDB_SERVICE)
    try:
        kill_and_resume(fer2013_zip, tmp_path)
    finally:
        wandb.teardown()


def kill_and_resume(fer2013_zip: Path, tmp_path: Path) -> None:
    logs = [tmp_path / f"fit{i}.log" for i in range(3)]
    whole = fit(logs[0], *args(fer2013_zip, tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, logs[0].read_text()[-3000:]
    killed_runs, marker = tmp_path / "killed", tmp_path / "paused"
    run = killed_runs / "fer2013_small_cnn" / "version_0"
    pause = f"callbacks.pause={{class_path: tests.fixtures.pause.PauseAt, epoch: 2, batch: 4, marker: {marker}}}"
    proc = fit(logs[1], *args(fer2013_zip, killed_runs), pause)  # stops in the middle of the third epoch
    deadline = time.monotonic() + 600
    while not marker.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.is_file(), logs[1].read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 1  # killed in epoch 2
    partial = [r for r in csv.DictReader(next(run.glob("csv/version_*/metrics.csv")).open()) if r["epoch"] == "2"]
    assert partial, "the killed epoch logged rows the resumed run must replace"
    resumed = fit(logs[2], *args(fer2013_zip, killed_runs), "callbacks.pause=null", "--resume", "last")
    assert resumed.wait(timeout=600) == 0, logs[2].read_text()[-3000:]
    expected = val_rows(tmp_path / "whole" / "fer2013_small_cnn" / "version_0")
    got = val_rows(run)
    assert [r["epoch"] for r in got] == ["0", "1", "2"], got  # one file, each epoch once
    assert [r["val/acc"] for r in got] == [r["val/acc"] for r in expected], (expected, got)
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 2 and any("RNGState" in k for k in ckpt["callbacks"])
    assert len(list((run / "wandb").glob("offline-run-*"))) == 2 and len(wandb_ids(run)) == 1  # one W&B run


AUGMENT = [  # the FER2013 recipe's (recipes/_base/fer2013.yaml)
    {"name": "Affine", "rotate": [-10, 10], "shear": [-10, 10], "scale": [0.9, 1.1], "translate_percent": [-0.1, 0.1]},
    {"name": "HorizontalFlip", "p": 0.5},
]


def epoch_batches(dm: Any, epochs: list[int]) -> list[torch.Tensor]:
    """Each listed epoch's training batches (one tensor), from one new loader (its workers persist between epochs)."""
    loader = dm.train_dataloader()
    out = []
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)  # as Lightning does before each epoch
        out.append(torch.cat([x for x, _ in loader]))
    del loader
    gc.collect()  # persistent workers shut down now (see tests/data/test_datamodules.py)
    return out


def test_epoch_augmentation_does_not_depend_on_earlier_epochs(fer2013_zip: Path) -> None:
    """Epoch 2 of a loader that ran epochs 0 and 1 (persistent workers, or the main process) equals epoch 2 of a
    new loader, as after --resume; and epochs differ from each other."""
    from emoframe.data import Fer2013DataModule

    dm = Fer2013DataModule(root=str(fer2013_zip), subset=96, augment=AUGMENT, loader={"batch_size": 16})
    for workers in (0, 2):
        dm.loader = dataclasses.replace(dm.loader, num_workers=workers)
        whole = epoch_batches(dm, [0, 1, 2])
        resumed = epoch_batches(dm, [2])
        assert torch.equal(whole[2], resumed[0]), workers
        assert not torch.equal(whole[1], whole[2]), workers
