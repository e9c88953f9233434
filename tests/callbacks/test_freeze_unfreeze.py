"""freeze_unfreeze (Kumari): frozen backbone with Adam, then everything with SGD + plateau; resume; DDP; errors.

Real FER2013 subsets through the real recipe loader, builder and CLI.  The subset is one full batch and
augmentation and dropout are off, so an interrupted-and-resumed run can be compared with an
uninterrupted one (a shuffled full batch differs only in summation order).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from emoframe.builder import build
from emoframe.cli import main
from emoframe.config import load_recipe
from emoframe.finetune import FreezeUnfreeze
from emoframe.registry import RecipeError

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "recipes" / "_base"

# Kumari's schedule, shrunk: 1 frozen epoch (Adam 1e-3), then SGD Nesterov 1e-3 with reduce-on-plateau.
# The plateau monitors val/samples, which never improves, so with patience 0 the rate must halve after
# the second phase-2 epoch: a deterministic sign that the schedule is live.
RECIPE = f"""
defaults: [{BASE / "trainer_cpu.yaml"}, {BASE / "fer2013.yaml"}]
model:
  name: frame_classifier
  backbone: {{name: small_cnn, widths: [8, 16]}}
  head: {{name: linear}}
optimizer: {{name: adam, lr: 1.0e-3}}
data: {{subset: 64, loader: {{batch_size: 64, num_workers: 0}}, augment: []}}
trainer: {{max_epochs: 3, enable_progress_bar: false, enable_model_summary: false}}
loggers: {{wandb: null}}
callbacks:
  checkpoint: {{monitor: null}}  # save every epoch, so last.ckpt is the latest epoch
  freeze_unfreeze:
    name: freeze_unfreeze
    module: backbone
    epochs: 1
    optimizer: {{name: sgd, lr: 1.0e-3, momentum: 0.9, nesterov: true}}
    scheduler: {{name: plateau, monitor: val/samples, mode: max, patience: 0, factor: 0.5}}
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "kumari_tiny.yaml"
    path.write_text(RECIPE)
    return path


def args(run_dir: Path, fer2013_zip: Path, *extra: str) -> list[str]:
    return [f"data.root={fer2013_zip}", f"run.dir={run_dir}", *extra]


class Probe(pl.Callback):
    """Records, per epoch, the optimizer in use, the module modes while training, and the weights after."""

    def __init__(self) -> None:
        self.start: list[dict[str, Any]] = []
        self.training_modes: list[tuple[bool, bool]] = []
        self.after: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        opt = trainer.optimizers[0]
        self.start.append(
            {
                "optimizer": opt,
                "params": {id(p) for g in opt.param_groups for p in g["params"]},
                "schedulers": list(trainer.lr_scheduler_configs),
            }
        )

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.training_modes.append((pl_module.backbone.training, pl_module.head.training))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.after.append(snapshot(pl_module))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def fit_with_probe(cfg: dict[str, Any]) -> tuple[Any, Probe, dict[str, torch.Tensor]]:
    built = build(cfg, "fit")
    probe = Probe()
    built.trainer.callbacks.append(probe)
    before = snapshot(built.task)
    built.trainer.fit(built.task, datamodule=built.datamodule)
    return built, probe, before


@pytest.mark.slow
def test_phase1_freezes_backbone_and_bn_then_phase2_trains_all_with_sgd_and_plateau(
    recipe: Path, tmp_path: Path, fer2013_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built, probe, before = fit_with_probe(load_recipe(recipe, args(tmp_path, fer2013_zip)))
    task, trainer = built.task, built.trainer
    backbone_keys = [k for k in before if k.startswith("backbone.")]
    bn_stats = [k for k in backbone_keys if "running_" in k or "num_batches_tracked" in k]
    assert bn_stats and len(probe.after) == 3

    # Phase 1 (epoch 0): Adam 1e-3 over the head only; backbone in eval mode; weights and BN statistics fixed.
    adam = probe.start[0]["optimizer"]
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert probe.start[0]["params"] == {id(p) for p in task.head.parameters()}
    assert probe.training_modes[0] == (False, True)
    for key in backbone_keys:
        assert torch.equal(probe.after[0][key], before[key]), f"{key} changed while frozen"
    assert not torch.equal(probe.after[0]["head.net.1.weight"], before["head.net.1.weight"])

    # Phase 2 (epochs 1, 2): SGD Nesterov 1e-3 over every parameter, plateau schedule; everything trains.
    sgd = probe.start[1]["optimizer"]
    assert isinstance(sgd, torch.optim.SGD) and sgd is trainer.optimizers[0]
    group = sgd.param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.9, True)
    assert probe.start[1]["params"] == {id(p) for p in task.parameters()}
    assert all(p.requires_grad for p in task.parameters())
    assert probe.training_modes[1] == (True, True)
    (config,) = probe.start[1]["schedulers"]
    assert isinstance(config.scheduler, ReduceLROnPlateau) and config.scheduler.optimizer is sgd
    assert config.monitor == "val/samples" and config.interval == "epoch"
    for key in backbone_keys:
        if "num_batches_tracked" not in key:
            assert not torch.equal(probe.after[1][key], probe.after[0][key]), f"{key} did not train in phase 2"
    # 1e-3 through both phase-2 epochs, halved by the plateau after the second (val/samples never improves)
    assert config.scheduler.last_epoch == 2
    assert group["lr"] == pytest.approx(5e-4)

    err = capsys.readouterr().err
    assert "freeze_unfreeze: backbone frozen" in err
    switches = [line for line in err.splitlines() if "unfroze backbone" in line]
    assert len(switches) == 1 and "epoch 1" in switches[0] and "SGD lr=0.001" in switches[0], switches


def test_dotted_module_freezes_only_that_part(recipe: Path, tmp_path: Path, fer2013_zip: Path) -> None:
    overrides = args(tmp_path, fer2013_zip, "callbacks.freeze_unfreeze.module=backbone.features.0")
    _, probe, before = fit_with_probe(load_recipe(recipe, [*overrides, "trainer.max_epochs=1"]))
    first_conv, second_conv = "backbone.features.0.weight", "backbone.features.3.weight"
    assert torch.equal(probe.after[0][first_conv], before[first_conv])
    assert not torch.equal(probe.after[0][second_conv], before[second_conv])
    assert not torch.equal(
        probe.after[0]["backbone.features.1.running_mean"], before["backbone.features.1.running_mean"]
    )
    assert probe.training_modes[0] == (True, True)  # only features.0 is in eval mode


def test_epochs_zero_trains_everything_with_the_phase2_optimizer_from_the_start(
    recipe: Path, tmp_path: Path, fer2013_zip: Path
) -> None:
    overrides = args(tmp_path, fer2013_zip, "callbacks.freeze_unfreeze.epochs=0", "trainer.max_epochs=1")
    built, probe, before = fit_with_probe(load_recipe(recipe, overrides))
    opt = probe.start[0]["optimizer"]
    assert isinstance(opt, torch.optim.SGD) and probe.start[0]["params"] == {id(p) for p in built.task.parameters()}
    assert probe.training_modes[0] == (True, True)
    assert not torch.equal(probe.after[0]["backbone.features.0.weight"], before["backbone.features.0.weight"])


def last_ckpt(run_root: Path) -> dict[str, Any]:
    (path,) = run_root.glob("kumari_tiny/version_0/checkpoints/last.ckpt")
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def uninterrupted(recipe: Path, tmp_path_factory: pytest.TempPathFactory, fer2013_zip: Path) -> dict[str, Any]:
    """The reference: all 3 epochs (1 frozen, 2 in phase 2) in one go."""
    runs = tmp_path_factory.mktemp("uninterrupted")
    assert main(["fit", str(recipe), *args(runs, fer2013_zip)]) == 0
    return last_ckpt(runs)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_after", "phase", "state_key"),
    [(2, 2, "momentum_buffer"), (1, 1, "exp_avg")],  # interrupted after the switch (SGD), before it (Adam)
    ids=["after_switch", "before_switch"],
)
def test_resume_continues_in_the_saved_phase_and_matches_an_uninterrupted_run(
    stop_after: int,
    phase: int,
    state_key: str,
    recipe: Path,
    tmp_path: Path,
    fer2013_zip: Path,
    uninterrupted: dict[str, Any],
) -> None:
    assert main(["fit", str(recipe), *args(tmp_path, fer2013_zip, f"trainer.max_epochs={stop_after}")]) == 0
    stopped = last_ckpt(tmp_path)
    assert stopped["callbacks"]["FreezeUnfreeze"]["phase"] == phase
    opt_state = stopped["optimizer_states"][0]
    assert all(state_key in s for s in opt_state["state"].values())
    if phase == 2:
        group = opt_state["param_groups"][0]
        assert group["nesterov"] and group["lr"] == pytest.approx(1e-3)
        assert len(opt_state["state"]) == len(uninterrupted["optimizer_states"][0]["state"]), "every parameter"

    assert main(["fit", str(recipe), "--resume", "last", *args(tmp_path, fer2013_zip)]) == 0
    resumed = last_ckpt(tmp_path)
    assert resumed["epoch"] == uninterrupted["epoch"] == 2
    assert resumed["callbacks"]["FreezeUnfreeze"]["phase"] == 2
    for key, value in uninterrupted["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][key].float(), value.float(), atol=1e-5), key
    ref_state = uninterrupted["optimizer_states"][0]["state"]
    for i, state in resumed["optimizer_states"][0]["state"].items():
        assert torch.allclose(state["momentum_buffer"], ref_state[i]["momentum_buffer"], atol=1e-5)
    (schedule,), (reference,) = resumed["lr_schedulers"], uninterrupted["lr_schedulers"]
    if phase == 2:
        # Lightning skips a plateau step at the end of the epoch it resumes into (fit_loop: "metrics are not
        # saved in the checkpoint"), for any plateau schedule: the step count lags one epoch behind.
        stepped = ("last_epoch", "best", "num_bad_epochs")
        schedule, reference = ({k: v for k, v in d.items() if k not in stepped} for d in (schedule, reference))
    assert schedule == reference


@pytest.mark.parametrize(
    ("override", "message", "before_data"),
    [
        (
            "callbacks.freeze_unfreeze.optimizer.lrr=0.1",
            "Unknown key callbacks.freeze_unfreeze.optimizer.lrr for sgd. Did you mean 'lr'?",
            True,
        ),
        (
            "callbacks.freeze_unfreeze.scheduler.name=platau",
            "Unknown scheduler 'platau' at callbacks.freeze_unfreeze.scheduler.name. Did you mean 'plateau'?",
            True,
        ),
        ("callbacks.freeze_unfreeze.epochs=-1", "callbacks.freeze_unfreeze.epochs must be >= 0", True),
        (
            "callbacks.freeze_unfreeze.module=backbon",
            "Unknown module 'backbon' at callbacks.freeze_unfreeze.module: FrameClassifier has no 'backbon'."
            " Did you mean 'backbone'? Its modules: backbone, head, loss, loss_means, metrics",
            False,
        ),
        (
            "callbacks.freeze_unfreeze.module=backbone.stem",
            "Unknown module 'backbone.stem' at callbacks.freeze_unfreeze.module: FrameClassifier.backbone has no"
            " 'stem'. Its modules: features, pool",
            False,
        ),
    ],
)
def test_recipe_mistakes_fail_in_one_line(
    override: str,
    message: str,
    before_data: bool,
    recipe: Path,
    tmp_path: Path,
    fer2013_zip: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["fit", str(recipe), *args(tmp_path, fer2013_zip, override)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"emoframe: error: {message}"), err[-500:]
    if before_data:
        assert not list(tmp_path.rglob("config.yaml")), "a typo must fail before the run starts"
    assert not list(tmp_path.rglob("*.ckpt"))


def test_errors_name_the_recipe_key_the_user_chose(
    recipe: Path, tmp_path: Path, fer2013_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = "{name: freeze_unfreeze, epochs: 2, optimizer: {name: sgd, lr: 0.001, nesterov: maybe}}"
    overrides = args(tmp_path, fer2013_zip, "callbacks.freeze_unfreeze=null", f"callbacks.finetune={entry}")
    assert main(["fit", str(recipe), *overrides]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("emoframe: error: Wrong type for callbacks.finetune.optimizer.nesterov"), last
    with pytest.raises(RecipeError, match="Unknown key callbacks.freeze_unfreeze.optimizer.momentun"):
        FreezeUnfreeze(optimizer={"name": "sgd", "lr": 0.1, "momentun": 0.9})


DDP_PROBE = '''
"""Test plugin: every DDP process saves its weights after each epoch, so the processes can be compared."""
from pathlib import Path

import pytorch_lightning as pl
import torch

from emoframe.registry import CALLBACKS


@CALLBACKS.register("ddp_weights_probe")
class DDPWeightsProbe(pl.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().clone() for k, v in pl_module.named_parameters()}
        torch.save(state, self.out / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.pt")
'''


@pytest.mark.slow
def test_ddp_processes_stay_identical_after_unfreezing(recipe: Path, tmp_path: Path, fer2013_zip: Path) -> None:
    """DDP syncs only the gradients of parameters that were trainable when it wrapped the model; the
    callback re-wraps at the switch, else the unfrozen backbone would train apart on each process."""
    (tmp_path / "ddp_weights_probe.py").write_text(DDP_PROBE)
    probe_dir = tmp_path / "probe"
    cmd = [sys.executable, "-m", "emoframe", "fit", str(recipe), *args(tmp_path / "runs", fer2013_zip)]
    cmd += ["imports=[ddp_weights_probe]", f"callbacks.probe={{name: ddp_weights_probe, out: {probe_dir}}}"]
    cmd += ["data.loader.batch_size=16", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    env.pop("EMOFRAME_RUN_DIR", None)
    log = tmp_path / "ddp.log"
    with log.open("w") as out:  # a file, not a pipe: W&B's service process may outlive the run and hold a pipe
        proc = subprocess.run(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=600)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert log.read_text().count("unfroze backbone") == 1, "the switch is logged once (rank 0)"
    initial = None
    for epoch in range(3):
        rank0 = torch.load(probe_dir / f"rank0_epoch{epoch}.pt")
        rank1 = torch.load(probe_dir / f"rank1_epoch{epoch}.pt")
        for key, value in rank0.items():
            assert torch.equal(value, rank1[key]), f"epoch {epoch}: {key} differs between the two processes"
        if epoch == 0:
            initial = rank0
    assert initial is not None
    assert not torch.equal(rank0["backbone.features.0.weight"], initial["backbone.features.0.weight"])
