"""The command line: list, config, and one-line errors (exit 2) for bad recipes and bad data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from emoframe.cli import main

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "fer2013_small_cnn.yaml")


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emoframe", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_list_prints_every_kind_with_docstrings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in (
        "backbones:",
        "heads:",
        "losses:",
        "datamodules:",
        "tasks:",
        "callbacks:",
        "loggers:",
        "optimizers:",
        "schedulers:",
        "features:",
    ):
        assert kind in out
    assert "fer2013" in out and "frame_classifier" in out and "Frame CNN classifier" in out
    assert main(["list", "losses"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "losses:"


def test_config_prints_resolved_recipe_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", RECIPE, "trainer.max_epochs=3", "data.loader.batch_size=16"]) == 0
    out = capsys.readouterr().out
    assert "max_epochs: 3" in out and "batch_size: 16" in out and "defaults" not in out
    assert "name: fer2013_small_cnn" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.max_epoch=3"], "Unknown key trainer.max_epoch for Trainer. Did you mean 'max_epochs'?"),
        (["optimizer.lrr=0.1"], "Unknown key optimizer.lrr for sgd. Did you mean 'lr'?"),
        (
            ["model.backbone.name=small_cn"],
            "Unknown backbone 'small_cn' at model.backbone.name. Did you mean 'small_cnn'?",
        ),
        (["data.loader.batch_size=big"], "Wrong type for data.loader.batch_size: expected int, got str"),
        (["loss.name=cee"], "Unknown loss 'cee' at loss.name. Did you mean 'ce'?"),
        (["data.root=/no/such/fer2013.zip"], "/no/such/fer2013.zip"),
        (["scheduler.name=cosine", "scheduler.warmup=1"], "Unknown key scheduler.warmup"),
        (["data.variant=fer30"], "data.variant"),
    ],
)
def test_recipe_mistakes_fail_in_one_line_before_training(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", RECIPE, f"run.dir={tmp_path}", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emoframe: error: ") and message in err[-1], err
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("config.yaml"))


@pytest.mark.slow
def test_zip_of_another_layout_and_csv_with_other_columns(tmp_path: Path) -> None:
    bad_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(bad_zip, "w") as z:
        z.writestr("images/0001.png", b"x")
    proc = run_cli("fit", RECIPE, f"data.root={bad_zip}", f"run.dir={tmp_path}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(bad_zip) in proc.stderr.strip().splitlines()[-1]
    bad_csv = tmp_path / "fer2013.csv"
    bad_csv.write_text("label,image\n3,1 2 3\n")
    proc = run_cli("fit", RECIPE, f"data.root={bad_csv}", f"run.dir={tmp_path}", "trainer.fast_dev_run=1")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "emotion" in last and "pixels" in last, last
    assert not (tmp_path / "fer2013_small_cnn").exists() or not list((tmp_path / "fer2013_small_cnn").iterdir()), (
        "a fit that failed before its first checkpoint leaves no half-made run folder"
    )


@pytest.mark.slow
def test_resume_and_ckpt_errors(tmp_path: Path) -> None:
    proc = run_cli("fit", RECIPE, f"run.dir={tmp_path}", "--resume", "last")
    assert proc.returncode == 2 and "No 'last' checkpoint under" in proc.stderr
    proc = run_cli("test", "--ckpt", str(tmp_path / "nope.ckpt"))
    assert proc.returncode == 2 and "Checkpoint not found" in proc.stderr
    proc = run_cli("test")
    assert proc.returncode == 2 and "Give a recipe file" in proc.stderr


@pytest.fixture()
def read_only_dir(tmp_path: Path):
    """A real read-only file system (a tmpfs mounted ro): root, as in CI, writes through chmod 555."""
    import subprocess

    path = tmp_path / "ro"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    yield path
    subprocess.run(["umount", str(path)], check=True)


@pytest.mark.slow
def test_a_read_only_runs_folder_is_one_line(read_only_dir: Path, fer2013_zip: Path) -> None:
    proc = run_cli("fit", RECIPE, f"data.root={fer2013_zip}", f"run.dir={read_only_dir / 'runs'}")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert last.startswith(f"emoframe: error: cannot write {read_only_dir / 'runs'}") and "Read-only" in last, last
