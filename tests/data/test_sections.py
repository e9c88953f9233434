"""Grouped data sections (loader, image, windows, clip, folders, split, table): every datamodule's old flat
keys fail with one line naming the new key, section keys are checked like top-level ones, and the shared
options are declared once (``**options: Unpack[...]``) yet checked by the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

import emoframe.components  # noqa: F401  (registers the datamodules)
from emoframe.data.common import ImageSettings, LoaderSettings, crops_to_tensor, normaliser, section
from emoframe.errors import DataError, RecipeError
from emoframe.registry import DATAMODULES, accepted_parameters

SHARED = {
    "batch_size": "loader.batch_size",
    "num_workers": "loader.num_workers",
    "image_size": "image.size",
    "channels": "image.channels",
    "mean": "image.mean",
    "std": "image.std",
}
MOVED = {
    "fer2013": SHARED,
    "image_folder": {
        **SHARED,
        "train_split": "folders.train",
        "val_split": "folders.val",
        "test_split": "folders.test",
    },
    "recola": {**SHARED, "window": "windows.size", "stride": "windows.stride", "seed": "resplit.seed"},
    "afew_va": {
        **SHARED,
        "window": "windows.size",
        "train_clips": "split.train",
        "val_clips": "split.val",
        "test_clips": "split.test",
        "ratios": "split.ratios",
        "seed": "split.seed",
    },
    "multilabel_video": {
        **SHARED,
        "window": "windows.size",
        "stride": "windows.stride",
        "votes": "table.votes",
        "raters": "table.raters",
        "vote_threshold": "table.vote_threshold",
        "empty_rows": "table.empty_rows",
        "on_bad_rows": "table.on_bad_rows",
        "ignore_columns": "table.ignore_columns",
        "seed": "split.seed",
    },
    "afew": {
        **SHARED,
        "frames": "clip.frames",
        "sampling": "clip.sampling",
        "stride_s": "clip.stride_s",
        "clip_transforms": "clip.transforms",
        "train_dir": "folders.train",
        "val_dir": "folders.val",
        "test_dir": "folders.test",
    },
    "video_folder": {
        **SHARED,
        "frames": "clip.frames",
        "clip_transforms": "clip.transforms",
        "val_split": "folders.val",
    },
}


def test_every_datamodule_is_covered() -> None:
    assert set(MOVED) == set(DATAMODULES.names())


@pytest.mark.parametrize("name", sorted(MOVED))
def test_old_flat_keys_name_their_new_place(name: str) -> None:
    for old, new in MOVED[name].items():
        with pytest.raises(RecipeError, match=rf"^data\.{old} has moved: set data\.{new} instead$"):
            DATAMODULES.build({"name": name, "root": "x", "videos": "x", "annotations": "x", old: 1}, "data")


@pytest.mark.parametrize("name", sorted(MOVED))
def test_no_constructor_takes_more_than_a_dozen_keys(name: str) -> None:
    params = accepted_parameters(DATAMODULES.get(name))
    assert params is not None and {"loader", "image"} <= params
    assert len(params) <= (15 if name == "multilabel_video" else 12), sorted(params)


def test_section_keys_are_checked_with_their_path(tmp_path: Path) -> None:
    build = DATAMODULES.build
    with pytest.raises(RecipeError, match=r"^Unknown key data\.loader\.batchsize .*Did you mean 'batch_size'\?"):
        build({"name": "recola", "root": str(tmp_path), "loader": {"batchsize": 2}}, "data")
    with pytest.raises(RecipeError, match=r"^Wrong type for data\.windows\.size: expected int, got str"):
        build({"name": "recola", "root": str(tmp_path), "windows": {"size": "long"}}, "data")
    with pytest.raises(RecipeError, match=r"^Wrong type for data\.loader: expected dict"):
        build({"name": "afew", "root": str(tmp_path), "loader": 8}, "data")
    with pytest.raises(RecipeError, match=r"^Unknown key data\.folder for .*Did you mean 'folders'\?"):
        build({"name": "afew", "root": str(tmp_path), "folder": {}}, "data")
    with pytest.raises(RecipeError, match=r"^Out of range data\.windows\.size: expected >= 1 and <= 100000, got 0$"):
        build({"name": "recola", "root": str(tmp_path), "windows": {"size": 0}}, "data")
    with pytest.raises(DataError, match=r"^data\.folders\.tests: unknown split"):
        build({"name": "afew", "root": str(tmp_path), "folders": {"tests": "x"}}, "data")
    with pytest.raises(DataError, match=r"^data\.split: give either train/val/test clip lists or seed and ratios"):
        build({"name": "afew_va", "root": str(tmp_path), "split": {"train": ["001"], "ratios": [1, 0, 0]}}, "data")


def test_sections_start_from_the_datamodule_defaults() -> None:
    assert section(LoaderSettings, None, "loader") == LoaderSettings(64, 2)
    assert section(LoaderSettings, {"num_workers": 0}, "loader", {"batch_size": 4}) == LoaderSettings(4, 0)
    image = section(ImageSettings, {"channels": 3, "mean": [0.1, 0.2, 0.3]}, "image", {"size": 150})
    assert image.size == 150 and image.per_channel() == ([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    with pytest.raises(DataError, match=r"^data\.loader: expected a mapping of batch_size, num_workers, got 3$"):
        section(LoaderSettings, 3, "loader")  # type: ignore[arg-type]


def test_crops_to_tensor_is_the_datasets_normalisation() -> None:
    import numpy as np
    import torch

    gray = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    x = crops_to_tensor(gray, normaliser([0.5]), normaliser([0.25]))
    assert x.shape == (2, 1, 4, 4) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0], (torch.from_numpy(gray[0]).float() / 255.0 - 0.5) / 0.25, rtol=0, atol=0)
    rgb = np.zeros((3, 4, 4, 3), np.uint8)
    assert crops_to_tensor(rgb, normaliser([0, 0, 0]), normaliser([1, 1, 1])).shape == (3, 3, 4, 4)
