"""Past one machine: a real two-node torchrun run (two launchers on this machine, c10d rendezvous on 127.0.0.1,
gloo), a SLURM requeue resumed from the job's own run directory, and the launch detection behind both."""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emoframe.cli import main
from emoframe.errors import RecipeError
from emoframe.launch import Launch, detect_launch, restart_checkpoint, run_dir_for, slurm_detected
from tests.engine.test_ddp import last_epoch_row

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "recipes" / "fer2013_small_cnn.yaml")
SUBSET = 301  # odd: a padding validation sampler would count 302
SLURM_JOB = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "emoframe-test",
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}


def tiny(fer2013_zip: Path, run_dir: str) -> list[str]:
    return [
        f"data.root={fer2013_zip}",
        f"run.dir={run_dir}",
        f"data.subset={SUBSET}",
        "data.loader={batch_size: 32, num_workers: 0}",
        "model.backbone.widths=[8,16,32]",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_missing() -> bool:
    return importlib.util.find_spec("torch.distributed.run") is None or not torch.distributed.is_available()


@pytest.mark.slow
@pytest.mark.skipif(torchrun_missing(), reason="torchrun (torch.distributed.run) is not available in this torch build")
def test_two_node_torchrun_writes_one_run_and_matches_one_process(
    tmp_path: Path, fer2013_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two torchrun launchers (``--nnodes=2 --nproc_per_node=1``), each in its own folder as on two machines without a
    shared disk: rank 0 (whichever node the rendezvous makes it) chooses the run directory, the other node uses the
    same name and writes nothing; validation counts every image once and equals one process on the same weights."""
    nodes = [tmp_path / "node_a", tmp_path / "node_b"]
    for node, earlier in zip(nodes, ([0], [0, 5]), strict=True):  # left alone, each node would pick its own version
        for v in earlier:
            (node / "runs" / "fer2013_small_cnn" / f"version_{v}").mkdir(parents=True)
    before = [sorted(p.relative_to(node) for p in node.rglob("*")) for node in nodes]
    port = free_port()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1"]
    launcher += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=emoframe-test"]
    fit = ["-m", "emoframe", "fit", RECIPE, *tiny(fer2013_zip, "runs"), "trainer.max_epochs=1"]
    fit += ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.num_nodes=2", "trainer.strategy=ddp"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_"))}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    logs = [tmp_path / "node_a.log", tmp_path / "node_b.log"]
    procs = []
    for node, log in zip(nodes, logs, strict=True):  # files, not pipes: W&B's service may outlive the run
        with log.open("w") as out:
            command = [*launcher, *fit]
            procs.append(
                subprocess.Popen(
                    command, cwd=node, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:  # a hung launcher and the workers it started go together (each has its own session)
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert codes == [0, 0], "\n\n".join(log.read_text()[-3000:] for log in logs)

    chosen = [
        {ln.split(": ", 1)[1] for ln in log.read_text().splitlines() if ln.startswith("Run directory: ")}
        for log in logs
    ]
    assert len(chosen[0]) == 1 and chosen[0] == chosen[1], f"the nodes disagree on the run directory: {chosen}"
    run_name = next(iter(chosen[0]))
    writers = [node for node in nodes if (node / run_name).exists()]
    assert len(writers) == 1, "only global rank 0 creates the run directory"
    rank0 = writers[0]
    assert run_name.endswith("version_1" if rank0 == nodes[0] else "version_6"), "rank 0's next version, shared"
    other = nodes[1 - nodes.index(rank0)]
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before[nodes.index(other)], "rank 1 wrote files"
    new = [p for p in (rank0 / "runs" / "fer2013_small_cnn").iterdir() if any(p.iterdir())]
    assert new == [rank0 / run_name], "exactly one run directory written"
    run = rank0 / run_name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1, "one W&B run (global rank 0), not one per node"
    assert not (rank0 / "wandb").exists() and not (other / "wandb").exists()

    metrics = next(run.glob("csv/*/metrics.csv"))
    val = last_epoch_row(metrics, "val/samples")
    assert float(val["val/samples"]) == SUBSET, "each validation image seen exactly once across the two nodes"
    capsys.readouterr()
    one_process = ["trainer.num_nodes=1", "trainer.strategy=auto", f"data.root={fer2013_zip}", f"data.subset={SUBSET}"]
    assert main(["validate", "--ckpt", str(run / "checkpoints" / "last.ckpt"), *one_process]) == 0
    single = dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if line.startswith("val/"))
    assert float(single["val/samples"]) == SUBSET
    for key in ("val/acc", "val/macro_f1", "val/balanced_acc", "val/loss"):
        assert float(single[key]) == pytest.approx(float(val[key]), abs=1e-4), key


@pytest.mark.slow
@pytest.mark.skipif(torchrun_missing(), reason="torchrun (torch.distributed.run) is not available in this torch build")
def test_torchrun_restart_after_a_worker_crash_continues_the_same_run(tmp_path: Path, fer2013_zip: Path) -> None:
    """A worker dies in its second epoch; torchrun (``--max-restarts=1``) restarts it; the new attempt reads the
    first attempt's run directory from the agent's store and resumes its last.ckpt: one run, each epoch once."""
    (tmp_path / "runs" / "fer2013_small_cnn" / "version_0").mkdir(parents=True)  # the first attempt picks version_1
    port = free_port()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=1", "--max-restarts=1"]
    launcher += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=emoframe-restart"]
    crash = "callbacks.crash={class_path: tests.fixtures.pause.ExitAt, epoch: 1, batch: 2}"
    fit = ["-m", "emoframe", "fit", RECIPE, *tiny(fer2013_zip, "runs"), "trainer.max_epochs=2", crash]
    fit += ["trainer.accelerator=cpu", "trainer.devices=1", "loggers.wandb=null"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_"))}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    log = tmp_path / "torchrun.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*launcher, *fit], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert code == 0, text[-3000:]
    run = tmp_path / "runs" / "fer2013_small_cnn" / "version_1"
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0", "version_1"], "the restart made no new run"
    resumed = [ln for ln in text.splitlines() if ln.startswith("Resuming from ")]
    assert len(resumed) == 1 and "version_1/checkpoints/last.ckpt (restart 1 of" in resumed[0], text[-3000:]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 1
    rows = [r for f in run.glob("csv/version_*/metrics.csv") for r in csv.DictReader(f.open()) if r.get("val/acc")]
    assert [r["epoch"] for r in rows] == ["0", "1"], rows


def val_acc(run: Path) -> list[float]:
    rows = [r for f in sorted(run.glob("csv/version_*/metrics.csv")) for r in csv.DictReader(f.open())]
    return [float(r["val/acc"]) for r in rows if r.get("val/acc")]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_slurm_requeue_resumes_the_jobs_own_run(
    tmp_path: Path, fer2013_zip: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job cut off after its first epoch and requeued (same SLURM_JOB_ID, SLURM_RESTART_COUNT=1) continues its
    run directory, slurm-<job>, from last.ckpt without --resume, and ends as the uninterrupted run."""
    # no augmentation (its generators live outside the checkpoint) and no schedule (it depends on max_epochs)
    common = [
        RECIPE,
        *tiny(fer2013_zip, str(tmp_path / "runs")),
        "data.augment=null",
        "~scheduler",
        "loggers.wandb=null",
    ]
    assert main(["fit", *common, "trainer.max_epochs=2", f"run.dir={tmp_path / 'whole'}"]) == 0
    expected = val_acc(tmp_path / "whole" / "fer2013_small_cnn" / "version_0")

    for key, value in {**SLURM_JOB, "SLURM_RESTART_COUNT": "0"}.items():
        monkeypatch.setenv(key, value)
    assert main(["fit", *common, "trainer.max_epochs=1"]) == 0  # the first allocation ends after one epoch
    base = tmp_path / "runs" / "fer2013_small_cnn"
    assert [p.name for p in base.iterdir()] == ["slurm-4242"]
    capsys.readouterr()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # scontrol requeue: the same job id, the same command
    assert main(["fit", *common, "trainer.max_epochs=2"]) == 0
    err = capsys.readouterr().err
    assert f"Resuming from {base / 'slurm-4242' / 'checkpoints' / 'last.ckpt'} (restart 1 of SLURM job 4242)" in err
    assert [p.name for p in base.iterdir()] == ["slurm-4242"], "the requeued job writes into its own run"
    last = torch.load(base / "slurm-4242" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 1
    got = val_acc(base / "slurm-4242")
    assert len(expected) == 2 and got[-1] == pytest.approx(expected[-1], abs=1e-6), (expected, got)


# --- the launch detection (no training) ---


def test_plain_process_is_no_slurm_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test session starts without scheduler variables (conftest), so plain fits number their versions."""
    assert not [k for k in os.environ if k.startswith(("SLURM_", "TORCHELASTIC_"))]
    assert detect_launch() == Launch("single")
    (tmp_path / "version_0").mkdir()
    assert run_dir_for(tmp_path, None) == tmp_path / "version_1"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"SLURM_JOB_NAME": "interactive"},  # an salloc shell: Lightning does not treat it as SLURM either
        {"SLURM_JOB_NAME": "bash"},
        {"SLURM_NTASKS": None},  # an allocation variable alone (no srun / sbatch task count)
    ],
)
def test_slurm_detected_as_lightning_detects_it(monkeypatch: pytest.MonkeyPatch, extra: dict[str, str | None]) -> None:
    from lightning_fabric.plugins.environments import SLURMEnvironment

    for key, value in {**SLURM_JOB, **extra}.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert slurm_detected(os.environ) == SLURMEnvironment.detect()
    assert (detect_launch().kind == "slurm") == SLURMEnvironment.detect()


def test_slurm_run_dir_names_the_job_and_its_step(tmp_path: Path) -> None:
    batch = detect_launch({**SLURM_JOB, "SLURM_RESTART_COUNT": "2"})
    assert (batch.kind, batch.job, batch.restart_count, batch.is_global_zero) == ("slurm", "4242", 2, True)
    assert run_dir_for(tmp_path, None, batch) == tmp_path / "slurm-4242"
    step = detect_launch({**SLURM_JOB, "SLURM_STEP_ID": "3", "SLURM_PROCID": "5"})
    assert (step.job, step.global_rank) == ("4242.3", 5)
    assert detect_launch({**SLURM_JOB, "SLURM_STEP_ID": str(0xFFFFFFFE)}).job == "4242"  # the batch "step"
    assert run_dir_for(tmp_path, "mine", batch) == tmp_path / "mine"  # run.version wins


def test_restart_resumes_only_a_pinned_run(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"x")
    requeued = Launch("slurm", restart_count=1, job="7")
    assert restart_checkpoint(tmp_path, None, requeued) == last
    assert restart_checkpoint(tmp_path, None, Launch("slurm", job="7")) is None  # first start: nothing to resume
    torchrun_restart = Launch("torchrun", restart_count=1)
    assert restart_checkpoint(tmp_path, None, torchrun_restart) == last  # the first attempt's run, from the store
    assert restart_checkpoint(tmp_path, None, Launch("torchrun")) is None  # a first attempt resumes nothing
    assert restart_checkpoint(tmp_path, "v1", torchrun_restart) == last  # run.version pins it


def test_by_hand_multi_node_needs_run_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NODE_RANK", "1")
    with pytest.raises(RecipeError, match=r"run\.version"):
        run_dir_for(tmp_path, None)
    assert run_dir_for(tmp_path, "shared") == tmp_path / "shared"
    torchrun = Launch("torchrun", global_rank=1)
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    with pytest.raises(RecipeError, match=r"run\.version=NAME"):
        run_dir_for(tmp_path, None, torchrun)
