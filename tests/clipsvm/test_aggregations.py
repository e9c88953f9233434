"""Clip aggregation, rescaling, RootSIFT and standardisation (emoframe.clipsvm.aggregations, .pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from emoframe.clipsvm.aggregations import aggregate, check_aggregations
from emoframe.clipsvm.pipeline import ClipAggregator, RootSIFT, clip_feature_pipeline
from emoframe.errors import DataError
from emoframe.registry import AGGREGATIONS, REGISTRIES, RecipeError


@pytest.fixture()
def clips() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(t, 3)) for t in (1, 4, 7, 12)]


def test_statistics_match_numpy(clips: list[np.ndarray]) -> None:
    expected = {
        "mean": [c.mean(0) for c in clips],
        "std": [c.std(0) for c in clips],
        "min": [c.min(0) for c in clips],
        "max": [c.max(0) for c in clips],
    }
    for name, rows in expected.items():
        np.testing.assert_allclose(aggregate(clips, [name]), np.stack(rows), rtol=1e-12)
    stat = np.concatenate([np.stack(expected[k]) for k in ("mean", "std", "min", "max")], axis=1)
    np.testing.assert_allclose(aggregate(clips, ["stat"]), stat, rtol=1e-12)
    np.testing.assert_allclose(aggregate(clips, ["stat_star"]), stat[:, :9], rtol=1e-12)  # STAT without max
    # concatenated in the order given
    np.testing.assert_allclose(aggregate(clips, ["max", "mean"]), np.hstack([stat[:, 9:], stat[:, :3]]), rtol=1e-12)


def test_one_frame_clip() -> None:
    frame = np.array([[2.0, -3.0, 0.5]])
    out = aggregate([frame], ["stat", "fft"])[0].reshape(5, 3)
    np.testing.assert_array_equal(out[1], 0.0)  # std of one frame
    for row in (0, 2, 3):
        np.testing.assert_array_equal(out[row], frame[0])
    np.testing.assert_array_equal(out[4], np.abs(frame[0]))  # the DFT of one sample is itself


def test_fft_values_and_lengths(clips: list[np.ndarray]) -> None:
    # hand-computed spectra: impulse -> |X| = 1 everywhere; alternating -> X = (0, 0, 4, 0); constant c -> |c|
    hand = np.array([[1.0, 1.0, 3.0], [0.0, -1.0, 3.0], [0.0, 1.0, 3.0], [0.0, -1.0, 3.0]])
    np.testing.assert_allclose(aggregate([hand], ["fft"])[0], [1.0, 1.0, 3.0])
    out = aggregate(clips, ["fft"])
    assert out.shape == (len(clips), 3)  # clips of 1, 4, 7 and 12 frames: one value per feature
    np.testing.assert_allclose(out, [np.abs(np.fft.fft(c, axis=0)).mean(0) for c in clips])
    padded = ClipAggregator(["fft"], fft_length=8).fit_transform(clips)
    np.testing.assert_allclose(padded[1], np.abs(np.fft.fft(np.vstack([clips[1], np.zeros((4, 3))]), axis=0)).mean(0))
    np.testing.assert_allclose(padded[3], np.abs(np.fft.fft(clips[3][:8], axis=0)).mean(0))  # truncated
    assert not np.allclose(padded[1], out[1])


def test_rootsift() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 10))
    x[2] = 0.0
    out = RootSIFT().fit_transform(x)
    np.testing.assert_allclose((out[[0, 1, 3, 4, 5]] ** 2).sum(axis=1), 1.0)  # ||out^2||_1 = 1
    np.testing.assert_array_equal(np.sign(out), np.sign(x))
    np.testing.assert_array_equal(out[2], 0.0)  # an all-zero row stays zero instead of NaN
    np.testing.assert_allclose(out[0], np.sign(x[0]) * np.sqrt(np.abs(x[0]) / np.abs(x[0]).sum()))


def test_scalers_fitted_on_training_clips_only(fer_faces: np.ndarray) -> None:
    """Real FER2013 faces, 8x8 pixels per frame, grouped into 3..7-frame clips; train and test clips disjoint."""
    frames = fer_faces.reshape(64, 8, 6, 8, 6).mean(axis=(2, 4)).reshape(64, 64) / 255.0
    cuts = np.cumsum([3, 5, 7, 4, 6, 3, 5, 7, 3, 5, 4, 6, 3])
    clips = np.split(frames, cuts)  # 14 clips, the last of 3 frames
    train, test = clips[:9], clips[9:]
    pipe = clip_feature_pipeline(["stat_star", "fft"]).fit(train)
    a_train, a_test = aggregate(train, ["stat_star", "fft"]), aggregate(test, ["stat_star", "fft"])
    rescale = pipe.named_steps["rescale"]
    np.testing.assert_allclose(rescale.data_min_, a_train.min(0))
    np.testing.assert_allclose(rescale.data_max_, a_train.max(0))
    scaled_train, scaled_test = rescale.transform(a_train), rescale.transform(a_test)
    varying = a_train.max(0) > a_train.min(0)
    np.testing.assert_allclose(scaled_train[:, varying].min(0), -1.0)
    np.testing.assert_allclose(scaled_train[:, varying].max(0), 1.0)
    span = a_train.max(0) - a_train.min(0)
    np.testing.assert_allclose(
        scaled_test[:, varying], (2 * (a_test - a_train.min(0)) / span - 1)[:, varying], rtol=1e-9, atol=1e-12
    )
    assert np.abs(scaled_test).max() > 1.0  # test clips are not clipped to the training range
    out_train = pipe.transform(train)
    np.testing.assert_allclose(out_train.mean(0), 0.0, atol=1e-9)  # standardised with training statistics
    standard = pipe.named_steps["standardize"]
    np.testing.assert_allclose(standard.mean_, RootSIFT().transform(scaled_train).mean(0))
    np.testing.assert_allclose(pipe.transform(test), standard.transform(RootSIFT().transform(scaled_test)))
    assert clone(pipe).get_params()["aggregate__aggregations"] == ["stat_star", "fft"]


def test_bad_clips_give_one_line_errors() -> None:
    good = np.ones((4, 3))
    cases = [
        ([good, np.ones((0, 3))], r"clips\[1\]: empty clip \(0 frames\)"),
        ([good, good, np.ones((5, 2))], r"clips\[2\]: 2 features per frame, expected 3 \(as clips\[0\]\)"),
        ([np.ones(3)], r"clips\[0\]: expected a \(frames, features\) array, got shape \(3,\)"),
        ([], r"clips: expected at least one clip"),
        ([good, np.full((2, 3), np.nan)], r"clips\[1\]: NaN or infinite"),
        (np.ones((4, 3)), r"clips: expected a list of \(frames, features\) arrays"),
    ]
    for bad, message in cases:
        with pytest.raises(DataError, match=message) as info:
            aggregate(bad, ["mean"])
        assert "\n" not in str(info.value)
    fitted = ClipAggregator(["mean"]).fit([good])
    with pytest.raises(DataError, match=r"clips\[0\]: 5 features per frame, expected 3 \(the width the pipeline"):
        fitted.transform([np.ones((2, 5))])


def test_bad_aggregation_names() -> None:
    with pytest.raises(
        RecipeError, match=r"Unknown aggregation 'stdev' at aggregations\[1\]\. Did you mean 'std'\?"
    ) as e:
        check_aggregations(["mean", "stdev"])
    assert "Valid: " + ", ".join(AGGREGATIONS.names()) in str(e.value)
    assert {"mean", "std", "min", "max", "stat", "stat_star", "fft"} <= set(AGGREGATIONS.names())
    with pytest.raises(RecipeError, match=r"aggregations\[1\]: 'mean' repeats 'mean', already given by 'stat'"):
        ClipAggregator(["stat", "mean"])
    with pytest.raises(RecipeError, match="expected a non-empty list of aggregation names"):
        ClipAggregator("stat")
    with pytest.raises(RecipeError, match="fft_length: expected a positive integer"):
        ClipAggregator(["fft"], fft_length=0)


def test_aggregations_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    """``emoframe list aggregations`` shows every aggregation with its docstring's first line."""
    from emoframe.cli import main

    assert REGISTRIES["aggregations"] is AGGREGATIONS
    assert main(["list", "aggregations"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("aggregations:\n")
    assert "stat_star            STAT*: mean, std, min concatenated" in out
    assert all(f"  {name} " in out for name in AGGREGATIONS.names())
