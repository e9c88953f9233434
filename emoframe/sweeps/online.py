"""W&B online: ``wandb.sweep`` creates the sweep from the same file, ``wandb.agent`` runs its trials.

W&B's controller lives on the W&B server: it samples, applies hyperband and enforces ``run_cap``. The agent's
function launches the trial as the local engine does: ``emoframe fit RECIPE key=value ...`` from the file's
``command``, with the values the server chose (``WANDB_SWEEP_PARAM_PATH``, written by the agent). The child
inherits the agent's ``WANDB_RUN_ID`` and ``WANDB_SWEEP_ID``, so its W&B logger (rank 0 only: Lightning's
``WandbLogger`` creates the run on global rank zero) becomes the sweep's run; the other DDP ranks create none.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from emoframe.errors import RecipeError
from emoframe.files.processes import die_with_parent
from emoframe.sweeps.check import check_recipe
from emoframe.sweeps.command import check_command, trial_command
from emoframe.sweeps.schema import Sweep
from emoframe.sweeps.space import override


def is_online() -> bool:
    """W&B online: WANDB_MODE=online, or an API key and no offline mode (emoframe's logger uses the same rule)."""
    from emoframe.callbacks import wandb_offline_by_default

    return not wandb_offline_by_default()


def require_online(what: str, sweep: Sweep) -> None:
    if not is_online():
        raise RecipeError(
            f"{what} needs the W&B server, and W&B is offline here (WANDB_MODE / no WANDB_API_KEY): run the local "
            f"engine instead: emoframe sweep {sweep.path} --local"
        )


def sampled_values() -> dict[str, Any]:
    """The values the W&B controller chose for this run: ``{name: {value: v}}`` in WANDB_SWEEP_PARAM_PATH."""
    import yaml

    path = os.environ.get("WANDB_SWEEP_PARAM_PATH")
    if not path or not Path(path).is_file():
        raise RecipeError("wandb agent gave this trial no parameters (WANDB_SWEEP_PARAM_PATH is not set)")
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return {k: v.get("value") if isinstance(v, dict) else v for k, v in raw.items() if not k.startswith("_")}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """W&B hands nested parameters back nested (optimizer: {lr: ...}); emoframe's overrides are dotted."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict) and f"{prefix}{k}" not in values:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_online(sweep: Sweep, sweep_id: str | None = None, count: int | None = None) -> str:
    """Create the sweep (unless ``sweep_id`` joins one) and run an agent here; the sweep's id."""
    require_online("--agent" if sweep_id else "the W&B sweep", sweep)
    check_command(sweep)
    import wandb

    project = sweep.project or os.environ.get("WANDB_PROJECT") or "emoframe"
    if sweep_id is None:
        check_recipe(sweep)  # every swept key against the recipe, before W&B holds a sweep of failing trials
        sweep_id = wandb.sweep(sweep.raw, project=project, entity=sweep.entity)
        print(f"W&B sweep {sweep_id}: join from any machine with emoframe sweep {sweep.path} --agent {sweep_id}")
    names = {p.name for p in sweep.parameters}

    def trial() -> None:
        values = _flatten(sampled_values())
        overrides = [override(k, v) for k, v in values.items() if k in names or "." in k]
        argv = trial_command(sweep, overrides)
        env = {k: v for k, v in os.environ.items() if k != "EMOFRAME_RUN_DIR"}
        code = subprocess.run(argv, env=env, preexec_fn=die_with_parent, check=False).returncode
        if code:
            sys.exit(code)  # the agent marks the run failed

    wandb.agent(sweep_id, function=trial, project=project, entity=sweep.entity, count=count)
    return sweep_id
