"""How this process was launched (plain, Lightning's own DDP launcher, torchrun, SLURM), and one run directory
for all the processes of a run, on every node.

The run directory is needed before the Trainer exists (its loggers and checkpoint callbacks are built with it),
so before Lightning creates the process group inside ``trainer.fit``. Each launch gets its directory so:

- **SLURM** (detected as Lightning's ``SLURMEnvironment`` detects it): named after the job,
  ``slurm-<SLURM_JOB_ID>`` (``.<SLURM_STEP_ID>`` for an ``srun`` step), computed alike on every node with no
  communication. A requeued job (same job id, ``SLURM_RESTART_COUNT`` > 0) therefore finds its own directory
  again and resumes from its ``last.ckpt``.
- **torchrun**: global rank 0 picks the directory as a single process would (the next ``version_<n>``) and hands
  it to the others through the elastic agent's c10d store (``MASTER_ADDR:MASTER_PORT``, the store torchrun
  already runs for the rendezvous, reachable before any process group exists). The store outlives the workers,
  so an elastic restart (``--max-restarts``, ``TORCHELASTIC_RESTART_COUNT`` > 0, after a worker failed) finds
  the first attempt's choice there and continues that run from its ``last.ckpt``.
- **Lightning's launcher** (``trainer.devices=2`` without torchrun): Lightning starts ranks 1.. as copies of
  rank 0's command after rank 0 has chosen; they read its choice from ``EMOFRAME_RUN_DIR``.
- ``run.version`` set in the recipe or on the command line (every rank sees the same overrides) wins over all.

Only global rank 0 creates files; the other ranks only need the same path string.
"""

from __future__ import annotations

import datetime
import itertools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from emoframe.errors import RecipeError

RUN_DIR_ENV = "EMOFRAME_RUN_DIR"  # hands rank 0's run directory to the ranks Lightning's launcher starts
STORE_TIMEOUT = datetime.timedelta(minutes=10)  # how long ranks > 0 wait for rank 0's choice
SLURM_SPECIAL_STEPS = 0xFFFFFFF0  # SLURM's batch / extern / interactive "steps" carry ids from here up
LAUNCH_VARIABLES = re.compile(
    r"(SLURM_.*|TORCHELASTIC_.*|RANK|LOCAL_RANK|WORLD_SIZE|LOCAL_WORLD_SIZE|GROUP_RANK|GROUP_WORLD_SIZE|NODE_RANK|"
    r"MASTER_ADDR|MASTER_PORT|" + RUN_DIR_ENV + ")"
)
"""Variables that make a process look launched by a scheduler; tests start without them."""

_agreements = itertools.count()  # each run directory agreed on in this process gets its own store key


@dataclass(frozen=True)
class Launch:
    """What the environment says about this process."""

    kind: str  # "slurm", "torchrun", "lightning" (a rank Lightning's launcher started) or "single"
    global_rank: int = 0
    restart_count: int = 0  # SLURM_RESTART_COUNT (requeues) or TORCHELASTIC_RESTART_COUNT (elastic restarts)
    job: str | None = None  # the SLURM job (and step), which names the run directory

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    @property
    def restarted(self) -> bool:
        """A requeued SLURM job or a restarted torchrun attempt: its pinned run directory may hold a checkpoint."""
        return self.restart_count > 0


def slurm_detected(env: Mapping[str, str]) -> bool:
    """Lightning's rule (``SLURMEnvironment.detect``): ``SLURM_NTASKS`` set (``srun``/``sbatch``), and the job is not
    named ``bash`` or ``interactive`` (an ``salloc`` shell launching by other means). Without ``SLURM_JOB_ID`` there is
    no job to name the run after, so that is required too."""
    return "SLURM_NTASKS" in env and "SLURM_JOB_ID" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def _int(env: Mapping[str, str], key: str, default: int = 0) -> int:
    try:
        return int(env.get(key, default))
    except ValueError:
        return default


def detect_launch(env: Mapping[str, str] | None = None) -> Launch:
    """The launch of this process, from its environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    if slurm_detected(env):
        job = env["SLURM_JOB_ID"]
        step = _int(env, "SLURM_STEP_ID", SLURM_SPECIAL_STEPS)
        if step < SLURM_SPECIAL_STEPS:  # an srun step; the batch script itself has none
            job = f"{job}.{step}"
        rank = _int(env, "RANK", _int(env, "SLURM_PROCID"))  # Lightning's order: RANK first
        return Launch("slurm", rank, _int(env, "SLURM_RESTART_COUNT"), job)
    if env.get("TORCHELASTIC_RUN_ID") is not None:  # torch.distributed.is_torchelastic_launched()
        return Launch("torchrun", _int(env, "RANK"), _int(env, "TORCHELASTIC_RESTART_COUNT"))
    if env.get(RUN_DIR_ENV) and _int(env, "LOCAL_RANK") > 0:
        return Launch("lightning", _int(env, "LOCAL_RANK"))
    return Launch("single")


def next_version(base: Path) -> Path:
    """``base/version_<n>``, the next free n."""
    versions = [int(m.group(1)) for p in base.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return base / f"version_{max(versions, default=-1) + 1}"


def run_dir_for(base: Path, version: str | None, launch: Launch | None = None) -> Path:
    """The run directory under ``base`` (``<run.dir>/<run.name>``) for this launch; the same on every rank and node.

    ``version`` (``run.version``) pins it; else SLURM names it after the job; else global rank 0 picks the next
    ``version_<n>`` and shares it (Lightning's launched ranks read it from the environment, torchrun's ranks
    from the agent's store).
    """
    launch = launch or detect_launch()
    if version is not None:
        return base / str(version)
    if launch.kind == "slurm":
        return base / f"slurm-{launch.job}"
    if launch.kind == "lightning":
        return Path(os.environ[RUN_DIR_ENV])
    if launch.kind == "torchrun":
        return Path(share_from_rank_zero(lambda: str(next_version(base)), launch))
    if _int(os.environ, "NODE_RANK") > 0:  # a node of a by-hand multi-node launch: nothing tells it rank 0's choice
        raise RecipeError(
            "run.version: NODE_RANK is set, so this is one node of a multi-node run started by hand; set "
            "run.version=NAME (the same on every node), or launch with torchrun or srun"
        )
    return next_version(base)


def pinned(version: str | None, launch: Launch) -> bool:
    """Whether the run directory is the same on a relaunch: ``run.version`` given, named after a SLURM job, or a
    torchrun attempt's (a restarted attempt reads the first one's from the agent's store)."""
    return version is not None or launch.kind in ("slurm", "torchrun")


def share_from_rank_zero(choose: Callable[[], str], launch: Launch) -> str:
    """Rank 0's ``choose()``, read by every rank of a torchrun launch through the elastic agent's store.

    torchrun's agent serves a c10d TCPStore at ``MASTER_ADDR:MASTER_PORT`` to all its workers
    (``TORCHELASTIC_USE_AGENT_STORE=True``); the process group Lightning creates later uses the same store.
    """
    import torch.distributed as dist  # torch is loaded by then anyway; distributed only on this path

    key = f"emoframe/run_dir/{next(_agreements)}"  # the same in every attempt: a restart finds the first's
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or not os.environ.get("MASTER_PORT"):
        raise RecipeError(
            "run.version: this torchrun launch has no agent store to agree on a run directory through; "
            "set run.version=NAME (the same on every node)"
        )
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=STORE_TIMEOUT
    )
    if launch.is_global_zero and not (launch.restarted and store.check([key])):
        store.set(key, choose())
    return store.get(key).decode()


def restart_checkpoint(run_dir: Path, version: str | None, launch: Launch | None = None) -> Path | None:
    """``run_dir/checkpoints/last.ckpt`` when this is a requeued or restarted launch of a pinned run directory that
    holds one: the checkpoint to resume from without ``--resume``.

    ``last.ckpt`` (written at every epoch end, with the RNG states) rather than Lightning's ``hpc_ckpt_<n>.ckpt``
    (written on SLURM's warning signal, mid-epoch): a resume from an epoch boundary repeats the uninterrupted run;
    one from mid-epoch does not (Lightning re-reads the epoch's loader from its start). Lightning loads an
    ``hpc_ckpt`` by itself only when there is no ``last.ckpt`` yet (a job requeued during its first epoch).
    """
    launch = launch or detect_launch()
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if launch.restarted and pinned(version, launch) and last.is_file() else None
