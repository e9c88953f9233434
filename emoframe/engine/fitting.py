"""``fit``: a recipe trained in a run folder, resumed from its own checkpoint or continued after a requeue."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import Callback

from emoframe.builder import build, new_run_dir
from emoframe.checkpoints import check_fits, find_checkpoint, read_checkpoint, run_dir_of_checkpoint
from emoframe.engine.recipes import recipe_for
from emoframe.engine.runs import handed_to_launched_ranks, remove_unstarted_run
from emoframe.launch import detect_launch, restart_checkpoint


@dataclass
class FitResult:
    """What a fit left: its run folder, its checkpoints and the last logged figures (``val/acc``, ...)."""

    run_dir: Path
    best: Path | None
    last: Path | None
    metrics: dict[str, float] = field(default_factory=dict)


def fit(
    recipe: str | Path | dict[str, Any],
    overrides: list[str] | None = None,
    *,
    resume: str | Path | None = None,
    trial: Callback | None = None,
) -> FitResult:
    """Train ``recipe`` (a file with ``key=value`` overrides, or a loaded recipe) in a new run folder.

    ``resume``: ``last`` (the newest run of this recipe) or a checkpoint path, continued in its own run folder.
    ``trial``: a sweep trial's callback (reports and pruning), handed in by ``emoframe sweep``'s workers.
    """
    cfg = recipe_for(recipe, overrides)
    launch = detect_launch()
    ckpt = find_checkpoint(cfg, str(resume)) if resume else None
    run_dir = (run_dir_of_checkpoint(ckpt) if ckpt else None) or new_run_dir(cfg)
    if ckpt is None:  # a requeued SLURM job (or a restarted launch of a run.version) continues its own run
        version = (cfg.get("run") or {}).get("version")
        ckpt = restart_checkpoint(run_dir, None if version is None else str(version), launch)
    checkpoint = read_checkpoint(ckpt) if ckpt else None  # a bad file fails here, in one line
    if ckpt is not None:
        job = f"SLURM job {launch.job}" if launch.job else "this launch"
        why = "" if resume else f" (restart {launch.restart_count} of {job})"
        print(f"Resuming from {ckpt}{why}", file=sys.stderr)
    fresh = not run_dir.exists()
    try:
        resume_epoch = int(checkpoint.payload.get("epoch", 0)) if checkpoint is not None else None
        built = build(cfg, "fit", run_dir=run_dir, resume_epoch=resume_epoch, callbacks=[trial] if trial else [])
        if checkpoint is not None:
            check_fits(checkpoint, built.task)
        print(f"Run directory: {built.run_dir}", file=sys.stderr)
        with handed_to_launched_ranks(built.run_dir):
            built.trainer.fit(built.task, datamodule=built.datamodule, ckpt_path=str(ckpt) if ckpt else None)
    except BaseException:
        remove_unstarted_run(run_dir, fresh, launch.is_global_zero)
        raise
    found = {n: run_dir / "checkpoints" / f"{n}.ckpt" for n in ("best", "last")}
    return FitResult(
        run_dir=run_dir,
        best=found["best"] if found["best"].is_file() else None,
        last=found["last"] if found["last"].is_file() else None,
        metrics={k: float(v) for k, v in built.trainer.callback_metrics.items() if v.numel() == 1},
    )
