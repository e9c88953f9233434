"""Every recipe in recipes/ resolves, builds, and runs a fast_dev_run on a small real FER2013 subset."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoframe.builder import build
from emoframe.config import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (REPO / "recipes").glob("*.yaml"))


def test_there_are_recipes() -> None:
    assert {p.name for p in RECIPES} >= {"fer2013_resnet18.yaml", "fer2013_small_cnn.yaml"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds_and_runs_fast_dev_run(recipe: Path, tmp_path: Path, fer2013_zip: Path) -> None:
    overrides = [
        f"data.root={fer2013_zip}",
        f"run.dir={tmp_path}",
        "data.subset=64",
        "data.num_workers=0",
        "trainer.fast_dev_run=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    cfg = load_recipe(recipe, overrides)
    built = build(cfg, "fit")
    built.trainer.fit(built.task, datamodule=built.datamodule)
    assert built.trainer.state.finished
    assert (built.run_dir / "config.yaml").is_file()
