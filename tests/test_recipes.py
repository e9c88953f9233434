"""Every recipe in recipes/ resolves, builds, and runs a fast_dev_run on small data of its kind.

FER2013 recipes run on a 64-image subset of the real zip; valence/arousal recipes on the generated
RECOLA-layout set (tests/fixtures/make_recola.py) or clips cut from the real AFEW-VA clip, with 48x48 gray
crops, 8-frame windows and ResNet-18 instead of ResNet-50; AFEW clip recipes on the generated AFEW-layout
set (tests/fixtures/make_afew.py) with 4 frames per clip; the multi-label recipe on the generated annotated
set (tests/fixtures/make_multilabel.py); image-folder recipes on FER2013 faces written as class folders; so
each runs in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from emoframe.builder import build
from emoframe.config import compose, load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (REPO / "recipes").glob("*.yaml") if "svm" not in compose(p))
"""Lightning recipes; `emoframe svm` recipes (an svm: section) are checked in tests/clipsvm/test_extract.py and below."""


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
    if kind == "image_folder":  # two real FER2013 faces per usage and class, written as class folders
        root = request.getfixturevalue("write_fer")("folder")
        return [f"data.root={root}", "data.folders.val=test", "data.folders.test=test"]
    return [f"data.root={request.getfixturevalue('fer2013_zip')}", "data.subset=64"]


SLOW_RECIPES = {  # over about 4 s each on 2 cores (a bigger backbone, or a generated video set and its face tracks)
    "afew_cnn_lstm",
    "afew_va_ccc",
    "fer2013_cpu_hour",
    "fer2013_fusion",
    "fer2013_resnet18",
    "multilabel_video_bce",
    "recola_ccc",
}


@pytest.mark.parametrize(
    "recipe",
    [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW_RECIPES else []) for p in RECIPES],
)
def test_recipe_builds_and_runs_fast_dev_run(recipe: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    loaded = load_recipe(recipe)
    kind = loaded["data"]["name"]
    small_model = []
    if loaded["model"]["backbone"].get("name") == "dlib_resnet":  # 112 px through all of it: stage 2 at 48 px here
        small_model = ["model.backbone.stage=2", "data.image.size=48"]
    overrides = [
        *small_data(kind, request),
        *small_model,
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


SVM_RECIPES = sorted(p for p in (REPO / "recipes").glob("*.yaml") if "svm" in compose(p))


@pytest.mark.parametrize("recipe", SVM_RECIPES, ids=lambda p: p.stem)
def test_svm_recipes_pass_emoframe_config(
    recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`emoframe svm` recipes (an svm: section, composed) pass `emoframe config` with their feature folders set."""
    from emoframe.cli import main

    monkeypatch.setenv("AFEW_FEATURES_A", str(tmp_path))
    assert main(["config", str(recipe)]) == 0, capsys.readouterr().err
    assert f"net_a: {tmp_path}" in capsys.readouterr().out
