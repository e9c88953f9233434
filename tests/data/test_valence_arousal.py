"""Valence/arousal regression end to end: RECOLA-layout data, CNN + LSTM with CCC loss, post-processing, predict.

Runs on the generated RECOLA-layout set (tests/fixtures/make_recola.py: real FER2013 faces whose expression
sets the labels), the real AFEW-VA clip and a real video, with a tiny CNN on 48x48 gray crops so the
whole module takes well under a minute on two CPU cores.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emoframe.cli import main
from emoframe.config import load_recipe, save_recipe
from emoframe.data.afew_va import AfewVaDataModule, read_afew_va_clip
from emoframe.data.arff import read_arff, read_recola_labels, write_arff
from emoframe.data.recola import RecolaDataModule
from emoframe.data.video.windows import window_starts
from emoframe.errors import DataError
from emoframe.files.lazy import NpzMember
from emoframe.files.video import iter_frames
from emoframe.functional.concordance import concordance
from emoframe.registry import TEMPORAL

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "recola_ccc.yaml"
SMALL_DATA = {
    "windows": {"size": 25},
    "image": {"size": 48, "channels": 1, "mean": 0.5, "std": 0.5},
    "loader": {"num_workers": 0},
    "workers": 1,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_recipe(root: Path, out: Path, **overrides: object) -> Path:
    """recipes/recola_ccc.yaml shrunk for a CPU test (small CNN, 48 px gray crops, 1 s windows), saved as YAML."""
    cfg = load_recipe(
        RECIPE,
        [
            f"data.root={root}",
            "data.loader.batch_size=4",
            "model.temporal.hidden_size=32",
            "optimizer.lr=3.0e-3",
            "trainer.max_epochs=10",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "loggers.wandb=null",
            f"run.dir={out / 'runs'}",
        ],
    )
    cfg["run"]["name"] = "recola_tiny"
    cfg["data"].update({**SMALL_DATA, "loader": {**cfg["data"]["loader"], **SMALL_DATA["loader"]}})
    cfg["model"]["backbone"] = {"name": "small_cnn", "widths": [8, 16, 32]}
    for key, value in overrides.items():
        section, name = key.split("__")
        cfg[section][name] = value
    path = out / "recola_tiny.yaml"
    save_recipe(cfg, path)
    return path


def run_dir(out: Path) -> Path:
    return out / "runs" / "recola_tiny" / "version_0"


@pytest.fixture(scope="module")
def fitted(recola_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`emoframe fit` on the generated set: 10 epochs of 4 training recordings; returns the run directory."""
    out = tmp_path_factory.mktemp("va_fit")
    assert main(["fit", str(tiny_recipe(recola_set, out))]) == 0
    return run_dir(out)


def datamodule(root: Path, **kwargs: object) -> RecolaDataModule:
    return RecolaDataModule(str(root), **{**SMALL_DATA, "faces": {"keep": "tracked"}, **kwargs})  # type: ignore[arg-type]


@pytest.mark.slow  # the module's fit (fitted)
def test_fit_beats_constant_and_shuffled_predictors(fitted: Path, recola_set: Path, tmp_path: Path) -> None:
    best = fitted / "checkpoints" / "best.ckpt"
    assert best.is_file() and (fitted / "checkpoints" / "last.ckpt").is_file()
    out = tmp_path / "test_split.csv"
    assert main(["predict", "--ckpt", str(best), "--output", str(out)]) == 0  # no videos given: the test split
    rows = list(csv.DictReader(out.open()))
    assert {r["recording"] for r in rows} == {"test_1", "test_2"} and len(rows) == 2 * 125
    preds = np.array([[float(r["arousal_raw"]), float(r["valence_raw"])] for r in rows])
    labels = np.concatenate([read_recola_labels(recola_set, n)[1] for n in ("test_1", "test_2")])

    def ccc(p: np.ndarray) -> np.ndarray:
        return concordance(torch.from_numpy(p), torch.from_numpy(labels.astype(np.float64))).numpy()

    model = ccc(preds)
    constant = ccc(np.zeros_like(preds))
    shuffled = ccc(preds[np.random.default_rng(0).permutation(len(preds))])
    assert np.all(constant == 0)
    assert model.mean() > 0.4, f"held-out CCC (arousal, valence) {model}"
    assert np.all(model > shuffled + 0.2), f"model {model} vs shuffled {shuffled}"


@pytest.mark.slow  # the module's fit (fitted)
def test_test_reports_ccc_before_and_after_each_postprocessing_step(fitted: Path, capsys) -> None:
    assert main(["test", "--ckpt", str(fitted / "checkpoints" / "best.ckpt")]) == 0
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if "\t" in line)
    assert {"test/ccc", "test/ccc_arousal", "test/ccc_valence", "test/ccc_post", "test/ccc_after_shift"} <= set(printed)
    rows = list(csv.DictReader((fitted / "test" / "test_postprocess.csv").open()))
    assert [r["step"] for r in rows] == ["none", "+median", "+centre", "+scale", "+shift"]
    assert float(rows[0]["ccc"]) == pytest.approx(float(printed["test/ccc"]), abs=1e-4)  # same frames, same CCC
    assert float(rows[-1]["ccc"]) == pytest.approx(float(printed["test/ccc_post"]), abs=1e-4)


def delayed_copy(root: Path, out: Path, delay: float) -> Path:
    """The same videos with the gold standard ``delay`` seconds later (annotators reacting late)."""
    shutil.copytree(root / "recordings_video", out / "recordings_video")
    for arff in (root / "ratings_gold_standard").rglob("*.arff"):
        times, values = read_arff(arff)
        late = values[np.clip(np.searchsorted(times, times - delay - 1e-6), 0, len(values) - 1)]
        write_arff(out / arff.relative_to(root), arff.stem, times, late)
    return out


@pytest.mark.slow  # the module's fit (fitted)
def test_postprocessing_time_shift_repairs_delayed_labels(fitted: Path, recola_set: Path, tmp_path: Path) -> None:
    """A model that does not model a 1 s annotation delay: the post-processor fitted on dev shifts it back.

    The model starts from the fitted checkpoint (``init_from``) and barely moves (2 epochs at 1e-4). The
    median search is capped at 0.4 s: on 10 s of dev data a multi-second median filter, tried first, can
    mimic part of a 1 s delay by chance, and this test is about the time shift.
    """
    delayed = delayed_copy(recola_set, tmp_path / "delayed", delay=1.0)
    best = str(fitted / "checkpoints" / "best.ckpt")
    recipe = tiny_recipe(
        delayed,
        tmp_path,
        model__init_from=best,
        model__postprocess={"max_median_s": 0.4},
        trainer__max_epochs=2,
        optimizer__lr=1.0e-4,
    )
    assert main(["fit", str(recipe)]) == 0
    ckpt = run_dir(tmp_path) / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    shifts = [t["shift"] / t["fps"] for t in state["emoframe_postprocess"]["targets"].values()]
    assert shifts == pytest.approx([1.0, 1.0], abs=0.2), shifts
    assert main(["test", "--ckpt", str(ckpt)]) == 0
    rows = {
        r["step"]: float(r["ccc"]) for r in csv.DictReader((run_dir(tmp_path) / "test" / "test_postprocess.csv").open())
    }
    assert rows["+shift"] > rows["+scale"] + 0.2 and rows["+shift"] > rows["none"] + 0.2, rows


@pytest.mark.slow  # the module's fit (fitted)
def test_predict_on_a_real_video_writes_csv_and_plot(fitted: Path, data_dir: Path, tmp_path: Path, capfd) -> None:
    """The first second of videos/angry.mp4 (real film footage, 23.976 fps), re-encoded at 480x270 to save time."""
    video = tmp_path / "angry.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 23.976, (480, 270))
    for _, frame in iter_frames(data_dir / "videos" / "angry.mp4", indices=range(24)):
        writer.write(cv2.resize(frame, (480, 270), interpolation=cv2.INTER_AREA)[:, :, ::-1])
    writer.release()
    out = tmp_path / "predicted" / "predictions.csv"
    args = ["predict", "--ckpt", str(fitted / "checkpoints" / "best.ckpt"), f"data.predict_videos=[{video}]"]
    assert main([*args, "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 24 and {r["recording"] for r in rows} == {"angry"}
    assert [int(r["frame"]) for r in rows] == list(range(24))
    assert float(rows[12]["time"]) == pytest.approx(12 / 23.976, abs=2e-3)
    assert sum(int(r["face"]) for r in rows) == 24  # a face crop, or the whole frame (fallback: frame)
    values = np.array([[float(r["arousal"]), float(r["valence"])] for r in rows])
    assert np.isfinite(values).all() and values.std(axis=0).max() > 0
    png = out.parent / "angry.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    capfd.readouterr()
    assert main(["predict", "--ckpt", str(fitted / "checkpoints" / "best.ckpt"), "data.predict_videos=[nope.mp4]"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emoframe: error: Video not found: nope.mp4") and "data.on_bad_recording" in err[-1]


def test_missing_recola_fails_in_one_line(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "RECOLA"
    assert main(["fit", str(RECIPE), f"data.root={missing}", f"run.dir={tmp_path}", "loggers.wandb=null"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"RECOLA not found at {missing}: expected {missing}/recordings_video/train_1.mp4" in err
    assert f"{missing}/ratings_gold_standard/arousal/train_1.arff" in err and "RECOLA_ROOT" in err


@pytest.mark.slow
def test_bad_recordings_stop_with_one_line_or_are_counted(recola_set: Path, tmp_path: Path, capfd) -> None:
    root = tmp_path / "recola"
    shutil.copytree(recola_set, root)
    videos, gold = root / "recordings_video", root / "ratings_gold_standard"
    (gold / "valence" / "train_2.arff").write_text("@relation x\n@attribute frameTime numeric\n@data\n0.0\n")
    with pytest.raises(DataError, match=r"train_2\.arff:\d+: expected an attribute 'GoldStandard'.*on_bad_recording"):
        datamodule(root).setup("fit")
    shutil.copy(videos / "train_1.mp4", videos / "train_9.mp4")  # a video without labels
    for dim in ("arousal", "valence"):  # labels without a video
        shutil.copy(gold / dim / "train_1.arff", gold / dim / "train_8.arff")
    dm = datamodule(root, on_bad_recording="skip")
    dm.setup("fit")
    assert sorted(dm.skipped) == ["train_2", "train_8", "train_9"]
    assert [r.name for r in dm.recordings("train")] == ["train_1", "train_3", "train_4"]
    assert "Skipped 3 recordings" in capfd.readouterr().err
    for arff in gold.rglob("test_*.arff"):  # AVEC 2016: test videos come without labels
        arff.unlink()
    dm = datamodule(root, on_bad_recording="skip")
    assert [r.name for r in dm.recordings("test")] == ["test_1", "test_2"]
    with pytest.raises(DataError, match="test split has no labelled recordings"):
        dm.test_dataloader()


def test_windows_cover_every_frame_once_and_batches_are_masked(recola_set: Path) -> None:
    assert window_starts(125, 30, 10, cover=False) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
    assert window_starts(125, 30, 10, cover=True) == [0, 30, 60, 90, 120]
    dm = datamodule(recola_set, windows={"size": 30})
    dataset = dm.dataset("val")
    assert len(dataset) == 2 * 5  # two 125-frame recordings, five windows each, the last 5 frames long
    frames, targets, mask, recording, start = next(iter(dm.val_dataloader()))
    assert frames.shape == (2, 30, 1, 48, 48) and frames.dtype == torch.float32
    assert targets.shape == (2, 30, 2) and mask.shape == (2, 30) and mask.dtype == torch.bool
    covered = np.zeros((2, 125), int)
    for frames, targets, mask, recording, start in (dataset[i] for i in range(len(dataset))):
        n = min(30, 125 - start)
        covered[recording, start : start + n] += 1
        assert not mask[n:].any() and torch.isnan(targets[~mask]).all() and (frames[~mask] == 0).all()
        rec = dm.recordings("val")[recording]
        np.testing.assert_array_equal(
            targets[:n][mask[:n]].numpy(), rec.labels[start : start + n][rec.valid[start : start + n]]
        )
    assert (covered == 1).all()
    assert np.mean([r.valid.mean() for r in dm.recordings("train")]) > 0.9  # dlib finds the generated faces


def test_resplit_deals_whole_recordings(recola_set: Path) -> None:
    plan = {
        s: [x.name for x in v]
        for s, v in datamodule(recola_set, resplit={"seed": 1, "ratios": [0.5, 0.25, 0.25]}).sources().items()
    }
    names = sorted(n for v in plan.values() for n in v)
    assert len(names) == len(set(names)) == 8 and [len(plan[s]) for s in ("train", "val", "test")] == [4, 2, 2]
    again = datamodule(recola_set, resplit={"seed": 1, "ratios": [0.5, 0.25, 0.25]}).sources()
    assert {s: [x.name for x in v] for s, v in again.items()} == plan
    with pytest.raises(DataError, match="data.resplit.ratio: unknown key"):
        datamodule(recola_set, resplit={"ratio": [1, 1, 1]})


def test_real_afew_va_clip_loads_with_labels_and_landmarks(afew_va_clip: Path) -> None:
    raw = read_afew_va_clip(afew_va_clip, rescale=False)
    assert len(raw.frames) == 42 and (raw.labels == [5.0, 0.0]).all()  # (arousal, valence) on [-10, 10]
    dm = AfewVaDataModule(
        str(afew_va_clip.parent),
        split={"train": ["001"], "val": ["001"], "test": ["001"]},
        image={"size": 48, "channels": 1},
        windows={"size": 16},
        loader={"num_workers": 0},
    )
    (rec,) = dm.recordings("train")
    assert len(rec) == 42 and rec.fps == 25.0 and rec.valid.all()  # fallback: frame keeps every frame
    np.testing.assert_array_equal(rec.labels, np.tile([0.5, 0.0], (42, 1)))
    assert rec.extra["landmarks"].shape == (42, 68, 2) and np.isfinite(rec.extra["landmarks"]).all()
    np.testing.assert_allclose(rec.extra["landmarks"][0, 0], [181.418, 170.105], atol=1e-3)
    assert rec.crops[0].shape == (48, 48) and rec.crops[:].std() > 10
    assert [len(dm.dataset(s)) for s in ("train", "val")] == [3, 3]


def test_temporal_models_ignore_padding_and_masked_frames() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 10, 6)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False  # the second window ends after 7 frames (padding)
    garbage = x.clone()
    garbage[1, 7:] = 100.0
    for kind in ("lstm", "gru", "mean", "none"):
        args = {"hidden_size": 4, "num_layers": 2, "bidirectional": kind != "gru"} if kind in ("lstm", "gru") else {}
        model = TEMPORAL.build({"name": kind, **args}, in_features=6)
        a, b = model(x, mask), model(garbage, mask)
        assert a.shape == (2, 10, model.out_features)
        torch.testing.assert_close(a[mask], b[mask])  # the backward direction never sees the padding
    assert TEMPORAL.get("lstm").output_width(512, hidden_size=64, bidirectional=True) == 128
    assert TEMPORAL.get("none").output_width(512) == 512


def test_npz_member_maps_cache_entries_without_loading(tmp_path: Path) -> None:
    import pickle

    crops = np.random.default_rng(0).integers(0, 255, (40, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "entry.npz", crops=crops, status=np.zeros(40, np.uint8))
    member = NpzMember(tmp_path / "entry.npz", "crops")
    assert len(member) == 40 and member.shape == crops.shape
    np.testing.assert_array_equal(member[5:9], crops[5:9])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(member))[:], crops)  # re-mapped, not copied
    with pytest.raises(DataError, match="Cannot map missing.npy"):
        NpzMember(tmp_path / "entry.npz", "missing")


def _afew_va_copy(afew_va_set: Path, root: Path, edit) -> Path:
    """The generated AFEW-VA set with clip 001's annotation changed by ``edit(frames)`` (frame files linked)."""
    import json
    import shutil

    shutil.copytree(afew_va_set, root, symlinks=True)
    path = root / "001" / "001.json"
    doc = json.loads(path.read_text())
    edit(doc["frames"])
    path.write_text(json.dumps(doc))
    return root


def test_afew_va_values_out_of_range_are_refused_or_counted(afew_va_set: Path, tmp_path: Path) -> None:
    def fifty(frames: dict) -> None:
        frames[sorted(frames)[2]]["valence"] = 50  # the range is [-10, 10]: not 5.0 after rescaling

    root = _afew_va_copy(afew_va_set, tmp_path / "va", fifty)
    with pytest.raises(DataError, match=r"001\.json: frame \d+: valence 50 is outside AFEW-VA's range \[-10, 10\]"):
        read_afew_va_clip(root / "001")
    three = {"train": ["001"], "val": ["002"], "test": ["003"]}
    dm = AfewVaDataModule(str(root), split=three, on_bad_recording="skip", image={"size": 48, "channels": 1})
    plan = dm.sources()
    assert "001" not in [s.name for ss in plan.values() for s in ss] and "001" in dm.skipped


def test_afew_va_unlabelled_frames_are_counted(
    afew_va_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def holes(frames: dict) -> None:
        names = sorted(frames)
        frames[names[0]]["arousal"] = float("nan")
        del frames[names[1]]

    root = _afew_va_copy(afew_va_set, tmp_path / "va", holes)
    clip = read_afew_va_clip(root / "001")
    assert clip.unlabelled == 2 and np.isnan(clip.labels[:2]).any(axis=1).all()
    three = {"train": ["001"], "val": ["002"], "test": ["003"]}
    dm = AfewVaDataModule(str(root), split=three, image={"size": 48, "channels": 1})
    dm.sources()
    assert dm.unlabelled_frames == 2
    assert "AFEW-VA: 2 of 24 frames have no valence/arousal (not annotated, or NaN)" in capsys.readouterr().err
