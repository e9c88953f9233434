"""End to end through the CLI on a real FER2013 subset: fit -> test -> predict, checkpoints, W&B run, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from emoframe.cli import main
from emoframe.labels import EMOTIONS
from tests.conftest import FER2013_RECIPE as RECIPE
from tests.conftest import quick

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # every test reads the session's FER2013 fit (conftest.fer2013_trained)


@pytest.fixture(scope="module")
def trained(fer2013_trained: Path) -> Path:
    """The session's small CNN fitted for 6 epochs on 4,000 real training images (tests/conftest.py)."""
    return fer2013_trained


def test_fit_writes_checkpoints_config_and_offline_wandb_run(trained: Path) -> None:
    assert (trained / "checkpoints" / "best.ckpt").is_file()
    assert (trained / "checkpoints" / "last.ckpt").is_file()
    saved = (trained / "config.yaml").read_text()
    assert "name: small_cnn" in saved and "subset: 4000" in saved
    runs = list((trained / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb")), "an offline W&B run with its data file"
    ckpt = torch.load(trained / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["emoframe_recipe"]["data"]["subset"] == 4000


def test_test_reports_accuracy_well_above_chance(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = trained / "checkpoints" / "best.ckpt"
    assert main(["test", "--ckpt", str(ckpt), "trainer.enable_progress_bar=false"]) == 0
    out = capsys.readouterr().out
    metrics = dict(line.split("\t") for line in out.splitlines() if line.startswith("test/"))
    confusion = np.loadtxt(trained / "test" / "test_confusion.csv", delimiter=",", skiprows=1, usecols=range(1, 8))
    assert confusion.sum() == float(metrics["test/samples"]) == 3589  # all of PrivateTest (subset > split size)
    majority = confusion.sum(axis=1).max() / confusion.sum()  # always answering the commonest class
    acc = float(metrics["test/acc"])
    assert acc == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-4)
    print(f"PrivateTest accuracy {acc:.3f} after 6 epochs on 4,000 images; majority-class {majority:.3f}")
    assert acc > majority + 0.1, f"PrivateTest accuracy {acc:.3f} vs majority-class {majority:.3f}"
    assert float(metrics["test/macro_f1"]) > 0.2
    assert (trained / "test" / "test_confusion.png").stat().st_size > 10_000


def test_predict_writes_one_row_per_test_image(trained: Path) -> None:
    out = trained / "preds.csv"
    ckpt = trained / "checkpoints" / "best.ckpt"
    assert main(["predict", "--ckpt", str(ckpt), "--output", str(out), "trainer.enable_progress_bar=false"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3589
    assert set(rows[0]) == {"index", "pred", "target", *[f"p_{c}" for c in EMOTIONS]}
    assert sum(float(rows[0][f"p_{c}"]) for c in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
    agree = np.mean([r["pred"] == r["target"] for r in rows])
    assert agree > 0.3


def test_resume_last_continues_the_same_run(trained: Path, fer2013_zip: Path) -> None:
    runs = trained.parent.parent
    args = quick(runs, fer2013_zip, "data.subset=4000", "trainer.max_epochs=7", "scheduler.warmup_epochs=0.5")
    args += ["trainer.limit_train_batches=5", "trainer.limit_val_batches=2"]
    assert main(["fit", RECIPE, "--resume", "last", *args]) == 0
    assert sorted(p.name for p in trained.parent.iterdir()) == ["version_0"], "resume must not start a new run"
    ckpt = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 6  # epochs 0-5 from the first fit, epoch 6 from the resumed one


def test_load_model_predicts_as_the_cli_does(trained: Path, fer2013_zip: Path) -> None:
    """emoframe.load_model: the task in eval mode with its classes and preprocessing, no data or recipe file
    needed, and its probabilities on PrivateTest images are those `emoframe predict` wrote."""
    import emoframe
    from emoframe.data import Fer2013DataModule

    out = trained / "preds_api.csv"
    ckpt = trained / "checkpoints" / "best.ckpt"
    assert main(["predict", "--ckpt", str(ckpt), "--output", str(out), "trainer.enable_progress_bar=false"]) == 0
    model = emoframe.load_model(ckpt)
    assert not model.training and model.class_names == list(EMOTIONS)
    assert model.preprocessing == {"image_size": 48, "channels": 1, "mean": [0.5], "std": [0.5], "faces": None}
    dm = Fer2013DataModule(str(fer2013_zip), subset=4000, loader={"num_workers": 0})
    dm.setup("test")
    x, _ = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        probs = model(x[:16]).softmax(-1).numpy()
    rows = list(csv.DictReader(out.open()))[:16]
    written = np.array([[float(r[f"p_{c}"]) for c in EMOTIONS] for r in rows])
    np.testing.assert_allclose(probs, written, atol=1e-5)


def test_bad_checkpoints_end_in_one_line(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    best = trained / "checkpoints" / "best.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(best.read_bytes()[:5000])
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    other = str(REPO / "recipes" / "fer2013_resnet18.yaml")  # another backbone: its tensors are not small_cnn's
    cases = [
        (["test", "--ckpt", str(truncated)], "not a readable checkpoint"),
        (["predict", "--ckpt", str(empty)], "not a readable checkpoint"),
        (["validate", "--ckpt", str(plain)], "not an emoframe checkpoint (no state_dict inside)"),
        (["test", other, "--ckpt", str(best)], "its weights are not this model's"),
        (["fit", RECIPE, f"run.dir={tmp_path}", "--resume", str(truncated)], "not a readable checkpoint"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and "Traceback" not in "\n".join(err), (args, err[-3:])


def test_predict_output_is_the_file_it_names(trained: Path, tmp_path: Path) -> None:
    """A checkpoint outside a run folder: --output preds.csv is a CSV file, not a folder (the README's own command)."""
    import shutil

    ckpt = tmp_path / "best.ckpt"
    shutil.copy(trained / "checkpoints" / "best.ckpt", ckpt)
    out = tmp_path / "preds.csv"
    assert main(["predict", "--ckpt", str(ckpt), "--output", str(out), "trainer.enable_progress_bar=false"]) == 0
    assert out.is_file() and len(list(csv.DictReader(out.open()))) == 3589


def test_test_output_keeps_the_runs_own_report(trained: Path, tmp_path: Path) -> None:
    """`test --output elsewhere` writes its reports there; the run's own test/ report stays as it was."""
    own = trained / "test" / "test_confusion.csv"
    before = own.read_bytes() if own.exists() else None
    ckpt = trained / "checkpoints" / "best.ckpt"
    args = ["test", "--ckpt", str(ckpt), "--output", str(tmp_path / "elsewhere"), "data.subset=100"]
    assert main([*args, "trainer.enable_progress_bar=false"]) == 0
    assert (tmp_path / "elsewhere" / "test" / "test_confusion.csv").is_file()
    assert (own.read_bytes() if own.exists() else None) == before
