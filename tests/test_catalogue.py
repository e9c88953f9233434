"""Issue 16's catalogue of bad input, each case through the real CLI (``emoframe.cli.main``): exit 2 and one line.

Cases already guarded elsewhere (not repeated here):
bad checkpoint files for test/validate/predict/fit --resume (tests/test_checkpoints.py, tests/test_fit_fer2013.py);
a read-only runs folder (tests/test_cli.py); optimizer.lr=-1, model.head.dropout=1.5, seed=-1,
trainer.max_epochs=-60, trainer.devices=0, callbacks=5, run.nmae=x, ~callbacks.checkpoint.mode,
optimizer.lrr=0.1, SVM recipes (tests/test_api.py); an override that is not YAML, YAML errors with line and
column, missing interpolations, component overrides replacing the section, unknown run: keys
(tests/test_config.py); predict --output naming a file and test --output keeping the run's report
(tests/test_fit_fer2013.py); AFEW-VA out-of-range and missing labels (tests/data/test_valence_arousal.py);
NaN recall of absent classes (tests/metrics); switched-off SVM members (tests/clipsvm/test_svm.py);
dead writers' .tmp files and orphaned workers (tests/files/test_processes_and_tmp.py); no run folder left by a
failed fit (tests/test_api.py); a read-only face-track cache (tests/data/test_video_clips.py);
exact resume, one CSV file, one W&B run (tests/test_resume.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from emoframe.backbones.small_cnn import SmallCNN
from emoframe.cli import main

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"


def one_error_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI: exit 2, no traceback, exactly one ``emoframe: error:`` line (returned)."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("emoframe: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    return errors[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.momentum=-1"], "Out of range optimizer.momentum: expected >= 0, got -1"),
        (["optimizer.weight_decay=-1"], "Out of range optimizer.weight_decay: expected >= 0, got -1"),
        (["model.backbone.drop_rate=1.5"], "Out of range model.backbone.drop_rate: expected >= 0 and <= 1"),
        (["model.backbone.widths=[-8,16]"], "model.backbone.widths: expected a list of integers from 1 to"),
        (["trainer.devices=1e12"], "Wrong type for trainer.devices"),
        (['trainer.devices="1000000000000"'], "trainer.devices: 1000000000000"),
        (["trainer.num_nodes=1000000000000"], "trainer.num_nodes: expected an integer from 1 to"),
        (["data.image.size=100000"], "Out of range data.image.size: expected >= 8 and <= 4096"),
        (["data.loader.batch_size=60000", "data.image.size=4000"], "GiB, more than this machine's"),
        (["optimizer={name: adam, betas: [2, 3]}"], "optimizer: Invalid beta parameter"),
        (["scheduler={name: plateau, factor: 2}"], "Out of range scheduler.factor: expected > 0 and < 1, got 2"),
        (["scheduler={name: step, step_epochs: 0}"], "Out of range scheduler.step_epochs: expected >= 1"),
    ],
)
def test_fer2013_values_out_of_range(
    overrides: list[str], message: str, fer2013_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = str(RECIPES / "fer2013_small_cnn.yaml")
    assert message in one_error_line(capsys, "config", recipe, f"data.root={fer2013_zip}", *overrides)


@pytest.mark.parametrize(
    ("override", "message"),
    [  # the second phase's optimizer, built only after the frozen epochs before: now when the callback is built
        ("callbacks.freeze_unfreeze.optimizer={name: adam, betas: [2, 3]}", "callbacks.freeze_unfreeze.optimizer:"),
        ("callbacks.freeze_unfreeze.optimizer.lr=-1", "Out of range callbacks.freeze_unfreeze.optimizer.lr"),
        ("callbacks.freeze_unfreeze.scheduler={name: plateau, mode: up}", "freeze_unfreeze.scheduler.mode"),
    ],
)
def test_freeze_unfreeze_phase_two_fails_at_build(
    override: str, message: str, fer2013_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = str(RECIPES / "fer2013_fusion.yaml")
    assert message in one_error_line(capsys, "config", recipe, f"data.root={fer2013_zip}", override)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.fps=1e12", "Out of range data.fps: expected > 0 and <= 1000"),
        ("data.split.seed={value: 0}", "data.split.seed: expected an integer >= 0, got {'value': 0}"),
        ("data.split.ratios=[a, b, c]", "data.split.ratios: expected three non-negative numbers"),
        ("data.windows.size=1000000000", "Out of range data.windows.size: expected >= 1 and <= 100000"),
        ("model.temporal.hidden_size=-4", "Out of range model.temporal.hidden_size: expected >= 1"),
    ],
)
def test_afew_va_values_out_of_range(
    override: str, message: str, afew_va_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = str(RECIPES / "afew_va_ccc.yaml")
    assert message in one_error_line(capsys, "config", recipe, f"data.root={afew_va_clip.parent}", override)


def test_a_corrupt_mp4_is_one_line_naming_it(
    afew_set: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real h264 mp4 with garbled data: decord's "[time] .../threaded_decoder.cc:218: Check failed:
    avcodec_send_packet(...)" text and ffmpeg's lines become one line naming the file."""
    root = tmp_path / "afew"
    for split in ("Train_AFEW", "Val_AFEW"):
        clip = sorted((afew_set / split / "Happy").glob("*.avi"))[0]
        (root / split / "Happy").mkdir(parents=True)
        shutil.copy(clip, root / split / "Happy" / clip.name)
    video = bytearray((data_dir / "videos" / "angry.mp4").read_bytes())
    start = len(video) // 4
    video[start : start + 20000] = bytes((b * 7 + 13) % 256 for b in video[start : start + 20000])
    corrupt = root / "Train_AFEW" / "Happy" / "000_corrupt.mp4"
    corrupt.write_bytes(bytes(video))
    line = one_error_line(
        capsys,
        "fit",
        str(RECIPES / "afew_cnn_lstm.yaml"),
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"run.dir={tmp_path / 'runs'}",
        "data.workers=1",
        "loggers.wandb=null",
    )
    assert f"of {corrupt}: corrupt video data" in line and "Check failed" not in line and "github" not in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.ckpt"))


def test_weights_of_another_architecture_are_refused_unless_partial(
    fer2013_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.pth"
    torch.save(SmallCNN(1, [8, 16]).state_dict(), other)  # two of the three stages match
    recipe = str(RECIPES / "fer2013_small_cnn.yaml")
    args = [recipe, f"data.root={fer2013_zip}", "model.backbone.widths=[8,16,32]", f"model.backbone.weights={other}"]
    line = one_error_line(capsys, "config", *args)
    assert "holds 24 of the 36 tensors of SmallCNN" in line and "model.backbone.partial_weights: true" in line
    assert main(["config", *args, "model.backbone.partial_weights=true"]) == 0
    assert "Loaded 24 of 36 tensors of SmallCNN" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_run(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-batch FER2013 run's best checkpoint."""
    runs = tmp_path_factory.mktemp("runs")
    recipe = str(RECIPES / "fer2013_small_cnn.yaml")
    args = [recipe, f"data.root={fer2013_zip}", f"run.dir={runs}", "data.subset=64", "model.backbone.widths=[8]"]
    args += ["data.loader.num_workers=0", "trainer.max_epochs=1", "trainer.limit_train_batches=1"]
    args += ["trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "loggers.wandb=null"]
    assert main(["fit", *args]) == 0
    return next(runs.rglob("best.ckpt"))


@pytest.fixture()
def tmpfs(tmp_path: Path):
    """A tmpfs folder that ``make_read_only()`` remounts read-only (root, as in CI, writes through chmod)."""
    path = tmp_path / "fs"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    def make_read_only() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)

    yield path, make_read_only
    subprocess.run(["umount", str(path)], check=True)


def test_read_only_outputs_of_predict_and_test(
    tiny_run: Path, fer2013_zip: Path, tmpfs, capsys: pytest.CaptureFixture[str]
) -> None:
    path, make_read_only = tmpfs
    run = path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_run, run / "checkpoints" / "best.ckpt")
    make_read_only()
    common = [f"data.root={fer2013_zip}", "data.subset=64", "data.loader.num_workers=0", "loggers.wandb=null"]
    common += ["trainer.enable_progress_bar=false"]
    line = one_error_line(capsys, "predict", "--ckpt", str(tiny_run), "--output", str(path / "preds.csv"), *common)
    assert f"cannot write {path}" in line and "Read-only" in line, line
    line = one_error_line(capsys, "test", "--ckpt", str(run / "checkpoints" / "best.ckpt"), *common)
    assert f"cannot write {run}" in line and "Read-only" in line, line
