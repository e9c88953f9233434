"""The committed FER2013 ensemble members (benchmarks/members): their probabilities reproduce the figures
`emoframe test` printed when they were saved, and the seed and fusion tables are computed from them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
MEMBERS = BENCH / "members"
sys.path.insert(0, str(BENCH))

SUMMARIES = sorted(MEMBERS.glob("*.run.json"))


@pytest.mark.parametrize("summary", SUMMARIES, ids=lambda p: p.name.split(".")[0])
def test_member_probabilities_reproduce_emoframe_test(summary: Path) -> None:
    from fer2013_seeds import read_member

    recorded = json.loads(summary.read_text())
    row = read_member(MEMBERS / summary.name.removesuffix(".run.json"))
    assert row["seed"] == recorded["seed"]
    assert row["acc"] == pytest.approx(recorded["acc"], abs=1e-4)  # emoframe test's csv, 4 decimals
    assert row["tta_acc"] == pytest.approx(recorded["tta_acc"], abs=1e-4)


def test_fusion_table_pairs_the_twins_by_seed() -> None:
    from fer2013_fusion_seeds import scores, table

    lines = table([0, 1, 2])
    for seed in (0, 1, 2):
        cnn, _, _ = scores(MEMBERS / f"fer2013_cnn_only_from_hour_seed{seed}.none.probs.npz")
        fusion, _, _ = scores(MEMBERS / f"fer2013_fusion_from_hour_seed{seed}.none.probs.npz")
        row = next(line for line in lines if line.startswith(f"| {seed} | none |"))
        assert f"| {100 * (fusion - cnn):+.2f} |" in row
    assert sum("points** (mean ± sample sd)" in line for line in lines) == 2


def test_member_without_summary_takes_its_seed_from_the_name() -> None:
    from fer2013_seeds import read_member

    row = read_member(MEMBERS / "fer2013_cpu_hour_seed2")
    assert (row["seed"], row["fit_min"], row["recipe"]) == (2, None, "recipes/fer2013_cpu_hour.yaml")
