"""Ensemble members' classes: the sets are compared before any member is evaluated (one line naming both), and
members whose classes come in another order are aligned by name, not refused."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from emoframe.cli import main
from emoframe.ensemble import members as members_module
from emoframe.ensemble.files import EnsembleSpec, MemberEntry, write_ensemble
from emoframe.ensemble.members import align_classes, check_same_classes, load_ensemble
from emoframe.errors import DataError
from emoframe.eval.probabilities import ProbabilityFile, SplitProbabilities, save_probabilities
from emoframe.labels import EMOTIONS
from tests.inference.conftest import CASES, make_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def probability_file(names: list[str], seed: int = 0, n: int = 40) -> ProbabilityFile:
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("val", "test"):
        probs = rng.dirichlet(np.ones(len(names)), n).astype(np.float32)
        labels = rng.integers(0, len(names), n)
        splits[split] = SplitProbabilities(probs, labels)
    return ProbabilityFile(splits, list(names), {"checkpoint": None, "tta": None}, None)


def reordered(data: ProbabilityFile, order: list[str]) -> ProbabilityFile:
    """The same probabilities written in another class order (as a model trained with other folders would)."""
    return align_classes(data, order)


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("emoframe: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_align_classes_permutes_columns_and_labels() -> None:
    data = probability_file(list(EMOTIONS))
    order = list(reversed(EMOTIONS))
    moved = align_classes(data, order)
    val, back = data.splits["val"], moved.splits["val"]
    for i, name in enumerate(EMOTIONS):
        np.testing.assert_array_equal(back.probs[:, order.index(name)], val.probs[:, i])
    assert [order[i] for i in back.labels] == [EMOTIONS[i] for i in val.labels]
    assert align_classes(moved, list(EMOTIONS)).splits["test"].labels.tolist() == data.splits["test"].labels.tolist()


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (list(EMOTIONS[:6]), "b predicts 6 classes ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise'], a 7"),
        ([*EMOTIONS[:6], "contempt"], "(not in both: contempt, neutral)"),
        ([*EMOTIONS[:6], "angry"], "b predicts 7 classes"),
    ],
)
def test_class_sets_that_differ_are_one_line(second: list[str], message: str) -> None:
    with pytest.raises(DataError, match="ensemble members must predict the same classes") as err:
        check_same_classes([list(EMOTIONS), second], ["a", "b"])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_probability_files_in_another_class_order_are_aligned(tmp_path: Path) -> None:
    data = probability_file(list(EMOTIONS), seed=1)
    a = save_probabilities(tmp_path / "a.probs.npz", data)
    b = save_probabilities(tmp_path / "b.probs.npz", reordered(data, sorted(EMOTIONS)))
    out = tmp_path / "ens"
    assert main(["ensemble", str(a), str(b), "--output", str(out)]) == 0
    rows = {r["model"]: r for r in csv.DictReader((out / "ensemble.csv").open())}
    assert rows["a"]["val_acc"] == rows["b"]["val_acc"] == rows["average"]["val_acc"]
    assert rows["a"]["test_acc"] == rows["b"]["test_acc"]


def test_a_6_class_and_a_7_class_checkpoint_are_refused_before_either_is_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seven = make_checkpoint("frame_classifier", tmp_path / "seven.ckpt")
    recipe, overrides, extra = CASES["frame_classifier"]
    monkeypatch.setitem(CASES, "frame_classifier", (recipe, overrides, {**extra, "class_names": list(EMOTIONS[:6])}))
    six = make_checkpoint("frame_classifier", tmp_path / "six.ckpt")

    def evaluated(*args, **kwargs):
        raise AssertionError("a member was evaluated before the classes were compared")

    monkeypatch.setattr(members_module.CheckpointMember, "probabilities", evaluated)
    out = tmp_path / "ens"
    line = one_line(capsys, ["ensemble", str(seven), str(six), "--output", str(out)])
    assert "predicts 6 classes" in line and "7 classes" in line and "six" in line and "seven" in line, line
    assert not out.exists()


def test_an_ensemble_file_of_members_in_other_class_orders_predicts_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_checkpoint("frame_classifier", tmp_path / "first.ckpt")
    recipe, overrides, extra = CASES["frame_classifier"]
    order = sorted(EMOTIONS)
    monkeypatch.setitem(CASES, "frame_classifier", (recipe, overrides, {**extra, "class_names": order}))
    second = make_checkpoint("frame_classifier", tmp_path / "second.ckpt")
    members = (MemberEntry(first, 0.5, None), MemberEntry(second, 0.5, None))
    path = write_ensemble(tmp_path / "pair.ensemble.yaml", EnsembleSpec(members, tuple(EMOTIONS), None, {}))
    model = load_ensemble(path)
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        a, b = (m(x) for m in model.members)
        expected = 0.5 * a + 0.5 * b[:, [order.index(c) for c in EMOTIONS]]
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=1e-6)
