"""The engine's Python API does what the CLI does: every verb called from Python on one small real FER2013 fit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import emoframe
from emoframe.cli import VERBS
from emoframe.launch import RUN_DIR_ENV
from emoframe.spec import SPEC_KEY
from emoframe.tasks.frame_classifier import FrameClassifier

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "fer2013_small_cnn.yaml"
FIXTURES = REPO / "tests" / "fixtures" / "legacy"
API_OF_VERB = {
    "fit": "fit",
    "validate": "validate",
    "test": "test",
    "predict": "predict",
    "export": "export_model",
    "extract": "extract",
    "ensemble": "fit_ensemble",
    "svm": "svm",
    "sweep": "sweep",
    "list": "list_components",
    "config": "check_recipe",
}


def small(fer2013_zip: Path, runs: Path) -> list[str]:
    return [
        f"data.root={fer2013_zip}",
        "data.subset=120",
        "data.loader.batch_size=32",
        "data.loader.num_workers=0",
        "trainer.max_epochs=1",
        "scheduler.warmup_epochs=0",
        "model.backbone={name: small_cnn, widths: [4, 8, 8]}",
        "loggers.wandb=null",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"run.dir={runs}",
    ]


@pytest.fixture(scope="module")
def fitted(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    runs = tmp_path_factory.mktemp("engine_runs")
    return emoframe.fit(RECIPE, small(fer2013_zip, runs))


def test_every_cli_verb_has_a_python_function() -> None:
    assert {v.name for v in VERBS} == set(API_OF_VERB)
    for name in API_OF_VERB.values():
        assert callable(getattr(emoframe, name)), name


def test_fit_returns_its_run_and_leaves_no_environment(fitted: Any) -> None:
    assert fitted.best is not None and fitted.best.is_file() and fitted.last is not None
    assert "val/acc" in fitted.metrics and fitted.run_dir.is_dir()
    assert RUN_DIR_ENV not in os.environ  # handed to launched ranks only for the duration of the fit
    stored = torch.load(fitted.best, map_location="cpu", weights_only=False)[SPEC_KEY]
    assert stored["kind"] == "frame" and stored["activation"] == "softmax" and stored["task"] == "frame_classifier"


def test_resume_last_continues_the_same_run(fitted: Any, fer2013_zip: Path) -> None:
    runs = fitted.run_dir.parent.parent
    again = emoframe.fit(RECIPE, [*small(fer2013_zip, runs), "trainer.max_epochs=2"], resume="last")
    assert again.run_dir == fitted.run_dir
    assert torch.load(again.last, map_location="cpu", weights_only=False)["epoch"] == 1


def test_validate_and_check_recipe(fitted: Any, fer2013_zip: Path, tmp_path: Path) -> None:
    result = emoframe.validate(ckpt=fitted.best, output=tmp_path / "reports")
    assert 0.0 <= result.metrics["val/acc"] <= 1.0
    cfg = emoframe.check_recipe(RECIPE, [f"data.root={fer2013_zip}", "optimizer.lr=0.02"])
    assert cfg["optimizer"]["lr"] == 0.02
    assert "small_cnn" in emoframe.list_components("backbones")["backbones"]


def test_test_with_tta_goes_through_the_test_split_once(
    fitted: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain and TTA figures and the probability file come from one pass: each test example is loaded once,
    and each batch has two forward passes (plain, and all views at once)."""
    seen: list[int] = []
    forwards: list[int] = []
    step, forward = FrameClassifier.test_step, FrameClassifier.forward

    def counting_step(self: FrameClassifier, batch: Any, batch_idx: int) -> Any:
        seen.append(len(batch[-1]))
        before = len(forwards)
        out = step(self, batch, batch_idx)
        assert len(forwards) - before == 2
        return out

    def counting_forward(self: FrameClassifier, x: torch.Tensor) -> torch.Tensor:
        forwards.append(len(x))
        return forward(self, x)

    monkeypatch.setattr(FrameClassifier, "test_step", counting_step)
    monkeypatch.setattr(FrameClassifier, "forward", counting_forward)
    result = emoframe.test(ckpt=fitted.best, tta="flip", save_probs=tmp_path / "p" / "a", output=tmp_path / "rep")
    assert sum(seen) == result.metrics["test/samples"] == result.metrics["test_tta/samples"] == 120
    assert {"test/acc", "test_tta/acc", "test_tta/macro_f1"} <= set(result.metrics)
    rows = (tmp_path / "rep" / "test" / "test_tta.csv").read_text().splitlines()
    assert rows[0] == "tta,acc,balanced_acc,macro_f1,samples" and rows[2].startswith("2 views (flip)")
    probs = np.load(result.probabilities)
    assert probs["test_probs"].shape == (120, 7) and probs["val_probs"].shape[1] == 7
    acc = float((probs["test_probs"].argmax(1) == probs["test_labels"]).mean())
    assert acc == pytest.approx(result.metrics["test_tta/acc"], abs=1e-6)
    assert (tmp_path / "rep" / "test" / "test_tta_confusion.csv").is_file()


def test_predict_a_split_and_pictures(fitted: Any, fer_faces: Any, tmp_path: Path) -> None:
    split = emoframe.predict(ckpt=fitted.best, tta="flip", output=tmp_path / "split.csv")
    assert split.predictions.is_file() and len(split.predictions.read_text().splitlines()) == 121
    from PIL import Image

    picture = tmp_path / "face.png"
    Image.fromarray(fer_faces[0]).save(picture)
    summary = emoframe.predict([str(picture)], ckpt=fitted.best, output=tmp_path / "faces.csv", faces="none")
    assert summary.rows == 1 and (tmp_path / "faces.csv").is_file()
    model = emoframe.load_model(fitted.best)
    assert model.spec.kind == "frame" and model.preprocessing["image_size"] == 48


def test_export_extract_and_ensemble(fitted: Any, tmp_path: Path) -> None:
    exported = emoframe.export_model(fitted.best, "onnx", tmp_path / "m.onnx", parity="random")
    assert exported.path.is_file() and emoframe.load_model(exported.path).spec.kind == "frame"
    features = emoframe.extract(ckpt=fitted.best, output=tmp_path / "feats", splits="val", tta="2", batch_size=16)
    assert features[0].path.is_file() and features[0].dim == 8
    probs = emoframe.test(ckpt=fitted.best, save_probs=tmp_path / "a", output=tmp_path / "r").probabilities
    result = emoframe.fit_ensemble([probs, fitted.best], name="pair", output=tmp_path / "ens")
    assert result.ensemble_file.is_file() and [r["kind"] for r in result.rows][-1] == "ensemble"


def test_checkpoints_and_exports_of_the_previous_layout_still_load() -> None:
    """Files written before the model spec existed (committed fixtures) load with the same outputs."""
    expected = json.loads((FIXTURES / "expected.json").read_text())
    x = torch.linspace(-1, 1, 2 * 48 * 48).reshape(2, 1, 48, 48)
    for name in ("frame.ckpt", "frame.onnx"):
        model = emoframe.load_model(FIXTURES / name)
        with torch.no_grad():
            out = torch.as_tensor(np.asarray(model(x))).float()
        assert np.allclose(out.numpy(), np.asarray(expected[name]["logits"]), atol=1e-5), name
        assert model.spec.kind == expected[name]["kind"] and model.spec.activation == expected[name]["activation"]
        assert model.class_names == expected[name]["class_names"]
        assert model.preprocessing == expected[name]["preprocessing"]


def test_sweep_from_python_joins_only_a_sweep_that_exists(
    tmp_path: Path, fer2013_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("FER2013_ROOT", str(fer2013_zip))  # the sweep's recipe is checked before the join
    with pytest.raises(emoframe.RecipeError, match="--join: no sweep named"):
        emoframe.sweep(REPO / "sweeps" / "fer2013_small_cnn.yaml", join=True, folder=str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()  # a refused join leaves no storage behind


def test_model_predict_takes_tta(fitted: Any, fer_faces: Any) -> None:
    model = emoframe.load_model(fitted.best)
    plain = model.predict(fer_faces[0], faces="none")
    averaged = model.predict(fer_faces[0], faces="none", tta="flip")
    assert plain.shape == averaged.shape and not np.allclose(plain["p_happy"], averaged["p_happy"])
    assert model.spec.activation == "softmax"  # the loaded model is left as it was


def test_device_sets_the_evaluation_trainer(fitted: Any, tmp_path: Path) -> None:
    """``--device`` reaches the trainer of validate/test/predict; a device this machine lacks is one line."""
    from emoframe.engine.evaluation import on_device

    cfg = on_device({"trainer": {"max_epochs": 3, "accelerator": "gpu"}}, "cpu")
    assert cfg["trainer"] == {"max_epochs": 3, "accelerator": "cpu", "devices": 1}
    assert on_device({"trainer": {"accelerator": "gpu"}}, "auto")["trainer"] == {"accelerator": "gpu"}
    assert "val/acc" in emoframe.validate(ckpt=fitted.best, output=tmp_path / "v", device="cpu").metrics
    if not torch.cuda.is_available():
        with pytest.raises(emoframe.RecipeError, match="no CUDA device"):
            emoframe.test(ckpt=fitted.best, device="cuda:0", output=tmp_path / "t")
        assert not (tmp_path / "t").exists()
