"""emoframe.files.atomic: whole files or none, with the mode a plain open() gives (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from emoframe.eval.probabilities import ProbabilityFile, SplitProbabilities, save_probabilities
from emoframe.files.atomic import atomic_write


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_file_gets_the_mode_open_would_give_it(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "a.txt") as f:
            f.write("hello")
        strict = tmp_path / "strict.txt"
        strict.write_text("x")
        assert _mode(tmp_path / "a.txt") == _mode(strict) == 0o640
    finally:
        os.umask(old)
    with atomic_write(tmp_path / "b.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert _mode(tmp_path / "b.bin") == _mode(plain), "mkstemp's 0600 would hide a report from its group"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert os.umask(old) == old, "the umask is left as it was"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("half a ")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv"]


def test_probability_files_are_readable_like_any_output(tmp_path):
    """emoframe test --save-probs wrote 0600 files before (committed members need the usual mode)."""
    probs = np.full((2, 3), 1 / 3, dtype=np.float32)
    data = ProbabilityFile({"val": SplitProbabilities(probs, np.array([0, 2]))}, ["a", "b", "c"], {})
    path = save_probabilities(tmp_path / "m.probs.npz", data)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert _mode(path) == _mode(plain)
