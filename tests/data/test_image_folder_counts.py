"""image_folder never loses pictures silently: an empty class folder and tiny upscaled pictures are counted in one
line each (fresh and cached), and a decompression bomb is a bad image under the one picture-size limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emoframe.data.image_folder import ImageFolderDataModule
from emoframe.errors import DataError
from emoframe.files.decode import decode_files
from emoframe.files.pictures import ENV
from tests.fixtures.bad_inputs import bomb_png


def face(path: Path, side: int, value: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side), value, np.uint8)).save(path)
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    for split in ("train", "val", "test"):
        for i in range(3):
            face(root / split / "happy" / f"{i}.png", 64)
            face(root / split / "sad" / f"{i}.png", 48)
    return root


def build(root: Path, tmp_path: Path, **kwargs) -> ImageFolderDataModule:
    dm = ImageFolderDataModule(str(root), cache_dir=str(tmp_path / "cache"), loader={"num_workers": 0}, **kwargs)
    dm.setup("fit")
    return dm


def lines(err: str, start: str) -> list[str]:
    return [line for line in err.splitlines() if start in line]


def test_an_empty_class_folder_is_counted_fresh_and_cached(tree: Path, tmp_path: Path, capsys) -> None:
    (tree / "train" / "fear").mkdir()
    (tree / "train" / "surprise" / "sub").mkdir(parents=True)  # sub-folders without pictures: empty too
    build(tree, tmp_path)
    err = capsys.readouterr().err
    (line,) = lines(err, "hold no images")
    assert f"2 of 4 class folders in {tree / 'train'} hold no images: fear, surprise" in line, err
    build(tree, tmp_path)
    (line,) = lines(capsys.readouterr().err, "hold no images")
    assert f"{tree / 'train'} (cached)" in line
    assert not lines(err, "Upscaled"), "48 and 64 px pictures at 48 px are not tiny"


def test_tiny_pictures_are_counted_when_upscaled(tree: Path, tmp_path: Path, capsys) -> None:
    face(tree / "train" / "sad" / "dot.png", 1)
    face(tree / "train" / "sad" / "small.png", 20)
    face(tree / "train" / "happy" / "half.png", 24)  # exactly 2x: not counted
    dm = build(tree, tmp_path)
    assert len(dm.dataset("train")) == 9, "still used: counted, not dropped"
    (line,) = lines(capsys.readouterr().err, "Upscaled")
    assert f"Upscaled 2 of 9 images in {tree / 'train'} more than 2x to 48x48" in line
    assert "first: sad/dot.png (1x1)" in line
    build(tree, tmp_path)
    assert "(cached)" in lines(capsys.readouterr().err, "Upscaled")[0]


def test_a_decompression_bomb_is_a_bad_image(tree: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    bomb_png(tree / "train" / "happy" / "bomb.png")
    with pytest.raises(DataError, match=r"Bad image happy/bomb.png in .*: too large \(400000000 pixels"):
        build(tree, tmp_path)
    dm = build(tree, tmp_path, on_bad_image="skip")
    assert len(dm.dataset("train")) == 6
    assert "Skipped 1 of 7 images" in capsys.readouterr().err
    monkeypatch.setenv(ENV, str(64 * 64 - 1))  # the one setting: now the 64x64 pictures are over it too
    _, kept, skipped = decode_files(
        ["happy/0.png", "sad/0.png"],
        lambda rel: (tree / "val" / rel).read_bytes(),
        size=48,
        resize=True,
        on_bad_image="skip",
        where="val",
        desc="",
        progress=False,
    )
    assert skipped == ["happy/0.png"] and kept.tolist() == [1]
