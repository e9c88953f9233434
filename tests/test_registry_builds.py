"""Registry-driven: every registered datamodule and task builds from a small test configuration.

A new datamodule or task without an entry here fails ``test_every_*_has_a_test_config``, so nothing registered
goes untested. Datamodules are built from the real and generated data sets of tests/conftest.py (their
constructors check the layout); tasks through the builder, as ``emoframe fit`` builds them, and run forward.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from emoframe.builder import build_task
from emoframe.labels import EMOTIONS
from emoframe.registry import DATAMODULES, TASKS
from emoframe.spec import ModelSpec

SMALL_VIDEO = {"image": {"size": 48, "channels": 1}, "loader": {"batch_size": 2, "num_workers": 0}, "workers": 1}

DATAMODULE_CFGS: dict[str, Callable[[pytest.FixtureRequest], dict[str, Any]]] = {
    "fer2013": lambda r: {
        "root": str(r.getfixturevalue("fer2013_zip")),
        "subset": 64,
        "loader": {"batch_size": 8, "num_workers": 0},
    },
    "image_folder": lambda r: {
        "root": str(r.getfixturevalue("write_fer")("folder")),
        "folders": {"val": "test"},
        "loader": {"batch_size": 4, "num_workers": 0},
    },
    "recola": lambda r: {"root": str(r.getfixturevalue("recola_set")), "windows": {"size": 25}, **SMALL_VIDEO},
    "afew_va": lambda r: {"root": str(r.getfixturevalue("afew_va_set")), "windows": {"size": 4}, **SMALL_VIDEO},
    "afew": lambda r: {
        "root": str(r.getfixturevalue("afew_set")),
        "folders": {"test": "Heldout_AFEW"},
        "clip": {"frames": 8},
        **SMALL_VIDEO,
    },
    "video_folder": lambda r: {
        "root": str(r.getfixturevalue("afew_set")),
        "folders": {"train": "Train_AFEW", "val": "Val_AFEW", "test": "Heldout_AFEW"},
        "clip": {"frames": 8},
        **SMALL_VIDEO,
    },
    "multilabel_video": lambda r: {
        "videos": str(r.getfixturevalue("multilabel_set") / "videos"),
        "annotations": str(r.getfixturevalue("multilabel_set") / "annotations.csv"),
        "table": {"votes": "majority", "raters": 7},  # the generated table holds 7 raters' vote counts
        "split": {"seed": 0, "ratios": [0.7, 0.15, 0.15]},
        "windows": {"size": 8},
        **SMALL_VIDEO,
    },
}
"""Datamodules whose first batch is read in the test (the others read videos through the face pipeline, which
their own test modules do; here they are built, which checks every setting and the data layout)."""
SERVED = ("fer2013", "image_folder")

FRAMES = (2, 1, 48, 48)  # a batch of two 48x48 gray faces
CLIPS = (2, 6, 1, 48, 48)  # two 6-frame clips or windows
TINY = {"name": "small_cnn", "widths": [8, 16, 32]}

TASK_CFGS: dict[str, tuple[dict[str, Any], ModelSpec, Callable[[torch.nn.Module], torch.Tensor], tuple[int, ...]]] = {
    "frame_classifier": ({"backbone": TINY}, ModelSpec(1, 7, list(EMOTIONS)), lambda t: t(torch.rand(FRAMES)), (2, 7)),
    "fusion_classifier": (
        {"backbone": TINY, "mlp": [16]},
        ModelSpec(1, 7, list(EMOTIONS), feature_dim=10),
        lambda t: t(torch.rand(FRAMES), torch.rand(2, 10)),
        (2, 7),
    ),
    "sequence_classifier": (
        {"backbone": TINY, "temporal": {"name": "lstm", "hidden_size": 8}},
        ModelSpec(1, 7, list(EMOTIONS)),
        lambda t: t(torch.rand(CLIPS), torch.ones(CLIPS[:2], dtype=torch.bool)),
        (2, 7),
    ),
    "va_regressor": (
        {"backbone": TINY, "temporal": {"name": "gru", "hidden_size": 8}},
        ModelSpec(1, 2, ["arousal", "valence"]),
        lambda t: t(torch.rand(CLIPS), torch.ones(CLIPS[:2], dtype=torch.bool)),
        (2, 6, 2),
    ),
    "multilabel_classifier": (
        {"backbone": TINY, "temporal": {"name": "mean"}},
        ModelSpec(1, 4, ["neutral", "happy", "surprise", "sad"]),
        lambda t: t(torch.rand(CLIPS), torch.ones(CLIPS[:2], dtype=torch.bool)),
        (2, 6, 4),
    ),
}


def test_every_datamodule_has_a_test_config() -> None:
    assert set(DATAMODULES.names()) == set(DATAMODULE_CFGS)


def test_every_task_has_a_test_config() -> None:
    assert set(TASKS.names()) == set(TASK_CFGS)


@pytest.mark.parametrize("name", sorted(DATAMODULE_CFGS))
def test_every_datamodule_builds(name: str, request: pytest.FixtureRequest) -> None:
    dm = DATAMODULES.build({"name": name, **DATAMODULE_CFGS[name](request)}, "data")
    assert dm.num_classes == len(dm.class_names) >= 1 and dm.channels in (1, 3)
    spec = ModelSpec.of(dm)
    assert spec.image_size == dm.image.size and len(spec.mean or []) == dm.channels
    if name in SERVED:
        dm.setup("fit")
        x, y = next(iter(dm.train_dataloader()))
        assert x.shape[1:] == (dm.channels, dm.image.size, dm.image.size) and len(y) == len(x)


@pytest.mark.parametrize("name", sorted(TASK_CFGS))
def test_every_task_builds_and_runs_forward(name: str) -> None:
    model, data, forward, shape = TASK_CFGS[name]
    recipe = {"model": {"name": name, **model}, "loss": {"name": "ce"}, "optimizer": {"name": "adam"}}
    task = build_task(recipe, data)  # type: ignore[arg-type]
    assert list(task.class_names) == data.class_names
    with torch.no_grad():
        out = forward(task.eval())
    assert tuple(out.shape) == shape and torch.isfinite(out).all()


def test_the_image_folder_fixture_is_a_folder(write_fer: Callable[[str], Path]) -> None:
    root = write_fer("folder")
    assert (root / "train").is_dir() and (root / "test").is_dir()
