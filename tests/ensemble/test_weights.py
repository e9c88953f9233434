"""Differential-evolution weights on saved probabilities; the probability and ensemble files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoframe.ensemble import EnsembleSpec, combine, read_ensemble, search_weights, write_ensemble
from emoframe.ensemble.files import MemberEntry
from emoframe.ensemble.weights import accuracy
from emoframe.errors import DataError, RecipeError
from emoframe.eval.probabilities import ProbabilityFile, SplitProbabilities, read_probabilities, save_probabilities
from emoframe.tta import PAPER_TTA

N, C = 1500, 7


def member(labels: np.ndarray, strength: float, seed: int) -> np.ndarray:
    """Probabilities of a model that puts ``strength`` more logit on the true class than chance."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, (len(labels), C))
    logits[np.arange(len(labels)), labels] += strength
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("objective", ["accuracy", "nll"])
def test_a_noise_member_gets_a_near_zero_weight_and_the_ensemble_beats_its_members(objective: str) -> None:
    labels = np.random.default_rng(0).integers(0, C, N)
    good, fair = member(labels, 1.5, 1), member(labels, 1.1, 2)
    noise = np.random.default_rng(3).dirichlet(np.ones(C), N)  # knows nothing of the labels
    members = [good, noise, fair]
    found = search_weights(members, labels, objective=objective, seed=0)  # type: ignore[arg-type]
    assert found.weights.sum() == pytest.approx(1.0) and found.weights[1] < 0.02, found.weights
    best = max(accuracy(m, labels) for m in members)
    assert found.val_accuracy >= best and found.val_accuracy >= accuracy(combine(members, [1, 1, 1]), labels)
    again = search_weights(members, labels, objective=objective, seed=0)  # type: ignore[arg-type]
    assert np.array_equal(again.weights, found.weights), "a seeded search repeats exactly"


def test_the_search_never_returns_worse_than_the_best_member_on_validation() -> None:
    labels = np.random.default_rng(5).integers(0, C, 200)
    strong = np.eye(C)[labels] * 0.9 + 0.1 / C  # always right
    members = [strong, np.random.default_rng(6).dirichlet(np.ones(C), 200)]
    found = search_weights(members, labels, seed=1)  # type: ignore[arg-type]
    assert found.val_accuracy == 1.0 and found.weights[0] > 0.5
    with pytest.raises(DataError, match="differ in shape"):
        search_weights([strong, strong[:10]], labels)  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="--objective"):
        search_weights(members, labels, objective="f1")  # type: ignore[arg-type]


def test_probability_and_ensemble_files_round_trip(tmp_path: Path) -> None:
    probs = member(np.arange(20) % C, 1.0, 0).astype(np.float32)
    data = ProbabilityFile({"val": SplitProbabilities(probs, np.arange(20) % C)}, [f"c{i}" for i in range(C)], {"x": 1})
    path = save_probabilities(tmp_path / "m.probs.npz", data)
    back = read_probabilities(path)
    assert np.array_equal(back.splits["val"].probs, probs) and back.class_names == data.class_names
    assert back.meta["x"] == 1 and not list(tmp_path.glob(".*tmp")), "written atomically, no temporary file left"
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        read_probabilities(tmp_path / "bad.npz")

    ckpt = tmp_path / "runs" / "a.ckpt"
    spec = EnsembleSpec(
        (MemberEntry(ckpt, 0.75, path), MemberEntry(None, 0.25)), ("a", "b"), PAPER_TTA[:2], {"seed": 0}
    )
    out = write_ensemble(tmp_path / "out" / "x.ensemble.yaml", spec)
    assert "../runs/a.ckpt" in out.read_text(), "member paths are stored relative to the file"
    back_spec = read_ensemble(out)
    assert back_spec.members[0] == MemberEntry(ckpt.resolve(), 0.75, path.resolve())
    assert back_spec.tta == PAPER_TTA[:2] and back_spec.class_names == ("a", "b")
    (tmp_path / "foreign.ensemble.yaml").write_text("members: []\n")
    with pytest.raises(RecipeError, match="not an emoframe ensemble file"):
        read_ensemble(tmp_path / "foreign.ensemble.yaml")
