"""Post-processing: each step kept when a case needs it, not kept when it hurts, fitted on dev and applied to test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emoframe.errors import DataError
from emoframe.eval.va_postprocessing import PostProcessor, apply_postprocessors, fit_postprocessors
from emoframe.functional.concordance import concordance
from emoframe.registry import RecipeError

FPS = 25.0


def smooth_labels(seed: int, n_rec: int = 3, frames: int = 1500) -> list[np.ndarray]:
    """RECOLA-like gold standards: slowly varying (seconds-long) traces in about [-0.5, 0.5], one per recording."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_rec):
        t = np.arange(frames) / FPS
        trace = sum(
            rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(0.02, 0.3) * t + rng.uniform(0, 6))
            for _ in range(5)
        )
        out.append(trace + rng.uniform(-0.1, 0.1))
    return out


def ccc(preds: list[np.ndarray], labels: list[np.ndarray]) -> float:
    return float(concordance(torch.from_numpy(np.concatenate(preds)), torch.from_numpy(np.concatenate(labels))))


def rows(pp: PostProcessor) -> dict[str, dict]:
    return {r.step: r.__dict__ for r in pp.report}


def lead(labels: list[np.ndarray], frames: int) -> list[np.ndarray]:
    """Predictions that run ``frames`` ahead of the labels (the annotators' reaction lag): p[t] = y[t + frames]."""
    return [np.concatenate([y[frames:], np.full(frames, y[-1])]) for y in labels]


def test_shift_recovers_annotation_lag_and_generalises() -> None:
    dev, test = smooth_labels(0), smooth_labels(1)
    pp = PostProcessor().fit(lead(dev, 25), dev, FPS)  # labels lag the predictions by 1 s
    assert pp.shift == 25 and rows(pp)["shift"]["kept"] and rows(pp)["shift"]["parameter"] == pytest.approx(1.0)
    r = rows(pp)["shift"]
    assert r["ccc_after"] > r["ccc_before"] + 0.2 and pp.dev_ccc[1] > 0.9  # the padded first second limits it
    raw = lead(test, 25)
    assert ccc(pp.apply(raw), test) > ccc(raw, test) + 0.05


def test_centring_kept_for_biased_predictions() -> None:
    dev, test = smooth_labels(2), smooth_labels(3)
    pp = PostProcessor().fit([y + 0.4 for y in dev], dev, FPS)
    r = rows(pp)["centre"]
    assert r["kept"] and r["parameter"] == pytest.approx(-0.4, abs=1e-9) and r["ccc_after"] > r["ccc_before"] + 0.1
    assert pp.bias == pytest.approx(-0.4, abs=1e-9)
    assert ccc(pp.apply([y + 0.4 for y in test]), test) > 0.99


def test_scaling_kept_for_half_scale_predictions() -> None:
    dev = smooth_labels(4)
    m = np.concatenate(dev).mean()
    pp = PostProcessor().fit([0.5 * (y - m) + m for y in dev], dev, FPS)
    r = rows(pp)["scale"]
    assert r["kept"] and r["parameter"] == pytest.approx(2.0, rel=1e-6) and r["ccc_after"] > r["ccc_before"] + 0.05
    assert not rows(pp)["centre"]["kept"]  # already centred: zero bias is no improvement
    assert pp.dev_ccc[1] > 0.99


def test_median_filter_kept_for_noisy_predictions() -> None:
    dev, test = smooth_labels(5), smooth_labels(6)
    rng = np.random.default_rng(7)
    noisy = [y + rng.normal(0, 0.15, y.shape) for y in dev]
    pp = PostProcessor().fit(noisy, dev, FPS)
    r = rows(pp)["median"]
    assert r["kept"] and pp.median_window > 1 and r["ccc_after"] > r["ccc_before"] + 0.1
    assert r["parameter"] == pytest.approx(pp.median_window / FPS)
    noisy_test = [y + rng.normal(0, 0.15, y.shape) for y in test]
    assert ccc(pp.apply(noisy_test), test) > ccc(noisy_test, test) + 0.1


def test_steps_that_do_not_help_are_not_kept() -> None:
    rng = np.random.default_rng(8)
    labels = [rng.normal(0, 0.3, 800) for _ in range(3)]  # white: any filter or shift decorrelates it
    pp = PostProcessor().fit([y.copy() for y in labels], labels, FPS)
    assert [r.step for r in pp.report] == ["median", "centre", "scale", "shift"]
    assert not any(r.kept for r in pp.report)
    r = rows(pp)
    assert r["median"]["ccc_after"] < r["median"]["ccc_before"] and r["shift"]["ccc_after"] < r["shift"]["ccc_before"]
    assert r["centre"]["ccc_after"] == pytest.approx(r["centre"]["ccc_before"], abs=1e-12)  # zero bias: no gain
    assert (pp.median_window, pp.bias, pp.scale, pp.shift) == (1, 0.0, 1.0, 0)
    assert np.array_equal(pp.apply(labels)[0], labels[0])
    # anti-correlated, under-scaled predictions: rescaling to the label spread makes CCC more negative
    smooth = smooth_labels(9)
    pp = PostProcessor(max_median_s=0.0, max_shift_s=0.0).fit([-0.3 * y for y in smooth], smooth, FPS)
    r = rows(pp)["scale"]
    assert not r["kept"] and r["ccc_after"] < r["ccc_before"] < 0 and pp.scale == 1.0
    assert rows(pp)["median"]["parameter"] == pytest.approx(1 / FPS) and rows(pp)["shift"]["parameter"] == 0.0


def test_nan_labels_are_left_out() -> None:
    dev = smooth_labels(10)
    labels = [y.copy() for y in dev]
    labels[0][:300] = np.nan  # an unlabelled stretch; its predictions must not pull the bias
    preds = [y + 0.25 for y in dev]
    preds[0][:300] = 50.0
    pp = PostProcessor(max_median_s=0.0, max_shift_s=0.0).fit(preds, labels, FPS)
    assert pp.bias == pytest.approx(-0.25, abs=1e-9)


def test_dict_round_trip_survives_json_and_applies_identically() -> None:
    dev = smooth_labels(11)
    rng = np.random.default_rng(12)
    preds = [0.5 * np.concatenate([y[10:], np.full(10, y[-1])]) + 0.2 + rng.normal(0, 0.1, y.shape) for y in dev]
    pp = PostProcessor().fit(preds, dev, FPS)
    assert sum(r.kept for r in pp.report) >= 3
    state = json.loads(json.dumps(pp.to_dict()))  # plain types only
    back = PostProcessor.from_dict(state)
    assert back == pp
    assert all(np.array_equal(a, b) for a, b in zip(back.apply(preds), pp.apply(preds)))
    with pytest.raises(RecipeError, match=r"unknown key\(s\) \['window'\]"):
        PostProcessor.from_dict({**state, "window": 3})
    with pytest.raises(RecipeError, match="median_window: expected an odd integer"):
        PostProcessor.from_dict({**state, "median_window": 4})


def test_multi_target_helpers_fit_each_dimension() -> None:
    arousal, valence = smooth_labels(13), smooth_labels(14)
    labels = [np.stack([a, v], axis=1) for a, v in zip(arousal, valence)]
    preds = [np.stack([a + 0.3, 0.5 * v], axis=1) for a, v in zip(arousal, valence)]
    fitted = fit_postprocessors(preds, labels, ["arousal", "valence"], FPS, max_shift_s=2.0)
    assert fitted["arousal"].bias == pytest.approx(-0.3, abs=1e-9) and fitted["arousal"].max_shift_s == 2.0
    assert rows(fitted["valence"])["scale"]["kept"]
    out = apply_postprocessors(fitted, preds)
    assert out[0].shape == preds[0].shape
    for d in range(2):
        assert ccc([o[:, d] for o in out], [y[:, d] for y in labels]) > 0.99


def test_bad_inputs_fail_with_one_clear_line() -> None:
    y = smooth_labels(15, n_rec=2, frames=100)
    with pytest.raises(DataError, match="list of per-recording 1-D arrays"):
        PostProcessor().fit(y[0], y[0], FPS)
    with pytest.raises(DataError, match="recording 1 has 99 predictions but 100 labels"):
        PostProcessor().fit([y[0], y[1][:99]], y, FPS)
    with pytest.raises(DataError, match="recording 0 has a non-finite value at frame 3"):
        PostProcessor().fit([np.where(np.arange(100) == 3, np.nan, y[0]), y[1]], y, FPS)
    with pytest.raises(DataError, match=r"expected \(T, 2\) arrays"):
        fit_postprocessors(y, y, ["arousal", "valence"], FPS)
    with pytest.raises(RecipeError, match="max_shift_s: expected >= 0"):
        PostProcessor(max_shift_s=-1.0)
