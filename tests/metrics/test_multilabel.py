"""Window re-sampling, the class-weighted BCE and the multi-label metrics, each against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from emoframe.data.resampling import LabelledFrames, count_table, frequent_labels, resample_windows
from emoframe.errors import DataError
from emoframe.losses.multilabel import WeightedBCE
from emoframe.metrics.multilabel import MultilabelMetrics
from emoframe.registry import LOSSES, RecipeError

N, H, S = [1, 0, 0], [0, 1, 0], [0, 0, 1]  # neutral, happy, sad


def recording(rows: list[list[float]]) -> LabelledFrames:
    labels = np.array(rows, np.float32)
    return LabelledFrames(labels, np.ones(len(labels), bool))


def test_windows_with_rare_labels_and_no_frequent_ones_are_repeated() -> None:
    nan = [np.nan] * 3
    rec = recording([N, N, N, N, H, H, S, nan, N, H, [0, 1, 1], H])  # 12 frames, windows of 4
    windows = [(0, 0), (0, 4), (0, 8)]
    # window 0: 4 neutral; window 1: happy x2, sad, one unlabelled; window 2: neutral + happy + happy/sad + happy
    result = resample_windows([rec], windows, 4, factor=3, frequent=[0], rare=[1, 2])
    assert result.windows == [(0, 0), (0, 4), (0, 4), (0, 4), (0, 8)]
    assert result.eligible == 1
    np.testing.assert_array_equal(result.before, [5, 5, 2])
    np.testing.assert_array_equal(result.after, [5, 5 + 2 * 2, 2 + 2 * 1])
    assert (result.labelled_before, result.labelled_after) == (11, 11 + 2 * 3)
    # a window may keep some frequent frames when asked: window 2 has 1 neutral in 4 labelled frames
    loose = resample_windows([rec], windows, 4, factor=2, frequent=[0], rare=[1, 2], max_frequent_share=0.25)
    assert loose.windows == [(0, 0), (0, 4), (0, 4), (0, 8), (0, 8)]
    rows = count_table(result, ["neutral", "happy", "sad"], result.before, result.labelled_before)
    happy = rows[1]
    assert (happy["role"], happy["served_before"], happy["served_after"]) == ("rare", 5, 9)
    assert happy["share_after"] == pytest.approx(9 / 17)
    assert rows[-1]["served_after"] == 17


def test_frequent_labels_by_share_and_factor_checks() -> None:
    assert frequent_labels(np.array([78, 10, 12]), 100, 0.5) == [0]
    assert frequent_labels(np.array([30, 10, 12]), 100, 0.5) == []
    with pytest.raises(DataError, match=r"data.resample.factor: expected an integer >= 1"):
        resample_windows([recording([N])], [(0, 0)], 1, factor=0, frequent=[0], rare=[1])


def test_weighted_bce_equals_a_hand_computation() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 3)).astype(np.float32)
    target = (rng.random((2, 5, 3)) > 0.6).astype(np.float32)
    target[0, 1] = np.nan  # an unlabelled frame
    target[1, 4, 2] = 0.4  # a soft target
    counts = np.array([80, 15, 5])
    w = (1 / counts) / (1 / counts).mean()  # reciprocal of frame counts, mean 1
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    m = np.isfinite(target)
    z = np.nan_to_num(target)
    per = -(z * np.log(p) + (1 - z) * np.log(1 - p))
    expected = (m * w * per).sum() / m.sum()

    loss = LOSSES.build({"name": "weighted_bce"})
    assert isinstance(loss, WeightedBCE)
    loss.set_class_counts(counts)
    got = loss(torch.from_numpy(logits), torch.from_numpy(target))
    assert got.item() == pytest.approx(expected, rel=1e-5)

    # positive-class weights: negatives / positives per label
    total = 100
    pw = (total - counts) / counts
    per_pw = -(pw * z * np.log(p) + (1 - z) * np.log(1 - p))
    balanced = LOSSES.build({"name": "weighted_bce", "label_weights": None, "pos_weight": "balanced"})
    balanced.set_class_counts(counts, total=total)
    got = balanced(torch.from_numpy(logits), torch.from_numpy(target))
    assert got.item() == pytest.approx((m * per_pw).sum() / m.sum(), rel=1e-5)

    explicit = LOSSES.build({"name": "weighted_bce", "label_weights": [1.0, 2.0, 3.0]})
    got = explicit(torch.from_numpy(logits), torch.from_numpy(target))
    assert got.item() == pytest.approx((m * np.array([1, 2, 3]) * per).sum() / m.sum(), rel=1e-5)
    with pytest.raises(RecipeError, match=r"loss.label_weights has 3 values but the model has 2 labels"):
        explicit(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(
        RecipeError, match=r"loss.pos_weight: expected list\[float\] \| one of 'balanced' \| null, got str"
    ):
        LOSSES.build({"name": "weighted_bce", "pos_weight": "inverse"})


def test_multilabel_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    target = (rng.random((400, 3)) < [0.7, 0.2, 0.05]).astype(np.float32)
    probs = np.clip(target * 0.3 + rng.random((400, 3)) * 0.7, 0, 1).astype(np.float32)
    target[:20, 1] = np.nan  # unlabelled entries are left out
    metrics = MultilabelMetrics(3)
    for chunk in np.array_split(np.arange(400), 4):
        metrics.update(torch.from_numpy(probs[chunk]), torch.from_numpy(target[chunk]))
    scores = metrics.compute(torch.tensor([0.5, 0.3, 0.99]))
    for k, threshold in enumerate([0.5, 0.3, 0.99]):
        keep = np.isfinite(target[:, k])
        y, s = target[keep, k], probs[keep, k]
        assert scores.auroc[k].item() == pytest.approx(roc_auc_score(y, s), abs=1e-5)
        assert scores.ap[k].item() == pytest.approx(average_precision_score(y, s), abs=1e-5)
        assert scores.f1[k].item() == pytest.approx(f1_score(y, s >= threshold), abs=1e-5)
        best = max(f1_score(y, s >= t) for t in np.linspace(0, 1, 101))
        assert scores.best_f1[k].item() == pytest.approx(best, abs=1e-5)
        assert scores.positives[k].item() == int(y.sum())
    assert scores.f1[2].item() == 0.0  # nothing scored >= 0.99: F1 0, not left out of the average as NaN


def test_a_label_without_positives_has_no_auroc() -> None:
    metrics = MultilabelMetrics(2)
    metrics.update(torch.tensor([[0.9, 0.1], [0.2, 0.3]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    scores = metrics.compute(torch.tensor([0.5, 0.5]))
    assert scores.auroc[0].item() == 1.0
    assert torch.isnan(scores.auroc[1]) and torch.isnan(scores.ap[1])
    assert scores.mean(scores.auroc).item() == 1.0  # NaN left out of the average, not counted as chance
