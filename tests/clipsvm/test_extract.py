"""`emoframe extract` (per-frame backbone features with test-time augmentation) and `emoframe svm`, through the CLI.

A tiny small_cnn (widths 8, 16, 32) is fitted for one epoch on 1,000 real FER2013 images; its features are
extracted from FER2013 (each image a one-frame clip) and from the generated AFEW-layout clip set
(tests/fixtures/make_afew.py: real FER2013 faces in MJPG clips, three classes), on which the clip SVMs are fitted.
The TTA views are checked against OpenCV's warpAffine, and the averaged features against a direct computation.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emoframe.backbones.small_cnn import SmallCNN
from emoframe.cli import main
from emoframe.clipsvm import extract as extract_module
from emoframe.clipsvm.extract import tta_features
from emoframe.clipsvm.feature_files import load_features, write_features
from emoframe.clipsvm.svm import SVMEnsemble, load_model
from emoframe.data.fer2013 import Fer2013DataModule
from emoframe.errors import DataError
from emoframe.labels import EMOTIONS
from emoframe.tta import PAPER_TTA, TTATransform, tta_views

REPO = Path(__file__).resolve().parents[2]
FER_RECIPE = str(REPO / "recipes" / "fer2013_small_cnn.yaml")
AFEW_RECIPE = str(REPO / "recipes" / "afew_cnn_lstm.yaml")
SVM_RECIPE = str(REPO / "recipes" / "afew_stat_svm.yaml")
WIDTHS = [8, 16, 32]
SUBSET = 70  # images per split for extraction


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, fer2013_zip: Path) -> Path:
    """`emoframe fit` of a tiny small_cnn, one epoch on 1,000 real FER2013 images (and 1,000 to validate)."""
    runs = tmp_path_factory.mktemp("runs")
    args = [
        f"data.root={fer2013_zip}",
        f"run.dir={runs}",
        "data.loader.num_workers=0",
        "data.subset=1000",
        f"model.backbone.widths={WIDTHS}",
        "trainer.max_epochs=1",
        "scheduler.warmup_epochs=0",
        "loggers.wandb=null",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    assert main(["fit", FER_RECIPE, *args]) == 0
    path = runs / "fer2013_small_cnn" / "version_0" / "checkpoints" / "last.ckpt"
    assert path.is_file()
    return path


def fer_extract(ckpt: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "extract",
            "--ckpt",
            str(ckpt),
            f"data.subset={SUBSET}",
            "data.loader.num_workers=0",
            "--output",
            str(out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def fer_plain(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Features of the FER2013 train and val subsets without TTA."""
    out = tmp_path_factory.mktemp("fer_tta1")
    assert fer_extract(ckpt, out, "--tta", "1") == 0
    return out


@pytest.fixture(scope="module")
def fer_val(fer2013_zip: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The val subset's uint8 images, labels and names, as the datamodule picks them."""
    dm = Fer2013DataModule(str(fer2013_zip), subset=SUBSET, loader={"num_workers": 0})
    ds = dm.dataset("val")
    return ds.images, ds.labels, ds.names


@pytest.fixture(scope="module")
def backbone(ckpt: Path) -> SmallCNN:
    """The checkpoint's backbone, loaded here independently of emoframe.checkpoints."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    net = SmallCNN(in_chans=1, widths=WIDTHS)
    net.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")})
    return net.eval()


def normalised(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 255.0 - 0.5) / 0.5


def cv2_view(image: np.ndarray, t: TTATransform) -> np.ndarray:
    """The reference view: flip, then OpenCV's rotation and scale about the pixel-centre centre, edges repeated."""
    h, w = image.shape
    src = np.ascontiguousarray(image[:, ::-1]) if t.flip else image
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), t.angle, t.scale)
    return cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def last_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("emoframe: error: "), lines[-5:]
    return lines[-1]


# --- extraction -----------------------------------------------------------------------------------------
def test_extract_writes_ragged_features_of_the_backbone(
    fer_plain: Path, ckpt: Path, fer_val: tuple, backbone: SmallCNN
) -> None:
    images, labels, names = fer_val
    for split in ("train", "val"):
        f = load_features(fer_plain / f"{split}.npz")
        assert f.features.dtype == np.float32 and f.features.shape == (SUBSET, WIDTHS[-1])
        np.testing.assert_array_equal(f.offsets, np.arange(SUBSET + 1))  # one-frame clips
        np.testing.assert_array_equal(f.frame_index, np.zeros(SUBSET))
        assert f.meta["tta"] == [{"flip": False, "angle": 0.0, "scale": 1.0}] and f.meta["split"] == split
        assert f.meta["checkpoint"]["path"] == str(ckpt.resolve()) and len(f.meta["checkpoint"]["sha256"]) == 64
    val = load_features(fer_plain / "val.npz")
    np.testing.assert_array_equal(val.labels, labels)
    np.testing.assert_array_equal(val.names, names)
    assert len(val.clips()) == SUBSET and val.clips()[3].shape == (1, WIDTHS[-1])
    with torch.inference_mode():
        direct = backbone(torch.from_numpy(normalised(images)).unsqueeze(1)).numpy()
    np.testing.assert_allclose(val.features, direct, rtol=1e-4, atol=1e-5)


def test_tta_views_match_opencv_and_run_in_one_forward_pass(fer_val: tuple, backbone: SmallCNN) -> None:
    assert len(PAPER_TTA) == 18 and PAPER_TTA[0] == TTATransform() and PAPER_TTA[1] == TTATransform(flip=True)
    assert {(t.flip, t.angle, t.scale) for t in PAPER_TTA} == {
        (f, a, s) for f in (False, True) for a in (0.0, -10.0, 10.0) for s in (0.9, 1.0, 1.1)
    }
    faces = normalised(fer_val[0][:4])
    views = tta_views(torch.from_numpy(faces).unsqueeze(1), PAPER_TTA).numpy().reshape(4, 18, 48, 48)
    for i, face in enumerate(faces):
        for k, t in enumerate(PAPER_TTA):
            np.testing.assert_allclose(views[i, k], cv2_view(face, t), atol=2e-3, err_msg=str(t))
    assert np.abs(views[:, 4] - faces).mean() > 0.05  # a 10-degree rotation really moves the face
    calls: list[tuple[int, ...]] = []
    hook = backbone.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    try:
        with torch.inference_mode():
            tta_features(backbone, torch.from_numpy(faces).unsqueeze(1), PAPER_TTA)
    finally:
        hook.remove()
    assert calls == [(4 * 18, 1, 48, 48)]


def test_tta_features_are_the_mean_of_the_views_features(
    ckpt: Path, fer_plain: Path, fer_val: tuple, backbone: SmallCNN, tmp_path: Path
) -> None:
    assert fer_extract(ckpt, tmp_path, "--splits", "val") == 0  # default: the paper's 18 views
    tta = load_features(tmp_path / "val.npz")
    assert len(tta.meta["tta"]) == 18
    plain = load_features(fer_plain / "val.npz")
    assert tta.features.shape == plain.features.shape
    assert not np.allclose(tta.features, plain.features, atol=1e-3)
    faces = normalised(fer_val[0])
    per_view = []
    with torch.inference_mode():
        for t in PAPER_TTA:
            warped = np.stack([cv2_view(face, t) for face in faces])
            per_view.append(backbone(torch.from_numpy(warped).unsqueeze(1)).numpy())
    np.testing.assert_allclose(tta.features, np.mean(per_view, axis=0), rtol=1e-3, atol=2e-4)


def test_killed_extraction_is_not_complete_and_rerun_skips_done_splits(
    ckpt: Path, fer_plain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = extract_module.tta_features
    calls = []

    def dies_in_val(*args, **kwargs):  # train is 3 batches of <= 32 frames; die in val's second batch
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "tta_features", dies_in_val)
    with pytest.raises(KeyboardInterrupt):
        fer_extract(ckpt, tmp_path, "--tta", "1", "--batch-size", "32")
    monkeypatch.setattr(extract_module, "tta_features", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.npz"]  # no val.npz, no temporary left
    # What SIGKILL would leave mid-write (temporaries), and a val.npz copied non-atomically (half the bytes):
    (tmp_path / ".val.frames.tmp-99999").write_bytes(b"\0" * 640)
    (tmp_path / ".val.npz.tmp-99999").write_bytes((tmp_path / "train.npz").read_bytes()[:500])
    (tmp_path / "val.npz").write_bytes((tmp_path / "train.npz").read_bytes()[:3000])
    with pytest.raises(DataError, match="incomplete or damaged feature file"):
        load_features(tmp_path / "val.npz")
    before = (tmp_path / "train.npz").stat().st_mtime_ns
    capsys.readouterr()
    assert fer_extract(ckpt, tmp_path, "--tta", "1", "--batch-size", "32") == 0
    err = capsys.readouterr().err
    assert "Skipping train" in err and "Re-extracting val" in err
    assert (tmp_path / "train.npz").stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.npz", "val.npz"]
    for split in ("train", "val"):  # the same numbers as an uninterrupted extraction (batches of 64)
        np.testing.assert_allclose(
            load_features(tmp_path / f"{split}.npz").features,
            load_features(fer_plain / f"{split}.npz").features,
            rtol=1e-5,
            atol=1e-6,
        )
    assert fer_extract(ckpt, tmp_path, "--tta", "1") == 0  # all complete: nothing recomputed
    assert (tmp_path / "train.npz").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tta", "19"], "--tta: expected 1 to 18 views of the paper's set, got 19"),
        (["--tta", "[{angel: 5}]"], "--tta[0]: unknown key 'angel'. Accepted: flip, angle, scale"),
        (["--splits", "train,bogus"], "--splits: unknown split 'bogus'"),
        (["data.subset=50"], "holds features of other settings (data differ)"),
        (["--tta", "2"], "holds features of other settings (tta differ)"),
    ],
)
def test_extract_mistakes_fail_in_one_line(
    args: list[str], message: str, ckpt: Path, fer_plain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {p: p.stat().st_mtime_ns for p in fer_plain.iterdir()}
    assert fer_extract(ckpt, fer_plain, "--tta", "1", *args) == 2
    assert message in last_error(capsys)
    assert {p: p.stat().st_mtime_ns for p in fer_plain.iterdir()} == files


def test_extract_without_checkpoint_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", "--ckpt", str(tmp_path / "none.ckpt"), "--output", str(tmp_path)]) == 2
    assert "Checkpoint not found" in last_error(capsys)
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    assert main(["extract", "--ckpt", str(tmp_path / "bad.ckpt"), "--output", str(tmp_path)]) == 2
    assert "not a readable checkpoint" in last_error(capsys)


# --- clips and SVMs -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def afew_features(ckpt: Path, afew_set: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two feature sets of the AFEW-layout clips (6 views and none), train/val/test (test = Heldout_AFEW)."""
    out = tmp_path_factory.mktemp("afew_features")
    common = [AFEW_RECIPE, "--ckpt", str(ckpt), f"data.root={afew_set}", "data.folders.test=Heldout_AFEW"]
    common += ["data.loader.num_workers=0", "data.workers=1", "--splits", "train,val,test"]
    sets = {"tta6": out / "tta6", "tta1": out / "tta1"}
    assert main(["extract", *common, "--tta", "6", "--output", str(sets["tta6"])]) == 0
    assert main(["extract", *common, "--tta", "1", "--output", str(sets["tta1"])]) == 0
    return sets


@pytest.mark.slow  # the AFEW clips' features (afew_features)
def test_clip_features_hold_every_face_frame_of_every_clip(afew_features: dict[str, Path], afew_set: Path) -> None:
    f = load_features(afew_features["tta6"] / "train.npz")
    clips = sorted(afew_set.glob("Train_AFEW/*/*.avi"))
    assert sorted(f.names) == sorted(f"{p.parent.name}/{p.stem}" for p in clips)
    assert [EMOTIONS[k].capitalize() for k in f.labels] == [str(n).split("/")[0] for n in f.names]
    lengths = np.diff(f.offsets)
    total = 0
    for name, n, start in zip(f.names, lengths, f.offsets[:-1]):
        capture = cv2.VideoCapture(str(afew_set / "Train_AFEW" / f"{name}.avi"))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        index = f.frame_index[start : start + n]
        assert 1 <= n <= frames and (np.diff(index) > 0).all() and index[-1] < frames  # face frames, in order
        total += frames
    assert lengths.sum() >= 0.9 * total  # the clips' faces are found in almost every frame
    assert f.features.shape == (lengths.sum(), WIDTHS[-1])
    other = load_features(afew_features["tta1"] / "train.npz")
    np.testing.assert_array_equal(other.offsets, f.offsets)
    assert not np.allclose(other.features, f.features, atol=1e-3)


def read_report(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as f:
        return {row["model"].split(" ")[0]: row for row in csv.DictReader(f)}


@pytest.mark.slow  # the AFEW clips' features (afew_features)
def test_svm_fits_beats_majority_and_predicts(
    afew_features: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AFEW_FEATURES_A", raising=False)
    sets = [f"features.net_a={afew_features['tta6']}", f"features.net_b={afew_features['tta1']}", f"run.dir={tmp_path}"]
    assert main(["svm", SVM_RECIPE, *sets]) == 0
    run = tmp_path / "afew_stat_svm" / "version_0"
    report = read_report(run / "report.csv")
    assert set(report) == {"net_a", "net_b", "ensemble", "ensemble+prior", "majority_class"}
    majority = float(report["majority_class"]["val_accuracy"])
    assert majority == pytest.approx(1 / 3, abs=1e-3)  # three classes, three validation clips each
    assert float(report["ensemble+prior"]["val_accuracy"]) > majority, report
    assert float(report["ensemble"]["val_accuracy"]) > majority, report
    assert report["net_a"]["aggregations"] == "stat_star+fft" and float(report["net_a"]["C"]) > 0
    confusion = np.loadtxt(run / "val_confusion.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    assert confusion.sum() == 9
    assert np.trace(confusion) / 9 == pytest.approx(float(report["ensemble+prior"]["val_accuracy"]), abs=1e-4)
    model = load_model(run / "svm.joblib")
    assert isinstance(model, SVMEnsemble) and list(model.members_) == ["net_a", "net_b"] and model.prior == "train"
    capsys.readouterr()
    assert main(["svm", SVM_RECIPE, *sets, "--predict", "--split", "test"]) == 0
    out = capsys.readouterr().out
    scores = run / "predict" / "test_scores.csv"
    with scores.open() as f:
        rows = list(csv.DictReader(f))
    test = load_features(afew_features["tta6"] / "test.npz")
    assert [r["clip"] for r in rows] == list(test.names) and len(rows) == 9
    assert [r["target"] for r in rows] == [EMOTIONS[k] for k in test.labels]
    # the same from Python: emoframe.svm / emoframe.svm_scores take the CLI's options
    import emoframe

    run_dir, fitted_rows = emoframe.svm(SVM_RECIPE, [*sets[:2], f"run.dir={tmp_path / 'py'}"])
    assert {r["model"].split(" ")[0] for r in fitted_rows} == set(report)
    path, accuracy = emoframe.svm_scores(SVM_RECIPE, [*sets[:2], f"run.dir={tmp_path / 'py'}"], split="test")
    assert path == run_dir / "predict" / "test_scores.csv" and path.read_text() == scores.read_text()
    columns = [f"score_{EMOTIONS[c]}" for c in model.classes_]
    for r in rows:
        assert r["pred"] == columns[int(np.argmax([float(r[c]) for c in columns]))].removeprefix("score_")
    accuracy = np.mean([r["pred"] == r["target"] for r in rows])
    assert f"test_accuracy\t{accuracy:.4f}" in out


def test_svm_mistakes_fail_in_one_line(
    fer_plain: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AFEW_FEATURES_B", raising=False)
    mixed = tmp_path / "mixed"  # a set whose val split came from a network of another width
    mixed.mkdir()
    (mixed / "train.npz").write_bytes((fer_plain / "train.npz").read_bytes())
    val = load_features(fer_plain / "val.npz")
    write_features(mixed / "val.npz", val.features[:, :8], np.diff(val.offsets), val.labels, val.names,
                   val.frame_index, val.meta)  # fmt: skip
    fewer = tmp_path / "fewer"  # a second network's features of other clips (the last val clip missing)
    fewer.mkdir()
    (fewer / "train.npz").write_bytes((fer_plain / "train.npz").read_bytes())
    n = int(val.offsets[-2])
    write_features(fewer / "val.npz", val.features[:n], np.diff(val.offsets)[:-1], val.labels[:-1], val.names[:-1],
                   val.frame_index[:n], val.meta)  # fmt: skip
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train.npz").write_bytes((fer_plain / "train.npz").read_bytes()[:-100])
    runs = tmp_path / "runs"
    cases = [
        ([f"features.net_a={tmp_path / 'none'}"], f"features.net_a: no feature folder {tmp_path / 'none'}"),
        ([f"features.net_a={mixed}"], "features.net_a: val.npz has 8 features per frame but train.npz has 32"),
        ([f"features.net_a={broken}"], "train.npz: incomplete or damaged feature file"),
        (
            [f"features.net_a={fer_plain}", f"features.net_b={fewer}"],
            f"features.net_b: {fewer / 'val.npz'} holds other clips than features.net_a ({fer_plain / 'val.npz'}): "
            f"it lacks '{val.names[-1]}'",
        ),
        (
            [f"features.net_a={fer_plain}", "svm.members.net_a.aggregations=[stat_star, fftt]"],
            "Unknown aggregation 'fftt' at svm.members.net_a.aggregations[1]. Did you mean 'fft'?",
        ),
        ([f"features.net_a={fer_plain}", "svm.members.net_a.features=net_c"], "unknown feature set 'net_c'"),
        ([f"features.net_a={fer_plain}", "splits.eval=train"], "splits.eval: 'train' is also fitted on"),
        ([f"features.net_a={fer_plain}", "svm.prior=often"], "svm.prior"),
        ([f"features.net_a={fer_plain}", "svmm.prior=train"], "Unknown key 'svmm' at the top of the recipe"),
        ([f"features.net_a={fer_plain}"], "has 1 training clips, fewer than the 5 cross-validation folds"),
    ]
    for overrides, message in cases:
        assert main(["svm", SVM_RECIPE, *overrides, f"run.dir={runs}"]) == 2, overrides
        assert message in last_error(capsys), overrides
    assert not runs.exists()
    assert main(["svm", SVM_RECIPE, f"features.net_a={fer_plain}", "--predict", f"run.dir={runs}"]) == 2
    assert "No svm.joblib under" in last_error(capsys)


def test_svm_recipes_resolve_and_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every SVM recipe in recipes/ (those with an svm: section) composes and passes the checks made before reading."""
    from omegaconf import OmegaConf

    from emoframe.clipsvm.run import plan_from_recipe
    from emoframe.config import load_svm_recipe

    recipes = [p for p in sorted((REPO / "recipes").glob("*.yaml")) if "svm" in OmegaConf.load(p)]
    assert [p.name for p in recipes] == ["afew_stat_svm.yaml"]
    monkeypatch.setenv("AFEW_FEATURES_A", str(tmp_path / "a"))
    monkeypatch.delenv("AFEW_FEATURES_B", raising=False)
    plan = plan_from_recipe(load_svm_recipe(recipes[0]))
    assert plan.member_sets == {"net_a": "net_a"} and plan.fit_splits == ["train"] and plan.eval_split == "val"
    assert plan.ensemble.prior == "train" and plan.ensemble.members["net_a"].aggregations == ("stat_star", "fft")
    monkeypatch.setenv("AFEW_FEATURES_B", str(tmp_path / "b"))
    assert plan_from_recipe(load_svm_recipe(recipes[0])).member_sets == {"net_a": "net_a", "net_b": "net_b"}
