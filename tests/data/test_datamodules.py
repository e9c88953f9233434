"""Datamodules: setup and batches from every loader, subset picks, DDP samplers, image folders."""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DistributedSampler, SequentialSampler

import emoframe.data  # noqa: F401  (registers the datamodules)
import emoframe.files.decode as decode_mod
from emoframe.data import Fer2013DataModule, ImageFolderDataModule, stratified_subset
from emoframe.labels import EMOTIONS
from emoframe.registry import DATAMODULES

LOADERS = ("train", "val", "test", "predict")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dm-cache")


@pytest.fixture(scope="module")
def fer_dm(fer2013_zip: Path, cache_dir: Path) -> Fer2013DataModule:
    recipe = {
        "name": "fer2013",
        "root": str(fer2013_zip),
        "subset": 300,
        "loader": {"batch_size": 32, "num_workers": 0},
        "cache_dir": str(cache_dir),
        "augment": [{"name": "Affine", "rotate": [-10, 10], "p": 0.5}, {"name": "HorizontalFlip", "p": 0.5}],
    }
    dm = DATAMODULES.build(recipe, where="data")
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_properties(fer_dm: Fer2013DataModule) -> None:
    assert fer_dm.num_classes == 7 and fer_dm.class_names == list(EMOTIONS) and fer_dm.channels == 1
    counts = fer_dm.train_label_counts
    assert counts.sum() == 300 and counts.min() >= 1  # stratified: even disgust (1.5%) is present
    assert fer_dm.hparams["subset"] == 300 and fer_dm.hparams["variant"] == "fer28"


def test_one_batch_from_each_loader(fer_dm: Fer2013DataModule) -> None:
    for split in LOADERS:
        loader = getattr(fer_dm, f"{split}_dataloader")()
        x, y = next(iter(loader))
        assert x.shape == (32, 1, 48, 48) and x.dtype == torch.float32, split
        assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < 7, split
        assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
        if split != "train":
            assert isinstance(loader.sampler, SequentialSampler), split
    x, y = next(iter(fer_dm.predict_dataloader()))
    np.testing.assert_array_equal(y.numpy(), fer_dm.dataset("test").labels[:32])  # in order


def test_workers_channels_and_size(fer2013_zip: Path, cache_dir: Path) -> None:
    dm = Fer2013DataModule(
        root=str(fer2013_zip),
        cache_dir=str(cache_dir),
        subset=64,
        loader={"batch_size": 16, "num_workers": 2},
        image={"size": 96, "channels": 3},
        augment=[{"name": "HorizontalFlip"}],
    )
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2
    x, y = next(iter(loader))
    assert x.shape == (16, 3, 96, 96) and len(y) == 16
    # Shut the persistent workers down here: left to a later random GC, torch's shutdown can stall on
    # its queue feeder thread and wait out its 5 s join timeout per worker (pytorch/pytorch#39570).
    del loader
    gc.collect()


def test_setup_after_prepare_data_decodes_nothing(fer2013_zip, cache_dir, monkeypatch) -> None:
    Fer2013DataModule(root=str(fer2013_zip), cache_dir=str(cache_dir)).prepare_data()  # warms (or hits)
    monkeypatch.setattr(decode_mod, "decode_gray", lambda *_: pytest.fail("decoded a cached image"))
    dm = Fer2013DataModule(root=str(fer2013_zip), cache_dir=str(cache_dir), variant="fer32", subset=50)
    dm.setup("test")
    assert len(dm.dataset("train")) == 50


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_eval_loaders_neither_pad_nor_duplicate(fer_dm: Fer2013DataModule, world_size: int) -> None:
    seen: dict[str, list[int]] = {s: [] for s in LOADERS[1:]}
    trained: list[list[int]] = []
    for rank in range(world_size):
        fer_dm.trainer = SimpleNamespace(
            world_size=world_size,
            global_rank=rank,
            distributed_sampler_kwargs={"num_replicas": world_size, "rank": rank},
        )
        try:
            for split in seen:
                loader = getattr(fer_dm, f"{split}_dataloader")()
                # Lightning only injects its (padding) DistributedSampler when the sampler is not one already.
                assert isinstance(loader.sampler, UnrepeatedDistributedSampler)
                assert isinstance(loader.sampler, DistributedSampler)
                seen[split].extend(loader.sampler)
            train = fer_dm.train_dataloader().sampler  # seeded per epoch (emoframe.data.common.EpochSampler)
            assert isinstance(train, DistributedSampler)  # so Lightning leaves it in place
            trained.append([i for _, i in train])
        finally:
            fer_dm.trainer = None
    for split, indices in seen.items():
        assert sorted(indices) == list(range(len(fer_dm.dataset(split)))), split  # each sample exactly once
    n = len(fer_dm.dataset("train"))  # training: equal shards of one order, padded as Lightning's sampler pads
    assert len({len(t) for t in trained}) == 1 and {i for t in trained for i in t} == set(range(n))


DDP_SCRIPT = """
import json, sys, torch, pytorch_lightning as pl
from torch import nn
from emoframe.data import Fer2013DataModule

class Counter(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(48 * 48, 7)
        self.seen = torch.zeros(1)
    def training_step(self, batch, i):
        return nn.functional.cross_entropy(self.net(batch[0].flatten(1)), batch[1])
    def test_step(self, batch, i):
        self.seen += len(batch[1])
    def on_test_epoch_end(self):
        self.tested = int(self.all_gather(self.seen).sum())
    def predict_step(self, batch, i):
        return batch[1]
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

dm = Fer2013DataModule(root=sys.argv[1], cache_dir=sys.argv[2], subset=301, loader={"batch_size": 32, "num_workers": 0})
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False)
model = Counter()
trainer.test(model, dm)
predicted = sum(len(p) for p in trainer.predict(model, dm))
result = {"tested": model.tested, "predicted": predicted}
with open(f"result_{trainer.global_rank}.json", "w") as f:  # ranks share stdout: lines interleave
    json.dump(result, f)
"""


@pytest.mark.slow
def test_real_ddp_counts_every_test_sample_once(fer2013_zip: Path, cache_dir: Path, tmp_path: Path) -> None:
    """Two CPU processes (gloo): Lightning's own sampler would pad 301 samples to 302; ours must not."""
    script = tmp_path / "ddp_count.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, str(script), str(fer2013_zip), str(cache_dir)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads((tmp_path / f"result_{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["tested"] for r in results] == [301, 301]  # summed over both ranks
    assert sorted(r["predicted"] for r in results) == [150, 151]


def test_stratified_subset() -> None:
    labels = np.repeat(np.arange(3), [900, 90, 10])
    pick = stratified_subset(labels, 100, seed=0)
    assert len(pick) == 100 and np.all(np.diff(pick) > 0)
    assert np.bincount(labels[pick]).tolist() == [90, 9, 1]
    np.testing.assert_array_equal(pick, stratified_subset(labels, 100, seed=0))
    assert not np.array_equal(pick, stratified_subset(labels, 100, seed=1))
    np.testing.assert_array_equal(stratified_subset(labels, 5000), np.arange(1000))


# --- image folders from real FER2013 images ---------------------------------------------------------
FOLDERS = {"happiness": "happy", "Sad": None, "angry": None, "contempt": "drop"}  # None: name as is


@pytest.fixture(scope="module")
def face_tree(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """root/{train,test}/<folder>/ with real FER2013 faces: JPEGs as they are, plus RGB PNGs at 96x96."""
    root = tmp_path_factory.mktemp("faces")
    originals: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(fer2013_zip) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        for folder, emotion in (
            ("happiness", "happy"),
            ("Sad", "sad"),
            ("angry", "angry"),
            ("contempt", "fear"),
        ):
            for split in ("train", "test"):
                picked = [n for n in names if n.startswith(f"{split}/{emotion}/")][:4]
                (root / split / folder).mkdir(parents=True)
                for i, name in enumerate(picked):
                    data = z.read(name)
                    rel = f"{split}/{folder}/{i}"
                    gray = Image.open(io.BytesIO(data))
                    originals[rel] = np.asarray(gray)
                    if i % 2:
                        gray.convert("RGB").resize((96, 96), Image.Resampling.BILINEAR).save(root / f"{rel}.png")
                    else:
                        (root / f"{rel}.jpg").write_bytes(data)
    return root, originals


def test_image_folder_with_class_map(face_tree, tmp_path: Path) -> None:
    root, originals = face_tree
    recipe = {
        "name": "image_folder",
        "root": str(root),
        "folders": {"val": "test"},
        "class_map": {"happiness": "happy", "contempt": None},
        "loader": {"batch_size": 4, "num_workers": 0},
        "cache_dir": str(tmp_path),
    }
    dm = DATAMODULES.build(recipe, where="data")
    dm.setup("fit")
    assert dm.dataset("val") is dm.dataset("test")
    train = dm.dataset("train")
    assert dm.train_label_counts.tolist() == [4, 0, 0, 4, 4, 0, 0]  # contempt dropped, Sad -> sad
    assert all(not str(n).startswith("train/contempt") for n in train.names)
    for name, image, label in zip(train.names, train.images, train.labels):
        split, folder, file = str(name).split("/")
        assert EMOTIONS[label] == {"happiness": "happy", "Sad": "sad"}.get(folder, folder)
        original = originals[f"{split}/{folder}/{file.split('.')[0]}"]
        tolerance = 0 if file.endswith(".jpg") else 40  # PNGs were upscaled RGB: back to 48x48 gray
        assert image.shape == (48, 48) and np.abs(image.astype(int) - original).mean() <= tolerance / 4
    for split in LOADERS:
        x, y = next(iter(getattr(dm, f"{split}_dataloader")()))
        assert x.shape == (4, 1, 48, 48) and y.dtype == torch.int64
    # a second datamodule reads the cache
    again = ImageFolderDataModule(
        root=str(root),
        folders={"val": "test"},
        class_map={"happiness": "happy", "contempt": None},
        cache_dir=str(tmp_path),
    )
    np.testing.assert_array_equal(again.dataset("train").images, train.images)


def test_image_folder_resizes_to_image_size(face_tree, tmp_path: Path) -> None:
    root, _ = face_tree
    dm = ImageFolderDataModule(
        root=str(root),
        folders={"val": "test"},
        class_map={"happiness": "happy", "contempt": "fear"},
        image={"size": 64, "channels": 3},
        loader={"batch_size": 8, "num_workers": 0},
        cache_dir=str(tmp_path),
    )
    assert dm.dataset("train").images.shape == (16, 64, 64)
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape == (8, 3, 64, 64)
