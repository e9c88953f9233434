"""A sweep is checked before its first trial: every swept key against the recipe (at both ends of its range), the
storage URL's driver; and a worker whose every trial failed exits 2, not 0."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from emoframe.callbacks.sweep import storage_url
from emoframe.cli import main
from emoframe.errors import RecipeError
from emoframe.sweeps.schema import parse_sweep
from emoframe.sweeps.space import ends
from tests.sweeps.test_engine import finish, tiny, worker, write_sweep

REPO = Path(__file__).resolve().parents[2]
METRIC = {"name": "val/acc", "goal": "maximize"}


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("emoframe: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"optimizer.lrr": {"values": [0.01, 0.1]}}, "low end of their ranges: Unknown key optimizer.lrr for sgd"),
        ({"model.backbone.widthz": {"value": [8]}}, "Unknown key model.backbone.widthz"),
        ({"data.augment.0.p": {"min": 0.0, "max": 1.5}}, "high end of their ranges: data.augment[0]: bad arguments"),
        ({"optimizer.momentum": {"values": [0.9, -1]}}, "Out of range optimizer.momentum: expected >= 0, got -1"),
    ],
)
def test_a_key_or_range_the_recipe_refuses_is_one_line_before_any_trial(
    parameter: dict, message: str, fer2013_zip: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(REPO)
    params = {"data.root": {"value": str(fer2013_zip)}, **parameter}
    sweep = write_sweep(tmp_path / "s.yaml", name="s", method="random", run_cap=2, metric=METRIC, parameters=params)
    line = one_line(capsys, ["sweep", str(sweep), "--local", "--dir", str(tmp_path / "out")])
    assert f"{sweep}: parameters at the" in line and message in line, line
    assert not (tmp_path / "out").exists(), "nothing is written before the recipe is known to build"


@pytest.mark.parametrize(
    ("changes", "message"),
    [  # found by the sweep fuzzer (tests/test_fuzz_recipes.py): a hang or a MemoryError before the first trial
        ({"run_cap": 10**12}, "run_cap: the local engine enqueues every slot when the sweep starts, at most 10000"),
        (
            {"method": "grid", "parameters": {"trainer.max_epochs": {"min": 1, "max": 10**12}}},
            "parameters: method grid has 1e+12 points (trainer.max_epochs: 1e+12)",
        ),
        (
            {"method": "grid", "parameters": {"optimizer.lr": {"distribution": "q_uniform", "min": 0.0, "max": 1e300}}},
            "parameters: method grid has 1e+300 points (optimizer.lr: 1e+300)",
        ),
    ],
)
def test_more_slots_than_the_local_engine_can_enqueue_is_one_line(
    changes: dict, message: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(REPO)
    raw = yaml.safe_load((REPO / "sweeps" / "fer2013_small_cnn.yaml").read_text()) | changes
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(raw))
    line = one_line(capsys, ["sweep", str(sweep), "--local", "--dir", str(tmp_path / "out")])
    assert message in line, line
    assert not (tmp_path / "out").exists()


def test_hyperband_with_many_brackets_finds_its_first_band_at_once() -> None:
    from emoframe.sweeps.engine import pruner_spec

    early = {"type": "hyperband", "max_iter": 10**12, "s": 10**12, "eta": 3}  # listed 10**12 bands: a hang
    sweep = parse_sweep(
        {"method": "random", "metric": METRIC, "early_terminate": early, "parameters": {"a": {"value": 1}}}
    )
    assert pruner_spec(sweep) == {"min_resource": 1, "eta": 3}
    sweep.early_terminate = {**early, "max_iter": 27, "s": 2}
    assert pruner_spec(sweep) == {"min_resource": 3, "eta": 3}


def test_ends_of_each_distribution() -> None:
    raw = {
        "method": "random",
        "parameters": {
            "a": {"value": 3},
            "b": {"values": ["x", "y", "z"]},
            "c": {"distribution": "int_uniform", "min": 1, "max": 4},
            "d": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.1},
            "e": {"distribution": "log_uniform", "min": 0.0, "max": 1.0},
            "f": {"distribution": "inv_log_uniform", "min": 0.0, "max": 1.0},
            "g": {"distribution": "normal", "mu": 2.0, "sigma": 1.0},
        },
    }
    got = {p.name: ends(p) for p in parse_sweep(raw).parameters}
    assert got["a"] == (3, 3) and got["b"] == ("x", "z") and got["c"] == (1, 4) and got["d"] == (0.001, 0.1)
    assert got["e"] == pytest.approx((1.0, 2.718281828)) and got["f"] == pytest.approx((0.367879441, 1.0))
    assert got["g"] == pytest.approx((2.0, 2.0))


def test_a_storage_url_without_a_driver_gets_the_installed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLAlchemy 2 maps postgresql:// to psycopg 3: with only psycopg2 installed, that is the driver named."""
    installed: set[str] = {"psycopg2"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in installed else None)
    assert storage_url("postgresql://u:p@host/db") == "postgresql+psycopg2://u:p@host/db"
    assert storage_url("postgres://u@host/db") == "postgresql+psycopg2://u@host/db"  # Heroku's spelling
    assert storage_url("postgresql+pg8000://u@host/db") == "postgresql+pg8000://u@host/db"  # named: kept
    assert storage_url("sqlite:///x.db") == "sqlite:///x.db"
    installed.add("psycopg")
    assert storage_url("postgresql://u@host/db") == "postgresql://u@host/db"  # SQLAlchemy's default is there
    installed.clear()
    with pytest.raises(RecipeError, match=r"^no postgresql driver is installed: pip install psycopg\[binary\] or psy"):
        storage_url("postgresql://u@host/db")


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is None, reason="needs psycopg2")
def test_a_postgresql_url_reaches_the_server_with_psycopg2(fer2013_zip: Path, tmp_path: Path, capsys) -> None:
    """The driver is found (no "Failed to import DB access module"): the line is the server's refusal."""
    sweep = write_sweep(
        tmp_path / "s.yaml", name="s", method="random", run_cap=1, metric=METRIC, parameters=tiny(fer2013_zip, 1)
    )
    url = "postgresql://u:secret@127.0.0.1:1/db"
    line = one_line(capsys, ["sweep", str(sweep), "--storage", url, "--dir", str(tmp_path / "out")])
    assert "u:***@127.0.0.1:1/db" in line and "Failed to import" not in line and "127.0.0.1" in line, line


@pytest.mark.slow  # a sweep worker running its trials
def test_a_worker_whose_every_trial_failed_exits_2(fer2013_zip: Path, tmp_path: Path) -> None:
    """run_cap 1 is below the three-failures-in-a-row stop: the metric never logged fails the only trial."""
    params = tiny(fer2013_zip, 1)
    metric = {"name": "val/nope", "goal": "maximize"}
    sweep = write_sweep(tmp_path / "s.yaml", name="s", method="random", run_cap=1, metric=metric, parameters=params)
    log = tmp_path / "worker.log"
    proc = worker(sweep, tmp_path / "out", log)
    with pytest.raises(AssertionError):
        finish(proc, log)
    assert proc.returncode == 2
    errors = [line for line in log.read_text().splitlines() if line.startswith("emoframe: error:")]
    assert len(errors) == 1 and "no trial completed: 1 of 1 failed; the last (slot 0000)" in errors[0], errors
    assert yaml.safe_load(sweep.read_text())["run_cap"] == 1
