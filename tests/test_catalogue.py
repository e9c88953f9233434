"""The catalogue of bad input, each case through the real CLI (``emoframe.cli.main``) in a fresh folder: exit 2,
one line, and nothing left behind.

Cases already guarded elsewhere (not repeated here):
bad checkpoint files for test/validate/predict/fit --resume (tests/test_checkpoints.py, tests/engine/test_fit_fer2013.py);
a read-only runs folder (tests/test_cli.py); optimizer.lr=-1, model.head.dropout=1.5, seed=-1,
trainer.max_epochs=-60, trainer.devices=0, callbacks=5, run.nmae=x, ~callbacks.checkpoint.mode,
optimizer.lrr=0.1, SVM recipes (tests/test_api.py); an override that is not YAML, YAML errors with line and
column, missing interpolations, component overrides replacing the section, unknown run: keys
(tests/test_config.py); predict --output naming a file and test --output keeping the run's report
(tests/engine/test_fit_fer2013.py); AFEW-VA out-of-range and missing labels (tests/data/test_valence_arousal.py);
NaN recall of absent classes (tests/metrics); switched-off SVM members (tests/clipsvm/test_svm.py);
dead writers' .tmp files and orphaned workers (tests/files/test_processes_and_tmp.py); no run folder left by a
failed fit (tests/test_api.py); a read-only face-track cache (tests/data/test_video_clips.py);
exact resume, one CSV file, one W&B run (tests/engine/test_resume.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

from emoframe.backbones.small_cnn import SmallCNN
from emoframe.cli import main

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"


def one_error_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI in a fresh working folder: exit 2, no traceback, exactly one ``emoframe: error:`` line
    (returned), and nothing left behind in that folder (a refused command creates no run, report or sweep)."""
    fresh = Path(tempfile.mkdtemp(prefix="catalogue-"))
    links = {"recipes", "sweeps"}  # what sweep files and relative recipe paths name, as in a checkout
    for name in links:
        (fresh / name).symlink_to(REPO / name)
    here = Path.cwd()
    os.chdir(fresh)
    try:
        code = main(list(argv))
    finally:
        os.chdir(here)
    made = [p for p in fresh.iterdir() if p.name not in links]
    left = sorted(str(q.relative_to(fresh)) for p in made for q in [p, *p.rglob("*")] if "wandb" not in q.parts)
    shutil.rmtree(fresh, ignore_errors=True)
    assert code == 2
    err = capsys.readouterr().err
    assert not left, f"left behind by {argv}: {left[:5]}"
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


# -- each class of failure fixed at its source, with cases of our own ---------------------------------------------
FER_RECIPE = str(RECIPES / "fer2013_small_cnn.yaml")


@pytest.mark.parametrize(
    ("override", "message"),
    [  # an override's ${...} resolves against the whole recipe: a missing key is one line, never omegaconf's traceback
        ("optimizer.lr=${optimizer.nope}", "Cannot resolve optimizer.lr: Interpolation key 'optimizer.nope' not found"),
        ("model.backbone.drop_rate=${nope.x}", "Cannot resolve model.backbone.drop_rate: Interpolation key 'nope.x'"),
        ("optimizer.momentum=${oc.env:EMOFRAME_NO_SUCH_VARIABLE}", "Cannot resolve optimizer.momentum"),
        (
            "optimizer.momentum=${optimizer.weight_decay}x${",
            "Override 'optimizer.momentum=${optimizer.weight_decay}x${'",
        ),
        ("model.backbone.drop_rate=${trainer.max_epochs}", "Out of range model.backbone.drop_rate: expected >= 0"),
    ],
)
def test_an_override_interpolating_a_recipe_key(
    override: str, message: str, fer2013_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_error_line(capsys, "config", FER_RECIPE, f"data.root={fer2013_zip}", override)
    assert message in line, line


def test_an_override_interpolating_an_existing_key_works(fer2013_zip: Path, capsys) -> None:
    assert main(["config", FER_RECIPE, f"data.root={fer2013_zip}", "optimizer.lr=${optimizer.momentum}"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.9" in out, out[-2000:]


@pytest.mark.parametrize(
    ("split", "code", "message"),
    [  # data.split has two forms: an override in one replaces the recipe's other, so no key the user never wrote
        ("{train: ['001'], val: ['001'], test: ['001']}", 0, ""),
        ("{train: 1}", 2, "data.split.train: expected a list of clip ids, got 1"),
        ("{val: [1, 2], test: 3}", 2, "data.split.test: expected a list of clip ids, got 3"),
        ("{train: ['001'], seed: 1}", 2, "not both (got ratios, seed, train)"),
    ],
)
def test_an_afew_va_split_override_of_the_other_form(
    split: str, code: int, message: str, afew_va_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["config", str(RECIPES / "afew_va_ccc.yaml"), f"data.root={afew_va_clip.parent}", f"data.split={split}"]
    if code == 2:
        assert message in one_error_line(capsys, *args)
    else:
        assert main(args) == 0


@pytest.fixture(scope="module")
def bad_files(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.fixtures.bad_inputs import bomb_png, sound_only_mp4, truncated_mp4

    folder = tmp_path_factory.mktemp("bad_inputs")
    video = data_dir / "videos" / "angry.mp4"
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    return {
        "bomb.png": bomb_png(folder / "bomb.png"),
        "truncated.mp4": truncated_mp4(video, folder / "truncated.mp4"),
        "sound_only.mp4": sound_only_mp4(video, folder / "sound_only.mp4"),
        "empty.mp4": empty,
    }


@pytest.mark.parametrize("bad", ["bomb.png", "truncated.mp4", "sound_only.mp4", "empty.mp4"])
def test_predict_gives_every_unreadable_input_a_row(
    bad: str, bad_files: dict[str, Path], tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A counted skip: exit 0, the one summary line names it, and its row says status=unreadable with the reason."""
    import csv

    out = tmp_path / "rows.csv"
    assert main(["predict", "--no-progress", "--ckpt", str(tiny_run), str(bad_files[bad]), "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"skipped 1 unreadable (first: {bad_files[bad]}" in err, err[-2000:]
    (row,) = list(csv.DictReader(out.open()))
    assert row["status"] == "unreadable" and row["error"] and row["source"] == str(bad_files[bad])


def test_the_picture_size_limit_is_one_setting(
    bad_files: dict[str, Path], tiny_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = tmp_path / "face.png"
    torch.manual_seed(0)
    from PIL import Image

    Image.new("L", (100, 100), 128).save(picture)
    args = ["predict", "--no-progress", "--ckpt", str(tiny_run), str(picture), "--output", str(tmp_path / "a.csv")]
    monkeypatch.setenv("EMOFRAME_MAX_PIXELS", "9999")
    assert main(args) == 0
    assert "too large (10000 pixels, more than 9999; raise EMOFRAME_MAX_PIXELS" in capsys.readouterr().err
    monkeypatch.setenv("EMOFRAME_MAX_PIXELS", "lots")
    line = one_error_line(capsys, *args[:-1], str(tmp_path / "b.csv"))
    assert "EMOFRAME_MAX_PIXELS='lots': expected a whole number of pixels >= 1" in line


def image_folder_args(root: Path, tmp_path: Path) -> list[str]:
    """`emoframe fit` of one tiny epoch on an image_folder tree (the data section replaced by name:)."""
    data = f"data={{name: image_folder, root: '{root}', cache_dir: '{tmp_path / 'cache'}', on_bad_image: error}}"
    args = [FER_RECIPE, data, "data.loader.num_workers=0", "data.augment=null", f"run.dir={tmp_path / 'runs'}"]
    args += ["model.backbone.widths=[8]", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
    return [*args, "loggers.wandb=null"]


def picture_tree(root: Path, sides: dict[str, int]) -> Path:
    from PIL import Image

    for split in ("train", "val", "test"):
        for i, (cls, side) in enumerate(sides.items()):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for j in range(2):
                Image.new("L", (side, side), 60 + 20 * i + j).save(root / split / cls / f"{j}.png")
    return root


def test_image_folder_reports_empty_folders_tiny_pictures_and_bombs(
    bad_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = picture_tree(tmp_path / "faces", {"happy": 48, "sad": 1})
    (root / "train" / "fear").mkdir()
    (root / "val" / "angry" / "empty_sub").mkdir(parents=True)
    assert main(["fit", *image_folder_args(root, tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"1 of 3 class folders in {root / 'train'} hold no images: fear" in err, err[-3000:]
    assert f"1 of 3 class folders in {root / 'val'} hold no images: angry" in err
    assert f"Upscaled 2 of 4 images in {root / 'train'} more than 2x to 48x48" in err
    shutil.copy(bad_files["bomb.png"], root / "train" / "happy" / "bomb.png")
    line = one_error_line(capsys, "fit", *image_folder_args(root, tmp_path))
    assert f"Bad image happy/bomb.png in {root / 'train'}: too large (400000000 pixels" in line, line


@pytest.mark.parametrize(
    ("parameters", "message"),
    [  # every swept key against the recipe before the first trial, as `emoframe config` checks it
        ({"optimizer.lrr": {"values": [0.01, 0.1]}}, "Unknown key optimizer.lrr for sgd. Did you mean 'lr'?"),
        (
            {"loss.label_smoothing": {"values": [0.0, 1.5]}},
            "high end of their ranges: loss.label_smoothing must be in [0, 1), got 1.5",
        ),
        ({"data.augment.0.p": {"min": -0.5, "max": 0.5}}, "low end of their ranges: data.augment[0]: bad arguments"),
        ({"model.backbone": {"value": {"name": "small_cnnn"}}}, "small_cnnn"),
    ],
)
def test_a_sweep_parameter_the_recipe_refuses(
    parameters: dict, message: str, fer2013_zip: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import yaml

    monkeypatch.chdir(REPO)
    sweep = tmp_path / "s.yaml"
    params = {"data.root": {"value": str(fer2013_zip)}, **parameters}
    command = ["${env}", "${interpreter}", "-m", "emoframe", "fit", "${program}", "${args_no_hyphens}"]
    config = {"name": "s", "program": "recipes/fer2013_small_cnn.yaml", "command": command, "method": "random"}
    config |= {"metric": {"name": "val/acc", "goal": "maximize"}, "run_cap": 2, "parameters": params}
    sweep.write_text(yaml.safe_dump(config))
    line = one_error_line(capsys, "sweep", str(sweep), "--local", "--dir", str(tmp_path / "out"))
    assert message in line and str(sweep) in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [  # the driver SQLAlchemy wants (psycopg 3) is not the one installed (psycopg2): the installed one is used
        ("postgresql://u:secret@127.0.0.1:1/db", "--storage postgresql://u:***@127.0.0.1:1/db: connection to server"),
        ("postgres://u:secret@127.0.0.1:1/db", "--storage postgres://u:***@127.0.0.1:1/db: connection to server"),
        ("mysql://u@127.0.0.1:1/db", "no mysql driver is installed: pip install mysqlclient or PyMySQL"),
    ],
)
def test_a_storage_url_without_a_driver(
    url: str, message: str, fer2013_zip: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg2")
    import importlib.util

    if url.startswith("mysql") and (importlib.util.find_spec("MySQLdb") or importlib.util.find_spec("pymysql")):
        pytest.skip("a MySQL driver is installed here")
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("FER2013_ROOT", str(fer2013_zip))
    sweep = REPO / "sweeps" / "fer2013_small_cnn.yaml"
    line = one_error_line(capsys, "sweep", str(sweep), "--storage", url, "--dir", str(tmp_path / "out"))
    assert message in line and "Failed to import" not in line, line


def probability_files(folder: Path, classes: dict[str, list[str]]) -> list[Path]:
    """One probability file per entry (the same 30 validation/test examples), classes in the given order."""
    import numpy as np

    from emoframe.eval.probabilities import ProbabilityFile, SplitProbabilities, save_probabilities

    rng = np.random.default_rng(0)
    names7 = sorted({c for names in classes.values() for c in names})
    labels = {s: rng.choice(names7, 30) for s in ("val", "test")}
    paths = []
    for stem, names in classes.items():
        splits = {
            s: SplitProbabilities(
                rng.dirichlet(np.ones(len(names)), 30).astype(np.float32),
                np.asarray([names.index(c) if c in names else 0 for c in labels[s]]),
            )
            for s in labels
        }
        data = ProbabilityFile(splits, names, {"checkpoint": None, "tta": None})
        paths.append(save_probabilities(folder / f"{stem}.probs.npz", data))
    return paths


SEVEN = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.mark.parametrize(
    ("second", "message"),
    [  # the class sets are compared before any member is evaluated; another order is aligned by name
        (SEVEN[:6], "b.probs.npz predicts 6 classes"),
        ([*SEVEN[:6], "contempt"], "(not in both: contempt, neutral): ensemble members must predict the same classes"),
        ([*SEVEN[:6], "happy"], "b.probs.npz predicts 7 classes"),
        (list(reversed(SEVEN)), ""),
    ],
)
def test_ensemble_members_with_other_classes(second: list[str], message: str, tmp_path: Path, capsys) -> None:
    a, b = probability_files(tmp_path, {"a": SEVEN, "b": second})
    args = ["ensemble", str(a), str(b), "--output", str(tmp_path / "ens")]
    if message:
        line = one_error_line(capsys, *args)
        assert message in line and "a.probs.npz" in line and "7 classes" in line, line
        assert not (tmp_path / "ens").exists()
    else:
        assert main(args) == 0


# -- output paths: one check before any work, for every verb that writes -------------------------------------------
@pytest.mark.parametrize(
    "verb",
    ["predict-inputs", "predict-split", "test", "validate", "export", "extract", "ensemble", "sweep", "svm"],
)
def test_an_output_under_a_file_is_refused_before_any_work(
    verb: str, tiny_run: Path, fer2013_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--output some.jpg/x`` (a parent that is a file): one line naming the file, nothing written."""
    blocker = tmp_path / "some.jpg"
    blocker.write_bytes(b"not a folder")
    out = str(blocker / "x")
    data = [f"data.root={fer2013_zip}", "data.subset=64", "data.loader.num_workers=0", "loggers.wandb=null"]
    argv = {
        "predict-inputs": ["predict", "--ckpt", str(tiny_run), str(blocker), "--output", f"{out}/p.csv"],
        "predict-split": ["predict", "--ckpt", str(tiny_run), "--output", f"{out}/p.csv", *data],
        "test": ["test", "--ckpt", str(tiny_run), "--output", out, *data],
        "validate": ["validate", "--ckpt", str(tiny_run), "--output", out, *data],
        "export": ["export", "--ckpt", str(tiny_run), "--output", f"{out}/m.onnx"],
        "extract": ["extract", "--ckpt", str(tiny_run), "--output", out, *data],
        "ensemble": ["ensemble", str(tiny_run), str(tiny_run), "--output", out, *data],
        "sweep": ["sweep", "sweeps/fer2013_small_cnn.yaml", "--dir", out],
        "svm": ["svm", "recipes/afew_stat_svm.yaml", "--predict", "--output", f"{out}/s.csv"],
    }[verb]
    line = one_error_line(capsys, *argv)
    assert f"{blocker} is a file, not a folder" in line, line


def test_a_checkpoint_of_another_kind_of_task_leaves_no_eval_folder(
    afew_set: Path, tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``emoframe test <a clip recipe> --ckpt <a frame checkpoint>``: refused, and no runs/eval/ left behind."""
    line = one_error_line(
        capsys, "test", "recipes/afew_cnn_lstm.yaml", f"data.root={afew_set}", "--ckpt", str(tiny_run)
    )
    assert "not this model's" in line, line
