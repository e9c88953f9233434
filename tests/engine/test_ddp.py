"""Real multi-process DDP (two CPU processes, gloo): every example counted once, metrics equal to one process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emoframe.cli import main

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "recipes" / "fer2013_small_cnn.yaml")
SUBSET = 301  # odd: a padding sampler would show up as 302 samples


def last_epoch_row(metrics_csv: Path, key: str) -> dict[str, str]:
    rows = [r for r in csv.DictReader(metrics_csv.open()) if r.get(key)]
    assert rows, f"{key} never logged in {metrics_csv}"
    return rows[-1]


@pytest.mark.slow
def test_ddp_two_cpu_processes_count_and_metrics(
    tmp_path: Path, fer2013_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = [
        f"data.root={fer2013_zip}",
        f"run.dir={tmp_path}",
        f"data.subset={SUBSET}",
        "data.loader.num_workers=0",
        "data.loader.batch_size=32",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("EMOFRAME_RUN_DIR", None)
    cmd = [sys.executable, "-m", "emoframe", "fit", RECIPE, *common]
    cmd += ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    log = tmp_path / "ddp.log"
    with log.open("w") as out:  # a file, not a pipe: W&B's service process may outlive the run and hold a pipe
        proc = subprocess.run(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    assert proc.returncode == 0, log.read_text()[-3000:]
    run = tmp_path / "fer2013_small_cnn" / "version_0"
    assert not (tmp_path / "fer2013_small_cnn" / "version_1").exists(), "both ranks must share one run directory"
    metrics = next(run.glob("csv/*/metrics.csv"))
    val = last_epoch_row(metrics, "val/samples")
    assert float(val["val/samples"]) == SUBSET, "each validation image seen exactly once across the 2 processes"
    train = last_epoch_row(metrics, "train/samples")
    assert float(train["train/samples"]) == 2 * ((SUBSET + 1) // 2)  # training pads to equal shards, as DDP does
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1, "one W&B run (rank 0), not one per process"

    # The same weights validated in one process give the same numbers as the DDP run logged.
    ckpt = run / "checkpoints" / "last.ckpt"
    one_process = ["trainer.devices=1", "trainer.strategy=auto"]  # the checkpoint's recipe says devices=2
    assert main(["validate", "--ckpt", str(ckpt), *common[2:], *one_process]) == 0
    single = dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if line.startswith("val/"))
    assert float(single["val/samples"]) == SUBSET
    for key in ("val/acc", "val/macro_f1", "val/balanced_acc"):
        assert float(single[key]) == pytest.approx(float(val[key]), abs=1e-4), key
