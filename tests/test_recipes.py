"""Every recipe in recipes/ resolves, builds, and runs a fast_dev_run on small data of its kind.

FER2013 recipes run on a 64-image subset of the real zip; valence/arousal recipes on the generated
RECOLA-layout set (tests/fixtures/make_recola.py) or clips cut from the real AFEW-VA clip, with 48x48 gray
crops, 8-frame windows and ResNet-18 instead of ResNet-50; AFEW clip recipes on the generated AFEW-layout
set (tests/fixtures/make_afew.py) with 4 frames per clip; the multi-label recipe on the generated annotated
set (tests/fixtures/make_multilabel.py); so each runs in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from emoframe.builder import build
from emoframe.config import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (REPO / "recipes").glob("*.yaml") if "svm" not in OmegaConf.load(p))
"""Lightning recipes; `emoframe svm` recipes (an svm: section) are checked in test_extract_svm.py."""


def test_there_are_recipes() -> None:
    assert {p.name for p in RECIPES} >= {"fer2013_resnet18.yaml", "fer2013_small_cnn.yaml"}


SEQUENCES = [
    "data.windows.size=8",
    "data.image.size=48",
    "data.image.channels=1",
    "data.image.mean=0.5",
    "data.image.std=0.5",
    "data.workers=1",
    "model.backbone.model=resnet18",
    "model.temporal.hidden_size=32",
]


def small_data(kind: str, request: pytest.FixtureRequest) -> list[str]:
    """Overrides pointing a recipe's datamodule at small real data (fixtures fetched only when needed)."""
    if kind == "recola":
        return [f"data.root={request.getfixturevalue('recola_set')}", *SEQUENCES]
    if kind == "afew_va":
        clips = ["data.split.seed=null", "data.split.ratios=null"]
        clips += ["data.split.train=[001]", "data.split.val=[002]", "data.split.test=[003]"]
        return [f"data.root={request.getfixturevalue('afew_va_set')}", *clips, *SEQUENCES]
    if kind == "afew":
        clips = ["data.clip.frames=4", "data.workers=1", "model.temporal.hidden_size=16"]
        return [f"data.root={request.getfixturevalue('afew_set')}", *clips]
    if kind == "multilabel_video":
        root = request.getfixturevalue("multilabel_set")
        return [f"data.videos={root / 'videos'}", f"data.annotations={root / 'annotations.csv'}", *SEQUENCES]
    return [f"data.root={request.getfixturevalue('fer2013_zip')}", "data.subset=64"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds_and_runs_fast_dev_run(recipe: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    kind = load_recipe(recipe)["data"]["name"]
    overrides = [
        *small_data(kind, request),
        f"run.dir={tmp_path}",
        "data.loader.num_workers=0",
        "trainer.fast_dev_run=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    cfg = load_recipe(recipe, overrides)
    built = build(cfg, "fit")
    built.trainer.fit(built.task, datamodule=built.datamodule)
    assert built.trainer.state.finished
    assert (built.run_dir / "config.yaml").is_file()
