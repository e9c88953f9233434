"""Datamodule features (cached, standardised, un-augmented) and the fusion_classifier task on real FER2013."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoframe.builder import build
from emoframe.config import load_recipe
from emoframe.data import Fer2013DataModule
from emoframe.features import HogFeatures
from emoframe.registry import DATAMODULES, RecipeError

REPO = Path(__file__).resolve().parents[2]
FUSION = REPO / "recipes" / "fer2013_fusion.yaml"


@pytest.fixture(scope="module")
def feature_dm(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Fer2013DataModule:
    recipe = {
        "name": "fer2013",
        "root": str(fer2013_zip),
        "subset": 96,
        "loader": {"batch_size": 16, "num_workers": 0},
        "cache_dir": str(tmp_path_factory.mktemp("features-dm")),
        "augment": [{"name": "HorizontalFlip", "p": 1.0}],  # always flipped: features must not be
        "features": [{"name": "hog"}],
    }
    dm = DATAMODULES.build(recipe, where="data")
    assert dm.feature_dim == 2592  # known at construction, before any data is read
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batches_carry_standardised_features(feature_dm: Fer2013DataModule) -> None:
    x, f, y = next(iter(feature_dm.train_dataloader()))
    assert x.shape == (16, 1, 48, 48) and f.shape == (16, 2592) and f.dtype == torch.float32 and y.shape == (16,)
    train = feature_dm.dataset("train").features
    assert np.abs(train.mean(axis=0)).max() < 1e-4
    varying = train.std(axis=0) > 0
    assert varying.mean() > 0.99 and np.allclose(train.std(axis=0)[varying], 1.0, atol=1e-3)
    assert feature_dm.feature_stats["train"] == {"hog": {}}


def test_features_come_from_the_unaugmented_faces(feature_dm: Fer2013DataModule) -> None:
    mean, std = feature_dm.feature_mean, feature_dm.feature_std
    hog = HogFeatures()
    for split in ("train", "val", "test"):
        data = feature_dm.dataset(split)
        np.testing.assert_allclose(data.features, (hog(data.images) - mean) / std, atol=1e-5)
    train = feature_dm.dataset("train")
    image, features, _ = train[0]
    flipped = train.images[:1, :, ::-1].copy()
    assert torch.allclose(image[0], torch.from_numpy((flipped[0] / 255.0 - 0.5) / 0.5).float(), atol=1e-6)
    assert not np.allclose(features.numpy(), (hog(flipped)[0] - mean) / std, atol=1e-3)


def test_bad_feature_spec_fails_at_construction(fer2013_zip: Path) -> None:
    with pytest.raises(
        RecipeError, match=r"Unknown feature extractor 'hogg' at data.features\[0\].name. Did you mean 'hog'"
    ):
        DATAMODULES.build({"name": "fer2013", "root": str(fer2013_zip), "features": [{"name": "hogg"}]}, "data")
    with pytest.raises(RecipeError, match=r"Unknown key data.features\[1\].orientation for HogFeatures"):
        DATAMODULES.build(
            {
                "name": "fer2013",
                "root": str(fer2013_zip),
                "features": [{"name": "hog"}, {"name": "hog", "orientation": 9}],
            },
            "data",
        )


def _fusion_recipe(fer2013_zip: Path, tmp_path: Path, *extra: str) -> dict:
    overrides = [
        f"data.root={fer2013_zip}",
        f"run.dir={tmp_path}",
        "data.subset=64",
        "data.loader.num_workers=0",
        "data.loader.batch_size=32",
        "trainer.num_sanity_val_steps=0",
        "data.features=[{name: hog}]",
        "loggers.wandb=null",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        *extra,
    ]
    return load_recipe(FUSION, overrides)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backbone",
    [{"name": "small_cnn", "widths": [16, 32]}, {"name": "timm", "model": "mobilenetv3_small_050"}],
    ids=["small_cnn", "timm"],
)
def test_fusion_fits_end_to_end(fer2013_zip: Path, tmp_path: Path, backbone: dict) -> None:
    cfg = _fusion_recipe(
        fer2013_zip,
        tmp_path,
        "callbacks.freeze_unfreeze.epochs=1",  # Kumari's two phases, shortened: frozen epoch 0, all of it in epoch 1
        "trainer.max_epochs=2",
    )
    cfg["model"]["backbone"] = backbone
    built = build(cfg, "fit")
    task = built.task
    assert task.head.net[1].in_features == task.backbone.num_features + 256  # backbone + MLP output
    mlp_before = task.mlp[0].weight.detach().clone()
    backbone_before = [p.detach().clone() for p in task.backbone.parameters()]
    built.trainer.fit(task, datamodule=built.datamodule)
    assert built.trainer.current_epoch == 2
    assert not torch.equal(mlp_before, task.mlp[0].weight)
    assert any(not torch.equal(a, b) for a, b in zip(backbone_before, task.backbone.parameters()))
    logged = built.trainer.callback_metrics
    assert {"train/loss_epoch", "val/loss", "val/acc", "val/macro_f1"} <= set(logged)
    assert torch.isfinite(logged["val/loss"])
    if backbone["name"] != "small_cnn":
        return  # test and predict are the frame classifier's code paths: once is enough

    task.report_dir = tmp_path / "test"
    built.trainer.test(task, datamodule=built.datamodule, verbose=False)
    assert 0.0 <= float(built.trainer.callback_metrics["test/acc"]) <= 1.0
    assert (tmp_path / "test" / "test_confusion.csv").is_file()
    outputs = built.trainer.predict(task, datamodule=built.datamodule)
    probs = torch.cat([o["probs"] for o in outputs])
    assert probs.shape == (64, 7) and torch.allclose(probs.sum(dim=1), torch.ones(64), atol=1e-5)


def test_fusion_reads_the_feature_vector(fer2013_zip: Path, tmp_path: Path) -> None:
    cfg = _fusion_recipe(fer2013_zip, tmp_path, "model.mlp=[]", "model.backbone={name: small_cnn, widths: [8]}")
    task = build(cfg, "fit").task.eval()
    assert task.head.net[1].in_features == 8 + 2592  # no hidden layer: the features go straight to the head
    x, f = torch.randn(4, 1, 48, 48), torch.randn(4, 2592)
    assert not torch.allclose(task(x, f), task(x, f + 1.0))


def test_fusion_without_data_features_is_one_recipe_error(fer2013_zip: Path, tmp_path: Path) -> None:
    cfg = _fusion_recipe(fer2013_zip, tmp_path, "data.features=null")
    with pytest.raises(RecipeError, match=r"^model: task 'fusion_classifier' .* yields none: add data.features"):
        build(cfg, "fit")
    assert not list(tmp_path.rglob("config.yaml"))  # failed before anything was written


def test_frame_classifier_ignores_features(fer2013_zip: Path, tmp_path: Path) -> None:
    cfg = _fusion_recipe(fer2013_zip, tmp_path, "model.name=frame_classifier", "trainer.fast_dev_run=2")
    del cfg["model"]["mlp"], cfg["model"]["mlp_dropout"]
    built = build(cfg, "fit")
    assert "feature_dim" not in vars(built.task)
    built.trainer.fit(built.task, datamodule=built.datamodule)  # labels are read from the last batch entry
    assert built.trainer.state.finished


def test_image_folder_forwards_features(write_fer, tmp_path: Path) -> None:
    root = write_fer("folder")  # real FER2013 JPEGs in root/{train,test}/<class>/
    recipe = {
        "name": "image_folder",
        "root": str(root),
        "folders": {"val": "test"},
        "loader": {"num_workers": 0},
        "cache_dir": str(tmp_path / "cache"),
        "features": [{"name": "hog", "cell": 12}],
    }
    dm = DATAMODULES.build(recipe, "data")
    assert dm.feature_dim == 12 * 12 * 8  # 12 px cells in the 8 windows per axis: 2+2+2+2+2+1+1+0 = 12
    dm.setup("fit")
    image, features, label = dm.dataset("val")[0]
    assert image.shape == (1, 48, 48) and features.shape == (dm.feature_dim,) and isinstance(label, int)
