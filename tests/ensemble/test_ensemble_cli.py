"""Through the CLI on a tiny real FER2013 checkpoint: test --tta (with and without), --save-probs, emoframe
ensemble, and the ensemble file through test and predict and ``load_ensemble``.

One small_cnn (widths 8, 16, 32) is fitted for one epoch on 300 real FER2013 images per split (as
tests/clipsvm/test_extract.py does); the second member is a copy of that checkpoint with its head perturbed
(a real checkpoint file, other predictions), so the module trains once.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from emoframe.cli import main
from emoframe.eval.probabilities import read_probabilities

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "recipes" / "fer2013_small_cnn.yaml")
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory, fer2013_zip: Path) -> tuple[Path, Path]:
    runs = tmp_path_factory.mktemp("runs")
    args = [
        f"data.root={fer2013_zip}",
        f"run.dir={runs}",
        "data.loader.num_workers=0",
        "data.subset=300",
        "model.backbone.widths=[8,16,32]",
        "trainer.max_epochs=1",
        "scheduler.warmup_epochs=0",
        "loggers.wandb=null",
        *QUIET,
    ]
    assert main(["fit", RECIPE, *args]) == 0
    first = runs / "fer2013_small_cnn" / "version_0" / "checkpoints" / "last.ckpt"
    payload = torch.load(first, map_location="cpu", weights_only=False)
    gen = torch.Generator().manual_seed(0)
    for key, value in payload["state_dict"].items():
        if key.startswith("head."):
            payload["state_dict"][key] = value + 0.5 * torch.randn(value.shape, generator=gen)
    second = runs / "other" / "checkpoints" / "last.ckpt"
    second.parent.mkdir(parents=True)
    torch.save(payload, second)
    return first, second


def _figures(out: str) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split("\t") for line in out.splitlines() if "\t" in line and "/" in line)}


def test_test_tta_reports_with_and_without_and_saves_probabilities(
    members: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = members
    args = ["test", "--ckpt", str(first), "--tta", "flip", "--save-probs", str(tmp_path / "a"), *QUIET]
    assert main(args) == 0
    figures = _figures(capsys.readouterr().out)
    rows = list(csv.DictReader((first.parent.parent / "test" / "test_tta.csv").open()))
    assert [r["tta"] for r in rows] == ["none", "2 views (flip)"]
    assert float(rows[0]["acc"]) == pytest.approx(figures["test/acc"], abs=1e-4), "the same pass, without TTA"
    assert float(rows[0]["macro_f1"]) == pytest.approx(figures["test/macro_f1"], abs=1e-4)
    assert float(rows[1]["acc"]) == pytest.approx(figures["test_tta/acc"], abs=1e-4)
    saved = read_probabilities(tmp_path / "a.probs.npz")
    assert set(saved.splits) == {"val", "test"} and saved.splits["test"].probs.shape == (300, 7)
    assert saved.meta["checkpoint"] == str(first.resolve()) and len(saved.meta["tta"]) == 2
    test = saved.splits["test"]
    assert float((test.probs.argmax(1) == test.labels).mean()) == pytest.approx(figures["test_tta/acc"], abs=1e-4)


@pytest.mark.slow
def test_the_ensemble_file_round_trips_through_test_and_predict(
    members: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emoframe.data import Fer2013DataModule
    from emoframe.ensemble import load_ensemble, read_ensemble

    first, second = members
    out = tmp_path / "ens"
    assert main(["ensemble", str(first), str(second), "--output", str(out), "--name", "pair", "--tta", "flip"]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader((out / "ensemble.csv").open()))
    assert [r["model"] for r in rows][-2:] == ["average", "weighted (DE)"] and len(rows) == 4
    weighted = rows[-1]
    assert float(weighted["val_acc"]) >= max(float(r["val_acc"]) for r in rows[:2])
    assert "| weighted (DE) | ensemble |" in (out / "ensemble.md").read_text()
    path = out / "pair.ensemble.yaml"
    spec = read_ensemble(path)
    assert [m.checkpoint for m in spec.members] == [first.resolve(), second.resolve()] and len(spec.tta or ()) == 2

    assert main(["test", "--ckpt", str(path), *QUIET]) == 0
    figures = _figures(capsys.readouterr().out)
    assert figures["test/acc"] == pytest.approx(float(weighted["test_acc"]), abs=1e-4)
    assert (out / "test" / "test_ensemble.csv").is_file() and (out / "test" / "test_confusion.csv").is_file()

    preds = tmp_path / "preds.csv"
    assert main(["predict", "--ckpt", str(path), "--output", str(preds)]) == 0
    written = list(csv.DictReader(preds.open()))
    assert len(written) == 300
    model = load_ensemble(path)
    assert model.class_names == list(spec.class_names) and model.preprocessing["image_size"] == 48
    dm = Fer2013DataModule(str(spec_root(first)), subset=300, loader={"num_workers": 0})
    dm.setup("test")
    x, _ = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        probs = model(x[:16]).numpy()
    names = list(spec.class_names)
    expected = np.array([[float(r[f"p_{c}"]) for c in names] for r in written[:16]])
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def spec_root(ckpt: Path) -> str:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["emoframe_recipe"]["data"]["root"]


def test_predict_tta_and_bad_ensemble_inputs_in_one_line(
    members: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = members
    preds = tmp_path / "tta.csv"
    assert main(["predict", "--ckpt", str(first), "--tta", "flip", "--output", str(preds), *QUIET]) == 0
    rows = list(csv.DictReader(preds.open()))
    assert len(rows) == 300 and sum(float(v) for k, v in rows[0].items() if k.startswith("p_")) == pytest.approx(
        1, 1e-3
    )
    capsys.readouterr()
    (tmp_path / "x.ensemble.yaml").write_text("format: other\n")
    for args, message in (
        (["test", "--ckpt", str(tmp_path / "x.ensemble.yaml")], "not an emoframe ensemble file"),
        (["test", "--ckpt", str(first), "--tta", "19"], "1 to 18"),
        (["ensemble", str(first), str(tmp_path / "none.probs.npz")], "Probability file not found"),
        (["validate", "--ckpt", str(tmp_path / "x.ensemble.yaml")], "use emoframe test --ckpt"),
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and "Traceback" not in "\n".join(err), (args, err[-3:])
