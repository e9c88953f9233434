"""Clip SVMs, their score ensemble and class-prior weighting (emoframe.clipsvm.svm), on real FER2013 faces.

Pseudo-clips: 3..12 real faces of one class stand in for the frames of a video, with a 288-value HOG per
face standing in for a CNN's penultimate layer. Training clips come from FER2013's Training images,
held-out clips from PublicTest. The faces are read straight from the zip (about 1,000 JPEGs) rather than
through ``load_fer2013``, whose first read decodes all 35,887 images.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest

from emoframe.clipsvm.aggregations import aggregate
from emoframe.clipsvm.svm import (
    DEFAULT_C_GRID,
    ClipSVM,
    SVMEnsemble,
    build_svm_ensemble,
    load_model,
    prior_weights,
)
from emoframe.errors import DataError
from emoframe.labels import EMOTIONS
from emoframe.registry import RecipeError

Clips = list[np.ndarray]


def _read_faces(zip_path: Path, prefix: str, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        picked = [
            (n, k) for k, e in enumerate(EMOTIONS) for n in [m for m in names if m.startswith(prefix + e)][:per_class]
        ]
        faces = [cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n, _ in picked]
    return np.stack(faces), np.array([k for _, k in picked])


def _pseudo_clips(features: np.ndarray, labels: np.ndarray, seed: int) -> tuple[Clips, np.ndarray]:
    """Consecutive faces of one class grouped into clips of 3..12 frames (a short tail is dropped)."""
    rng = np.random.default_rng(seed)
    clips, clip_labels = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        start = 0
        while len(idx) - start >= 3:
            n = int(rng.integers(3, 13))
            clips.append(features[idx[start : start + n]])
            clip_labels.append(c)
            start += n
    return clips, np.array(clip_labels)


@pytest.fixture(scope="module")
def data(fer2013_zip: Path) -> dict[str, object]:
    from emoframe.features import HogFeatures

    hog = HogFeatures(window=48, step=48, cell=8)  # one window: 6x6 cells x 8 orientations = 288 values
    train_faces, train_y = _read_faces(fer2013_zip, "train/", 60)
    test_faces, test_y = _read_faces(fer2013_zip, "test/", 80)
    train, train_labels = _pseudo_clips(hog(train_faces), train_y, seed=0)
    test, test_labels = _pseudo_clips(hog(test_faces), test_y, seed=1)
    pixels = train_faces.reshape(-1, 12, 4, 12, 4).mean(axis=(2, 4)).reshape(len(train_faces), 144) / 255.0
    train_pixels, _ = _pseudo_clips(pixels, train_y, seed=0)  # the same clips, another per-frame feature
    return {"train": train, "y": train_labels, "test": test, "test_y": test_labels, "train_pixels": train_pixels}


@pytest.fixture(scope="module")
def svm(data: dict) -> ClipSVM:
    return ClipSVM(["stat_star"]).fit(data["train"], data["y"])


@pytest.fixture(scope="module")
def ensemble(data: dict) -> SVMEnsemble:
    members = {"stat_star": ClipSVM(["stat_star"]), "mean_fft": ClipSVM(["mean", "fft"])}
    return SVMEnsemble(members).fit(data["train"], data["y"])


def test_cv_picks_c_from_grid_and_beats_majority(data: dict, svm: ClipSVM) -> None:
    results = svm.cv_results_
    grid = list(results["param_svm__C"])
    assert grid == sorted(DEFAULT_C_GRID) and svm.best_C_ in DEFAULT_C_GRID
    scores = results["mean_test_score"]
    assert svm.best_C_ == grid[int(np.flatnonzero(scores == scores.max())[0])]  # ties go to the smallest C
    assert svm.cv_accuracy_ == pytest.approx(scores.max())
    np.testing.assert_array_equal(svm.classes_, np.arange(7))
    # refitted on all training clips: the rescaling saw exactly their aggregated features
    np.testing.assert_allclose(svm.pipeline_.named_steps["rescale"].data_min_, aggregate(data["train"]).min(0))
    majority = np.bincount(data["y"]).argmax()
    baseline = np.mean(data["test_y"] == majority)
    accuracy = svm.score(data["test"], data["test_y"])
    assert accuracy >= baseline + 0.15, (accuracy, baseline)
    assert svm.decision_function(data["test"]).shape == (len(data["test"]), 7)


def test_two_classes_give_two_score_columns(data: dict) -> None:
    keep = np.isin(data["y"], [3, 6])  # happy, neutral
    clips = [c for c, k in zip(data["train"], keep) if k]
    model = ClipSVM(["mean"], c_grid=[0.01, 0.1]).fit(clips, data["y"][keep])
    scores = model.decision_function(clips[:4])
    assert scores.shape == (4, 2)
    np.testing.assert_allclose(scores[:, 0], -scores[:, 1])
    np.testing.assert_array_equal(model.predict(clips[:4]), np.array([3, 6])[scores.argmax(1)])


def test_ensemble_averages_standardised_member_scores(data: dict, ensemble: SVMEnsemble) -> None:
    test = data["test"]
    members = ensemble.member_scores(test)
    assert list(members) == ["stat_star", "mean_fft"]
    for name, scores in members.items():
        member = ensemble.members_[name]
        train_raw = member.decision_function(data["train"])
        expected = (member.decision_function(test) - train_raw.mean()) / train_raw.std()
        np.testing.assert_allclose(scores, expected)
        # one mean and std per member: its own class ranking is unchanged
        np.testing.assert_array_equal(scores.argmax(1), member.decision_function(test).argmax(1))
    np.testing.assert_allclose(ensemble.decision_function(test), (members["stat_star"] + members["mean_fft"]) / 2)
    assert ensemble.members["stat_star"] is not ensemble.members_["stat_star"]  # the given estimators stay unfitted
    assert ensemble.score(test, data["test_y"]) > np.mean(data["test_y"] == np.bincount(data["y"]).argmax())


def test_ensemble_over_feature_sets_by_name(data: dict) -> None:
    members = {"hog": ClipSVM(["mean"], c_grid=[0.01, 0.1]), "pixels": ClipSVM(["mean"], c_grid=[0.01, 0.1])}
    features = {"hog": data["train"], "pixels": data["train_pixels"]}
    model = SVMEnsemble(members).fit(features, data["y"])
    assert model.members_["pixels"].pipeline_[0].n_frame_features_ == 144
    assert model.predict(features).shape == (len(data["y"]),)
    with pytest.raises(DataError, match=r"features: no clips for member 'pixels'; got keys hog$"):
        model.predict({"hog": data["train"]})
    with pytest.raises(DataError, match=r"features\['pixels'\]\[0\]: 288 features per frame, expected 144"):
        model.predict({"hog": data["train"], "pixels": data["train"]})
    with pytest.raises(DataError, match=r"same clips, got different counts \(hog: \d+, pixels: 5\)"):
        model.predict({"hog": data["train"], "pixels": data["train_pixels"][:5]})


def test_paper_class_weights() -> None:
    """Table 5: sqrt of the EmotiW 2017 test counts (An Di Fe Ha Ne Sa Su), normalised, gives its weight row."""
    weights = prior_weights([98, 40, 70, 144, 193, 80, 28])
    np.testing.assert_allclose(weights.round(2), [0.15, 0.10, 0.13, 0.19, 0.21, 0.14, 0.08])
    assert weights.sum() == pytest.approx(1.0)
    with pytest.raises(RecipeError, match="prior: expected a positive count or frequency per class"):
        prior_weights([3, 0, 2])


def test_prior_weighting_moves_predictions_to_frequent_classes(data: dict, ensemble: SVMEnsemble) -> None:
    test = data["test"]
    plain = ensemble.decision_function(test)
    counts = [10, 10, 10, 400, 10, 10, 10]  # happy much more frequent than the rest
    try:
        ensemble.set_params(prior=counts)  # the prior is applied at prediction time: no refit
        weighted = ensemble.decision_function(test)
        predicted = ensemble.predict(test)
        weights = ensemble.class_weights()
        ensemble.set_params(prior="train")
        train_weights = ensemble.class_weights()
    finally:
        ensemble.set_params(prior=None)
    np.testing.assert_allclose(weighted, plain + np.log(weights))  # log of softmax(scores) * weights, shifted
    np.testing.assert_allclose(weights, np.sqrt(counts) / np.sqrt(counts).sum())
    np.testing.assert_allclose(train_weights, np.sqrt(np.bincount(data["y"])) / np.sqrt(np.bincount(data["y"])).sum())
    before = plain.argmax(1)
    changed = predicted != before
    assert changed.any()
    assert (predicted[changed] == 3).all()  # every changed prediction moved to the frequent class
    assert (predicted == 3).sum() > (before == 3).sum()


def test_save_load_round_trip(data: dict, svm: ClipSVM, ensemble: SVMEnsemble, tmp_path: Path) -> None:
    for model, name in ((svm, "svm.joblib"), (ensemble, "run/ensemble.joblib")):
        path = model.save(tmp_path / name)
        loaded = load_model(path)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(loaded.decision_function(data["test"]), model.decision_function(data["test"]))
    with pytest.raises(DataError, match="SVM model not found at"):
        load_model(tmp_path / "missing.joblib")
    (tmp_path / "garbage.joblib").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a readable joblib file"):
        load_model(tmp_path / "garbage.joblib")
    joblib.dump({"weights": [1, 2]}, tmp_path / "other.joblib")
    with pytest.raises(DataError, match="not an emoframe SVM file"):
        load_model(tmp_path / "other.joblib")


def test_bad_training_data_one_line_errors(data: dict) -> None:
    clips, y = data["train"], data["y"]
    few = np.flatnonzero(y == 1)[3:]  # keep three disgust clips
    keep = np.setdiff1d(np.arange(len(y)), few)
    with pytest.raises(DataError, match=r"class 1 \(disgust\) has 3 training clips, fewer than the 5 cross-validation"):
        ClipSVM().fit([clips[i] for i in keep], y[keep])
    with pytest.raises(DataError, match=r"clips\[2\]: empty clip"):
        ClipSVM().fit([*clips[:2], np.zeros((0, 288)), *clips[3:]], y)
    with pytest.raises(DataError, match=r"labels of clips: expected one label per clip \(\d+\), got shape \(3,\)"):
        ClipSVM().fit(clips, y[:3])
    with pytest.raises(DataError, match="at least two classes"):
        ClipSVM().fit(clips[:6], np.zeros(6, dtype=int))
    for bad in (
        lambda: ClipSVM(["stat", "maxx"]),
        lambda: ClipSVM(c_grid=[0.1, -1.0]),
        lambda: ClipSVM(folds=1),
        lambda: SVMEnsemble({"a": ClipSVM()}, prior="test"),
    ):
        with pytest.raises(RecipeError) as info:
            bad()
        assert "\n" not in str(info.value)


def test_build_from_recipe() -> None:
    cfg = {"prior": "train", "members": {"vgg_face": {"aggregations": ["stat_star", "fft"], "c_grid": [0.001, 0.01]}}}
    model = build_svm_ensemble(cfg)
    assert model.prior == "train"
    assert model.members["vgg_face"].get_params()["aggregations"] == ("stat_star", "fft")
    cases = [
        ({"members": {"a": {"c_gird": [1.0]}}}, r"Unknown key svm\.members\.a\.c_gird .*Did you mean 'c_grid'\?"),
        (
            {"members": {"a": {"aggregations": ["mean", "mx"]}}},
            r"Unknown aggregation 'mx' at svm\.members\.a\.aggregations\[1\]",
        ),
        ({"members": {"a": {"c_grid": []}}}, r"svm\.members\.a\.c_grid: expected a non-empty list"),
        ({"members": {"a": {}}, "prior": [1, 2]}, None),
        ({"members": {"a": {}}, "prior": "uniform"}, r"svm\.prior: expected null, 'train' or a list"),
        ({"members": {}}, r"svm\.members: expected a non-empty mapping"),
        ({"members": {"a": {}}, "folds": 5}, r"Unknown key svm\.folds\. Accepted: members, prior"),
    ]
    for bad, message in cases:
        if message is None:
            build_svm_ensemble(bad)  # a prior's length is checked against the classes at fit time
            continue
        with pytest.raises(RecipeError, match=message):
            build_svm_ensemble(bad)
