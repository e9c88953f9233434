"""The local engine for real: Optuna on SQLite, worker processes, `emoframe fit` trials on a few hundred real
FER2013 images (1-3 tiny epochs each, so the trials' start-up dominates)."""

from __future__ import annotations

import glob
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from emoframe.sweeps.report import accounting

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # every test runs sweep workers whose trials are `emoframe fit` processes
COMMAND = ["${env}", "${interpreter}", "-m", "emoframe", "fit", "${program}", "${args_no_hyphens}"]


def tiny(fer2013_zip: Path, epochs: int, wandb: bool = False) -> dict[str, dict]:
    """Constant parameters: a 200-image subset, 4 batches of 50, two validation batches, a 2-layer small_cnn."""
    constants = {
        "data.root": str(fer2013_zip),
        "data.subset": 200,
        "data.augment": None,
        "data.loader": {"batch_size": 50, "num_workers": 0},
        "model.backbone.widths": [8, 16],
        "model.channels_last": False,
        "scheduler.warmup_epochs": 0,
        "trainer.max_epochs": epochs,
        "trainer.limit_val_batches": 2,
        "trainer.enable_progress_bar": False,
        "trainer.enable_model_summary": False,
        "callbacks.lr_monitor": None,
    }
    if not wandb:
        constants["loggers.wandb"] = None
    return {k: {"value": v} for k, v in constants.items()}


def write_sweep(path: Path, **config) -> Path:
    config = {"program": "recipes/fer2013_small_cnn.yaml", "command": COMMAND, **config}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def worker(sweep: Path, folder: Path, log: Path, *extra: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
    }
    env.pop("EMOFRAME_RUN_DIR", None)
    command = [sys.executable, "-m", "emoframe", "sweep", str(sweep), "--dir", str(folder), *extra]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, text=True, stdout=out, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen[str], log: Path) -> str:
    assert proc.wait(timeout=600) == 0, log.read_text()[-4000:]
    return log.read_text()


def study(folder: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")


def wandb_records(run_dir: Path):
    """The run and config records of an offline W&B run (its .wandb file: LevelDB-log blocks of protobufs)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = glob.glob(str(run_dir / "wandb" / "offline-run-*" / "run-*.wandb"))
    raw, pos, buf, block = Path(path).read_bytes(), 7, b"", 32768
    while pos + 7 <= len(raw):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        chunk, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind == 2 else buf + chunk
        if kind in (1, 4) and buf:
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def test_two_workers_run_each_grid_point_once_up_to_run_cap_with_wandb_groups(
    fer2013_zip: Path, tmp_path: Path
) -> None:
    parameters = {
        "optimizer.lr": {"values": [0.02, 0.05]},
        "loss.label_smoothing": {"values": [0.0, 0.1]},
        **tiny(fer2013_zip, epochs=1, wandb=True),
    }
    sweep = write_sweep(
        tmp_path / "grid.yaml",
        name="grid2",
        method="grid",
        run_cap=3,
        metric={"name": "val/acc", "goal": "maximize"},
        parameters=parameters,
    )
    folder = tmp_path / "sweep"
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    procs = [worker(sweep, folder, logs[0]), worker(sweep, folder, logs[1])]  # together: one creates, one waits
    outputs = [finish(p, log) for p, log in zip(procs, logs)]
    s = study(folder, "grid2")
    trials = s.get_trials()
    assert [t.state.name for t in trials].count("COMPLETE") == 3 and len(trials) == 3, [t.state for t in trials]
    points = [(t.params["optimizer.lr"], t.params["loss.label_smoothing"]) for t in trials]
    assert len(set(points)) == 3 and set(points) <= {(a, b) for a in (0.02, 0.05) for b in (0.0, 0.1)}
    assert {int(t.user_attrs["slot"]) for t in trials} == {0, 1, 2}
    assert sum(o.count(" COMPLETE ") for o in outputs) == 3  # a progress line per trial
    for t in trials:  # each trial: an emoframe run and an offline W&B run in the sweep's group, config = values
        run_dir = Path(t.user_attrs["run_dir"])
        assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
        records = list(wandb_records(run_dir))
        runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert runs and runs[0].run_group == "grid2" and runs[0].display_name == f"grid2-{t.user_attrs['slot']:04d}"
        config = {i.key: json.loads(i.value_json) for r in records if r.HasField("config") for i in r.config.update}
        assert config["optimizer.lr"] == t.params["optimizer.lr"] and config["sweep"] == "grid2", config
        assert config["loss.label_smoothing"] == t.params["loss.label_smoothing"]
    report = folder / "report"
    rows = (report / "leaderboard.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("slot,trial,state,val/acc,best_epoch,epochs,seconds")
    assert (report / "leaderboard.md").read_text().count("| COMPLETE |") == 3
    assert all((report / f"{n}.png").is_file() for n in ("metric_per_trial", "parallel_coordinates"))
    from emoframe.builder import check
    from emoframe.config import load_recipe

    best = load_recipe(report / "best_recipe.yaml")  # the best trial's recipe, ready for emoframe fit
    check(best)
    assert best["optimizer"]["lr"] == s.best_trial.params["optimizer.lr"] and best["run"]["name"] == "grid2-best"


def test_hyperband_stops_a_huge_learning_rate_before_max_epochs(fer2013_zip: Path, tmp_path: Path) -> None:
    parameters = {"optimizer.lr": {"values": [0.05, 1000.0]}, **tiny(fer2013_zip, epochs=3)}
    sweep = write_sweep(
        tmp_path / "hb.yaml",
        name="hb",
        method="grid",
        metric={"name": "val/loss", "goal": "minimize"},
        early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2},
        parameters=parameters,
    )
    folder = tmp_path / "sweep"
    out = finish(worker(sweep, folder, tmp_path / "w.log"), tmp_path / "w.log")
    good, bad = sorted(study(folder, "hb").get_trials(), key=lambda t: t.params["optimizer.lr"])
    assert good.state.name == "COMPLETE" and sorted(good.intermediate_values) == [0, 1, 2]
    assert bad.state.name == "PRUNED" and bad.user_attrs["pruned_epoch"] == 1 and len(bad.intermediate_values) == 2
    assert " PRUNED " in out and "optimizer.lr=1000.0" in out
    assert "| PRUNED |" in (folder / "report" / "leaderboard.md").read_text()


def test_a_worker_killed_mid_trial_resumes_it_from_its_last_checkpoint(fer2013_zip: Path, tmp_path: Path) -> None:
    parameters = {"optimizer.lr": {"distribution": "log_uniform_values", "min": 0.01, "max": 0.1}}
    parameters.update(tiny(fer2013_zip, epochs=3))
    sweep = write_sweep(
        tmp_path / "kill.yaml",
        name="kill",
        method="random",
        run_cap=2,
        metric={"name": "val/acc", "goal": "maximize"},
        parameters=parameters,
    )
    folder = tmp_path / "sweep"
    last = folder / "trials" / "0000" / "checkpoints" / "last.ckpt"
    proc = worker(sweep, folder, tmp_path / "w0.log")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # the first epoch's checkpoint, then kill -9
        try:
            if torch.load(last, map_location="cpu", weights_only=False)["epoch"] < 2:  # epochs 0-2: mid-trial
                break
        except (OSError, EOFError, RuntimeError):
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = study(folder, "kill").get_trials()[0]
    assert interrupted.state.name == "RUNNING" and interrupted.intermediate_values, (tmp_path / "w0.log").read_text()
    trial_pid = interrupted.user_attrs["trial_pid"]
    for _ in range(300):  # the trial process dies with its worker (PR_SET_PDEATHSIG)
        if not Path(f"/proc/{trial_pid}").exists() or "Z" in Path(f"/proc/{trial_pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the trial outlived its worker")
    out = finish(worker(sweep, folder, tmp_path / "w1.log"), tmp_path / "w1.log")
    assert "queued to resume" in out
    trials = study(folder, "kill").get_trials()
    counts = accounting(study(folder, "kill"))
    assert counts["COMPLETE"] == 2 and counts["RETRIED"] == 1 and counts["FAIL"] == counts["RUNNING"] == 0, counts
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == 0)
    assert retry.state.name == "COMPLETE" and retry.params == interrupted.params and retry.user_attrs["slot"] == 0
    assert sorted(retry.intermediate_values) == [0, 1, 2]  # epoch 0 from the killed attempt, 1-2 resumed
    assert f"--resume {last}" in (folder / "logs" / "trial_0000.log").read_text()
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 2
    assert {t.user_attrs["slot"] for t in trials if t.state.name == "COMPLETE"} == {0, 1}
    rows = (folder / "report" / "leaderboard.csv").read_text().splitlines()
    assert len(rows) == 3 and ",2," in rows[1] + rows[2]  # one row per counted trial; the resumed one: 2 attempts


def test_two_workers_share_one_postgresql_sweep(fer2013_zip: Path, tmp_path: Path, postgres_url: str) -> None:
    parameters = {"optimizer.lr": {"values": [0.02, 0.05]}, **tiny(fer2013_zip, epochs=1)}
    sweep = write_sweep(
        tmp_path / "pg.yaml",
        name="pg",
        method="grid",
        metric={"name": "val/acc", "goal": "maximize"},
        parameters=parameters,
    )
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    procs = [worker(sweep, tmp_path / f"s{i}", logs[i], "--storage", postgres_url) for i in range(2)]
    for p, log in zip(procs, logs):
        finish(p, log)
    import optuna

    trials = optuna.load_study(study_name="pg", storage=postgres_url).get_trials()
    assert sorted(t.params["optimizer.lr"] for t in trials) == [0.02, 0.05]
    assert all(t.state.name == "COMPLETE" for t in trials)
