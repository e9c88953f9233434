"""Checkpoints read in one place (emoframe.checkpoints): every way a file fails to be one is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import emoframe.components  # noqa: F401  (registers small_cnn)
from emoframe.checkpoints import (
    RECIPE_KEY,
    find_checkpoint,
    load_backbone,
    read_checkpoint,
    run_dir_of_checkpoint,
)
from emoframe.cli import main
from emoframe.config import checkpoint_recipe
from emoframe.errors import RecipeError, WeightsError
from emoframe.registry import BACKBONES
from emoframe.tasks.base import RECIPE_KEY as TASK_RECIPE_KEY

RECIPE = {
    "run": {"dir": "runs", "name": "toy"},
    "data": {"name": "fer2013", "root": "data/fer2013.zip", "channels": 1},
    "model": {"name": "frame_classifier", "backbone": {"name": "small_cnn", "widths": [4, 8, 16]}},
    "loss": {"name": "ce"},
}


@pytest.fixture()
def ckpt(tmp_path: Path) -> Path:
    """A checkpoint as a task writes it: a state_dict with backbone.* tensors and the recipe."""
    net = BACKBONES.build(RECIPE["model"]["backbone"], in_chans=1)
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()} | {"head.weight": torch.zeros(7, 16)}
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": 0, RECIPE_KEY: RECIPE}, path)
    return path


def test_reads_state_dict_and_recipe(ckpt: Path) -> None:
    assert RECIPE_KEY == TASK_RECIPE_KEY == "emoframe_recipe"  # the key tasks write is the one read here
    c = read_checkpoint(ckpt)
    assert c.recipe == RECIPE and "head.weight" in c.state_dict and len(c.sha256()) == 64
    assert run_dir_of_checkpoint(ckpt) == ckpt.parent.parent
    backbone = load_backbone(c, RECIPE["model"]["backbone"], in_chans=1)
    assert not backbone.training
    assert torch.equal(backbone.state_dict()["features.0.weight"], c.state_dict["backbone.features.0.weight"])


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (None, RecipeError, "Checkpoint not found: "),
        (b"not a checkpoint", WeightsError, "not a readable checkpoint (UnpicklingError)"),
        ("truncated", WeightsError, "not a readable checkpoint"),
        ([1, 2, 3], WeightsError, "not an emoframe checkpoint (no state_dict inside)"),
        ({"epoch": 3}, WeightsError, "not an emoframe checkpoint (no state_dict inside)"),
    ],
)
def test_bad_files_fail_in_one_line(ckpt: Path, tmp_path: Path, content: object, error: type, message: str) -> None:
    path = tmp_path / "bad.ckpt"
    if content == "truncated":
        path.write_bytes(ckpt.read_bytes()[:200])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(error) as e:
        read_checkpoint(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_recipe_less_checkpoint_and_mismatched_backbone(ckpt: Path, tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": read_checkpoint(ckpt).state_dict}, path)
    c = read_checkpoint(path)
    with pytest.raises(RecipeError, match=r"plain.ckpt holds no emoframe recipe: give the recipe file too"):
        c.require_recipe()
    with pytest.raises(
        WeightsError, match=r"'features\.0\.weight' is \(4, 1, 3, 3\) in the checkpoint but \(4, 3, 3, 3\)"
    ):
        load_backbone(c, RECIPE["model"]["backbone"], in_chans=3, trained_channels=1)
    with pytest.raises(RecipeError, match="has no model.backbone"):
        load_backbone(c, None, in_chans=1)


def test_cli_reads_the_stored_recipe(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`emoframe test --ckpt X` without a recipe file: the stored recipe, overrides applied; a recipe-less
    checkpoint is a one-line error."""
    assert checkpoint_recipe(RECIPE, ["data.channels=3"])["data"]["channels"] == 3
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    assert main(["test", "--ckpt", str(path)]) == 2
    assert "holds no emoframe recipe: give the recipe file too" in capsys.readouterr().err
    with pytest.raises(RecipeError, match="No 'best' checkpoint under"):
        find_checkpoint({"run": {"dir": str(tmp_path), "name": "toy"}}, "best")


def test_extract_data_section_replaced_from_a_recipe_file(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("imports: [my_plugin]\ndata: {name: afew, root: /afew}\nmodel: {name: ignored}\n")
    cfg = checkpoint_recipe({**RECIPE, "imports": ["a"]}, ["data.frames=4"], data_from=other)
    assert cfg["data"] == {"name": "afew", "root": "/afew", "frames": 4}  # replaced whole, then overridden
    assert cfg["model"] == RECIPE["model"] and cfg["imports"] == ["a", "my_plugin"]
    (tmp_path / "nodata.yaml").write_text("seed: 1\n")
    with pytest.raises(RecipeError, match="no data: section to extract features from"):
        checkpoint_recipe(RECIPE, [], data_from=tmp_path / "nodata.yaml")
