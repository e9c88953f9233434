"""`emoframe sweep` on the command line: one-line refusals, and a plain fit that never imports Optuna."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emoframe.cli import main

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(REPO / "sweeps" / "fer2013_small_cnn.yaml")


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("emoframe: error: "), err
    return err


def test_agent_offline_points_to_the_local_engine(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    err = one_line(capsys, ["sweep", SWEEP, "--agent", "abc123"])
    assert "--agent needs the W&B server" in err and f"emoframe sweep {SWEEP} --local" in err


def test_join_without_a_sweep_and_report_without_one_fail_in_one_line(
    capsys, tmp_path: Path, fer2013_zip: Path, monkeypatch
) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("FER2013_ROOT", str(fer2013_zip))  # the sweep's recipe is checked before anything else
    err = one_line(capsys, ["sweep", SWEEP, "--join", "--dir", str(tmp_path / "s")])
    assert "--join: no sweep named 'fer2013_small_cnn'" in err
    err = one_line(capsys, ["sweep", SWEEP, "--report", "--dir", str(tmp_path / "none")])
    assert "--report: no sweep 'fer2013_small_cnn'" in err
    err = one_line(capsys, ["sweep", SWEEP, "--storage", "nosuchdb://x", "--dir", str(tmp_path / "s")])
    assert "--storage nosuchdb://x:" in err


@pytest.mark.slow  # a fresh interpreter
def test_a_plain_fit_and_the_cli_import_neither_optuna_nor_the_sweeps() -> None:
    code = "import sys, emoframe.cli, emoframe.builder; bad = [m for m in ('optuna', 'emoframe.sweeps') if m in sys.modules]; assert not bad, bad"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
