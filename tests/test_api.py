"""The Python API: registries populated on first use, entry points on `import emoframe`, config = fit's checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import emoframe
from emoframe.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_registry_builds_built_ins_without_importing_the_cli() -> None:
    code = "from emoframe.registry import LOSSES; print(type(LOSSES.build({'name': 'ccc'})).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "CCCLoss"


def test_import_emoframe_exposes_registries_and_entry_points() -> None:
    assert "ccc" in emoframe.LOSSES.names() and "small_cnn" in emoframe.BACKBONES
    assert set(emoframe.list_components()) == set(emoframe.REGISTRIES)
    assert emoframe.list_components("losses")["losses"] == emoframe.LOSSES.names()
    for name in emoframe.API:
        assert callable(getattr(emoframe, name))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        emoframe.nope  # noqa: B018


def test_load_recipe_and_check(fer2013_zip: Path) -> None:
    cfg = emoframe.load_recipe(REPO / "recipes" / "fer2013_small_cnn.yaml", [f"data.root={fer2013_zip}"])
    assert cfg["run"]["name"] == "fer2013_small_cnn"
    emoframe.check_recipe(cfg)  # the whole build, no run directory
    with pytest.raises(emoframe.RecipeError, match="Out of range optimizer.lr: expected >= 0, got -1"):
        emoframe.check_recipe(
            REPO / "recipes" / "fer2013_small_cnn.yaml", [f"data.root={fer2013_zip}", "optimizer.lr=-1"]
        )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochz=2", "Unknown key trainer.max_epochz for Trainer. Did you mean 'max_epochs'?"),
        ("optimizer.lrr=0.1", "Unknown key optimizer.lrr"),
        ("model.backbone.widthz=[8]", "Unknown key model.backbone.widthz"),
        ("loss.label_smoothin=0.1", "Unknown key loss.label_smoothin"),
        ("optimizer.lr=-1", "Out of range optimizer.lr: expected >= 0, got -1"),
        ("model.head.dropout=1.5", "Out of range model.head.dropout: expected >= 0 and <= 1, got 1.5"),
        ("seed=-1", "seed: expected an integer from 0 to 4294967295, got -1"),
        ("trainer.max_epochs=-60", "trainer: `max_epochs` must be a non-negative integer or -1"),
        ("trainer.devices=0", "trainer: `Trainer(devices=0)` value is not a valid input"),
        ("trainer.devices=100000", "trainer.devices: 100000 CPU processes on a"),
        ("callbacks=5", "callbacks: expected a mapping of name -> {name: ...}"),
        ("run.nmae=x", "Unknown key run.nmae. Did you mean 'name'?"),
        ("~callbacks.checkpoint.mode", "Missing required value callbacks.checkpoint.mode: it monitors val/acc"),
    ],
)
def test_config_validates_as_fit_does(
    override: str, message: str, fer2013_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = str(REPO / "recipes" / "fer2013_small_cnn.yaml")
    args = [recipe, f"data.root={fer2013_zip}", f"run.dir={tmp_path}", override]
    assert main(["config", *args]) == 2
    config_err = capsys.readouterr().err.strip().splitlines()
    assert len(config_err) == 1 and message in config_err[0]
    assert main(["fit", *args]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == config_err[0]
    assert not list(tmp_path.iterdir()), "config and a failing fit leave nothing behind"


def test_config_checks_svm_recipes_as_svm_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AFEW_FEATURES_A", str(tmp_path))
    recipe = str(REPO / "recipes" / "afew_stat_svm.yaml")
    assert main(["config", recipe]) == 0
    assert f"net_a: {tmp_path}" in capsys.readouterr().out
    assert main(["config", recipe, "svm.members.net_a.foldz=3"]) == 2
    assert "Unknown key svm.members.net_a.foldz for ClipSVM. Did you mean 'folds'?" in capsys.readouterr().err


def test_a_checkpoint_recipe_from_before_the_regrouping_is_read_in_todays_keys(fer2013_zip: Path) -> None:
    from emoframe.builder import build_datamodule, build_task, upgrade_recipe
    from emoframe.spec import ModelSpec

    old = emoframe.load_recipe(REPO / "recipes" / "recola_ccc.yaml", ["data.root=/nowhere"])
    old["data"] = {"name": "fer2013", "root": str(fer2013_zip), "batch_size": 8, "num_workers": 0, "image_size": 48}
    old["model"] = {
        "name": "va_regressor",
        "backbone": {"name": "small_cnn", "widths": [8, 16]},
        "temporal": "gru",
        "hidden_size": 12,
        "num_layers": 1,
    }
    new, moved = upgrade_recipe(old)
    assert (
        "data.batch_size -> data.loader.batch_size" in moved
        and "model.hidden_size -> model.temporal.hidden_size" in moved
    )
    assert new["data"]["loader"] == {"batch_size": 8, "num_workers": 0} and new["data"]["image"] == {"size": 48}
    assert new["model"]["temporal"] == {"name": "gru", "hidden_size": 12, "num_layers": 1}
    dm = build_datamodule(new)
    task = build_task(new, ModelSpec.of(dm), for_training=False)
    assert task.temporal.out_features == 12
    assert "batch_size" in old["data"], "the stored recipe itself is left as it was"
