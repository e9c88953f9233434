"""Recipe composition: inheritance, interpolation, env defaults, overrides, and recipe mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoframe.config import load_recipe, save_recipe
from emoframe.registry import RecipeError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def recipes(tmp_path: Path) -> Path:
    write(tmp_path / "_base" / "a.yaml", "trainer: {max_epochs: 5, devices: 1}\ndata: {batch_size: 32, root: x}\n")
    write(tmp_path / "_base" / "b.yaml", "defaults: [a.yaml]\ntrainer: {max_epochs: 7}\n")
    return write(
        tmp_path / "exp.yaml",
        "defaults: [_base/b.yaml]\n"
        "data: {root: '${oc.env:EMOFRAME_TEST_ROOT,/default/root}', batch_size: 64}\n"
        "loss: {name: ce, label_smoothing: '${optimizer.lr}'}\n"
        "optimizer: {name: sgd, lr: 0.1}\n",
    )


def test_inheritance_merges_left_to_right_then_recipe(recipes: Path) -> None:
    cfg = load_recipe(recipes)
    assert cfg["trainer"] == {"max_epochs": 7, "devices": 1}
    assert cfg["data"]["batch_size"] == 64
    assert cfg["run"]["name"] == "exp"
    assert "defaults" not in cfg


def test_base_key_is_an_alias(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", "seed: 3\n")
    assert load_recipe(write(tmp_path / "c.yaml", "base: p.yaml\n"))["seed"] == 3


def test_interpolation_and_env_defaults(recipes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMOFRAME_TEST_ROOT", raising=False)
    cfg = load_recipe(recipes)
    assert cfg["data"]["root"] == "/default/root"
    assert cfg["loss"]["label_smoothing"] == 0.1
    monkeypatch.setenv("EMOFRAME_TEST_ROOT", "/from/env")
    assert load_recipe(recipes)["data"]["root"] == "/from/env"


def test_dotlist_overrides_win(recipes: Path) -> None:
    cfg = load_recipe(recipes, ["trainer.max_epochs=3", "data.batch_size=16", "optimizer.lr=0.5", "seed=1"])
    assert cfg["trainer"]["max_epochs"] == 3 and cfg["data"]["batch_size"] == 16
    assert cfg["loss"]["label_smoothing"] == 0.5  # interpolation sees the override
    assert cfg["seed"] == 1
    cfg = load_recipe(recipes, ["trainer.devices=[0, 1]", "data.root=null"])
    assert cfg["trainer"]["devices"] == [0, 1] and cfg["data"]["root"] is None


def test_unknown_top_level_key(recipes: Path) -> None:
    with pytest.raises(
        RecipeError, match=r"Unknown key 'optimiser' at the top of the recipe. Did you mean 'optimizer'"
    ):
        load_recipe(recipes, ["optimiser.lr=1"])


def test_missing_required_value_names_key(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"Missing required value data.root"):
        load_recipe(write(tmp_path / "m.yaml", "data:\n  name: fer2013\n  root: ???\n"))


def test_bad_interpolation_and_override(tmp_path: Path, recipes: Path) -> None:
    with pytest.raises(RecipeError, match=r"Cannot resolve .*nope"):
        load_recipe(write(tmp_path / "i.yaml", "seed: ${nope.x}\n"))
    with pytest.raises(RecipeError, match=r"not of the form key=value"):
        load_recipe(recipes, ["trainer.max_epochs"])


def test_missing_files_and_cycles(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="Recipe not found"):
        load_recipe(tmp_path / "none.yaml")
    with pytest.raises(RecipeError, match="defaults entry 'gone.yaml' not found"):
        load_recipe(write(tmp_path / "g.yaml", "defaults: [gone.yaml]\n"))
    write(tmp_path / "x.yaml", "defaults: [y.yaml]\n")
    with pytest.raises(RecipeError, match="inheritance cycle"):
        load_recipe(write(tmp_path / "y.yaml", "defaults: [x.yaml]\n"))
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path / "bad.yaml", "data: {root: [unclosed\n"))


def test_saved_recipe_round_trips(recipes: Path, tmp_path: Path) -> None:
    cfg = load_recipe(recipes)
    save_recipe(cfg, tmp_path / "run" / "config.yaml")
    assert load_recipe(tmp_path / "run" / "config.yaml") == {**cfg, "run": {**cfg["run"], "name": "exp"}}
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_yaml_errors_name_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  name: fer2013\n  root: [a\nmodel: {}\n")
    with pytest.raises(RecipeError, match=r"bad.yaml:4:6 \(opened at line 3\): not valid YAML: .*flow sequence"):
        load_recipe(bad)


def test_an_override_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {name: fer2013}\n")
    with pytest.raises(RecipeError, match=r"^Override 'data.augment=\[': the value is not valid YAML \(.*\)$"):
        load_recipe(recipe, ["data.augment=["])


def test_an_override_naming_a_component_replaces_the_section(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("loss: {name: ccc, reduction: mean}\noptimizer: {name: sgd, lr: 0.1, momentum: 0.9}\n")
    cfg = load_recipe(recipe, ["loss={class_path: my_losses.HalfCCC, factor: 0.25}", "optimizer={lr: 0.5}"])
    assert cfg["loss"] == {"class_path": "my_losses.HalfCCC", "factor": 0.25}  # replaced
    assert cfg["optimizer"] == {"name": "sgd", "lr": 0.5, "momentum": 0.9}  # no component named: merged


def test_unknown_run_keys_are_typos(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {name: fer2013}\n")
    with pytest.raises(RecipeError, match=r"Unknown key run.nmae. Did you mean 'name'\?"):
        load_recipe(recipe, ["run.nmae=x"])


def test_a_tilde_override_deletes_a_key(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("trainer: {max_epochs: 3, max_time: '00:01:00'}\n")
    assert load_recipe(recipe, ["~trainer.max_time"])["trainer"] == {"max_epochs": 3}
    with pytest.raises(RecipeError, match=r"Override '~trainer.nope': the recipe has no key trainer.nope to delete"):
        load_recipe(recipe, ["~trainer.nope"])


def test_an_override_may_interpolate_a_recipe_key(tmp_path: Path) -> None:
    """The value is parsed alone, so its ``${...}`` must wait for the whole recipe: it resolves there, and a
    missing key is one line naming it (not omegaconf's InterpolationKeyError traceback)."""
    recipe = write(tmp_path / "r.yaml", "optimizer: {name: sgd, lr: 0.1, momentum: 0.9}\nseed: 3\n")
    cfg = load_recipe(recipe, ["optimizer.lr=${optimizer.momentum}", "trainer={max_epochs: '${seed}'}"])
    assert cfg["optimizer"]["lr"] == 0.9 and cfg["trainer"] == {"max_epochs": 3}
    assert load_recipe(recipe, ["optimizer.lr=['${seed}', 1]"])["optimizer"]["lr"] == [3, 1]  # quoted in a list
    with pytest.raises(RecipeError, match=r"^Cannot resolve optimizer.lr: Interpolation key 'optimizer.nope' not"):
        load_recipe(recipe, ["optimizer.lr=${optimizer.nope}"])
    with pytest.raises(RecipeError, match=r"^Override 'seed=\${': the value is not valid YAML"):
        load_recipe(recipe, ["seed=${"])


@pytest.mark.parametrize(
    ("overrides", "split"),
    [
        (
            ["data.split={train: ['001'], val: ['002'], test: ['003']}"],
            {"train": ["001"], "val": ["002"], "test": ["003"]},
        ),
        (["data.split.train=[a]", "data.split.val=[b]"], {"train": ["a"], "val": ["b"]}),
        (["data.split={seed: 4}"], {"seed": 4, "ratios": [0.8, 0.1, 0.1]}),
    ],
)
def test_an_override_in_another_form_replaces_the_section(overrides: list[str], split: dict, tmp_path: Path) -> None:
    """``split`` is either {seed, ratios} or train/val/test lists: an override in one form drops the other's keys
    (merged, the section would hold keys the user never wrote)."""
    recipe = write(tmp_path / "r.yaml", "data: {name: afew_va, split: {seed: 0, ratios: [0.8, 0.1, 0.1]}}\n")
    assert load_recipe(recipe, overrides)["data"]["split"] == split
    listed = write(tmp_path / "l.yaml", "data: {name: afew_va, split: {train: [a], val: [b], test: [c]}}\n")
    assert load_recipe(listed, ["data.split.seed=5"])["data"]["split"] == {"seed": 5}
    assert load_recipe(listed, ["data.split.train=[z]"])["data"]["split"]["val"] == ["b"]  # same form: merged
