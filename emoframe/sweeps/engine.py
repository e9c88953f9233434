"""The local engine: Optuna runs the search on SQLite (default) or any RDB URL, each trial an ``emoframe fit``.

Exact accounting, across any number of workers on any number of machines:

- **Slots are created once.** The worker that creates the study enqueues every trial it will ever run as a
  WAITING Optuna trial: the grid's points (each once), or ``run_cap`` empty slots that the sampler fills when
  claimed. Workers only claim WAITING trials, by Optuna's atomic WAITING -> RUNNING transition, so no two workers
  run one slot and no worker creates trials past ``run_cap``. (Optuna's GridSampler, by contrast, may hand the
  same point to two workers that ask at once.) Without ``run_cap``, random and bayes sweeps add a slot per claim
  and run until stopped, as W&B's do.
- **A dead worker's trial is resumed.** Each RUNNING trial records its worker (host, pid, process start time) and
  the worker records Optuna heartbeats. On (re)start and before each claim a worker fails the RUNNING trials whose
  worker is dead: a dead pid on this host at once, any host once its heartbeat is older than ``GRACE_S``. Failing
  is atomic, so one worker wins, and Optuna's ``RetryHeartbeatStaleTrialCallback`` enqueues the same parameters
  with the reported epochs. Its claimer resumes the run from its ``last.ckpt`` (``emoframe fit ... --resume``) in
  the same run directory, or re-runs it from scratch when no checkpoint was written yet. The interrupted attempt
  stays in the storage as FAIL and is listed in the retry's ``retry_history``, so it is never counted.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoframe.callbacks.sweep import ENV, make_pruner, open_storage
from emoframe.errors import RecipeError
from emoframe.files.atomic import removed_unless_finished
from emoframe.files.processes import die_with_parent
from emoframe.sweeps.check import check_recipe
from emoframe.sweeps.command import check_command, trial_command
from emoframe.sweeps.schema import Sweep
from emoframe.sweeps.space import axis_size, grid_points, grid_size, override, suggest

HEARTBEAT_S = 10
GRACE_S = 120
MAX_RETRY = 3
MAX_FAILURES_IN_A_ROW = 3
MAX_SLOTS = 10_000  # trials enqueued when a sweep starts (run_cap, grid points): more would take minutes to write
READY = "emoframe"  # study user attribute: the creator has enqueued every slot
STOPPED = "emoframe_stopped"
LOCAL_ONLY = {
    "metrics": "multi-objective metrics:",
    "scheduler": "scheduler:",
    "job": "job:",
    "image_uri": "image_uri:",
}


class SweepInterrupted(RecipeError):
    """Ctrl-C or SIGTERM: the running trial is marked for resumption; the next start continues it."""


@dataclass
class Outcome:
    number: int
    slot: int
    state: str
    value: float | None
    best_epoch: int | None
    seconds: float
    params: dict[str, Any]
    error: str | None = None


def folder_of(sweep: Sweep, folder: str | Path | None = None) -> Path:
    """``<EMOFRAME_RUNS or runs>/sweeps/<name>``: the storage, the trials' run directories, logs and report."""
    if folder is not None:
        return Path(folder)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", sweep.name).strip("_") or "sweep"
    return Path(os.environ.get("EMOFRAME_RUNS", "runs")) / "sweeps" / slug


def default_storage(folder: Path) -> str:
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


def shown(url: str) -> str:
    """A storage URL without its password."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def check_local(sweep: Sweep) -> None:
    """What the local engine cannot run, in one line (the same file still works with W&B online)."""
    if sweep.method == "custom":
        raise RecipeError(
            f"{sweep.path}: method: custom needs W&B's scheduler; the local engine runs grid, random, bayes"
        )
    for key, what in LOCAL_ONLY.items():
        if sweep.raw.get(key) is not None:
            raise RecipeError(f"{sweep.path}: {key}: {what} is W&B-only; the local engine cannot run it")
    if sweep.metric is None:
        raise RecipeError(
            f"{sweep.path}: metric: the local engine ranks trials by it; add {{name: val/acc, goal: maximize}}"
        )
    check_command(sweep)
    pruner_spec(sweep)
    slots = sweep.run_cap
    if sweep.method == "grid":
        size = grid_size(sweep.parameters)
        if size > MAX_SLOTS:
            axes = ", ".join(f"{p.name}: {axis_size(p):g}" for p in sweep.parameters if axis_size(p) > 1)
            raise RecipeError(
                f"{sweep.path}: parameters: method grid has {size:g} points ({axes}); the local engine enqueues "
                f"every point when the sweep starts, at most {MAX_SLOTS} (narrow the ranges, or use method random)"
            )
    if slots is not None and slots > MAX_SLOTS:
        raise RecipeError(
            f"{sweep.path}: run_cap: the local engine enqueues every slot when the sweep starts, at most "
            f"{MAX_SLOTS}; got {slots} (leave run_cap out to run until stopped)"
        )


def pruner_spec(sweep: Sweep) -> dict[str, Any] | None:
    """W&B hyperband as successive halving: first band ``min_iter`` (or ``max_iter / eta**s``), then times eta."""
    early = sweep.early_terminate
    if not early:
        return None
    eta = early.get("eta", 3)
    if float(eta) != int(eta):
        raise RecipeError(f"{sweep.path}: early_terminate.eta: the local engine takes a whole number, got {eta}")
    if "min_iter" in early:
        first = int(early["min_iter"])
    else:
        first = 0
        for k in range(1, int(early["s"]) + 1):  # the bands shrink: the last one of at least 1 is the first run
            band = int(early["max_iter"] / eta**k)
            if band < 1:
                break
            first = band
        if first < 1:
            raise RecipeError(f"{sweep.path}: early_terminate: max_iter / eta**k is below 1 for every k up to s")
    return {"min_resource": first, "eta": int(eta)}


def make_sampler(sweep: Sweep) -> Any:
    import optuna

    if sweep.method == "bayes":  # constant_liar: parallel workers do not pile onto one point
        startup = max(2, min(10, (sweep.run_cap or 40) // 4))
        return optuna.samplers.TPESampler(constant_liar=True, n_startup_trials=startup)
    return optuna.samplers.RandomSampler()  # random; grid trials are all enqueued with their values


def connect(url: str) -> Any:
    """The storage with heartbeats and the retry callback; a bad URL or an unreachable server in one line."""
    import optuna
    import sqlalchemy.exc

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, retry callback
    for attempt in range(5):
        try:
            return open_storage(
                url,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY, inherit_intermediate_values=True
                ),
            )
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as err:
            # two workers creating the tables (or stamping their version) at once: the second retries
            racing = isinstance(err, sqlalchemy.exc.IntegrityError) or url.startswith("sqlite")
            if attempt == 4 or not racing:
                raise RecipeError(f"--storage {shown(url)}: {str(err.orig).splitlines()[0]}") from None
            time.sleep(0.5 + attempt)
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ImportError, ValueError) as err:
            raise RecipeError(f"--storage {shown(url)}: {str(err).splitlines()[0]} (an Optuna RDB URL)") from None
    raise AssertionError("unreachable")


def open_study(sweep: Sweep, storage: Any, join: bool) -> Any:
    """Create the study and enqueue its slots once (the creator), or load it and wait until it is ready."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs = {"study_name": sweep.name, "storage": storage, "sampler": make_sampler(sweep)}
    kwargs["pruner"] = make_pruner(pruner_spec(sweep))
    created = False
    try:
        if join:
            study = optuna.load_study(**kwargs)
        else:
            direction = "maximize" if sweep.goal == "maximize" else "minimize"
            study = optuna.create_study(direction=direction, **kwargs)
            created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
    except KeyError:
        raise RecipeError(
            f"--join: no sweep named '{sweep.name}' in {shown(str(storage.url))}; start it without --join"
        ) from None
    if created:
        if sweep.method == "grid":
            points = grid_points(sweep.parameters)
            for point in points[: sweep.run_cap] if sweep.run_cap else points:
                study.enqueue_trial(point)
        else:
            for _ in range(sweep.run_cap or 0):
                study.enqueue_trial({})
        study.set_user_attr(READY, {"fingerprint": sweep.fingerprint(), "file": str(sweep.path)})
    deadline = time.monotonic() + 120
    while READY not in study.user_attrs:
        if time.monotonic() > deadline:
            raise RecipeError(f"sweep '{sweep.name}': the worker that created it never finished enqueuing its trials")
        time.sleep(0.5)
    if study.user_attrs[READY]["fingerprint"] != sweep.fingerprint():
        raise RecipeError(
            f"{sweep.path}: sweep '{sweep.name}' was started from another version of this file (method, metric, "
            "parameters, run_cap or early_terminate differ): give it another name: or its own --dir"
        )
    return study


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live pid from a reused one."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: Any, started: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started is None or _start_time(pid) in (None, started)


def _kill_group(pid: Any, started: Any) -> None:
    """A dead worker's trial (and its DDP ranks, in its process group) must not train on beside the retry."""
    if _alive(pid, started):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def recover(study: Any) -> list[int]:
    """Fail the RUNNING trials whose worker is dead and enqueue their retries; the numbers failed here."""
    import optuna
    from optuna.trial import TrialState

    optuna.storages.fail_stale_trials(study)  # heartbeats older than GRACE_S, on any host
    storage, host, failed = study._storage, socket.gethostname(), []
    for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        u = t.user_attrs
        if u.get("worker_host") == host:
            if _alive(u.get("worker_pid"), u.get("worker_started")):
                continue
            _kill_group(u.get("trial_pid"), u.get("trial_started"))
        elif "worker_host" in u or t.datetime_start is None or time.time() - t.datetime_start.timestamp() < GRACE_S:
            continue  # another host's worker: its heartbeat tells (fail_stale_trials above)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t._trial_id)
    retry = storage.get_heartbeat_stale_trial_callback()
    for trial_id in failed:
        retry(study, copy.deepcopy(storage.get_trial(trial_id)))
    return [storage.get_trial(i).number for i in failed]


def claim(study: Any, sweep: Sweep) -> Any:
    """A WAITING trial turned RUNNING by this worker (atomic in the storage), or None when none is left."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    for _ in range(2):
        for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    for key, value in worker_attrs().items():
                        storage.set_trial_user_attr(t._trial_id, key, value)
                    storage.record_heartbeat(t._trial_id)
                    return optuna.Trial(study, t._trial_id)
        if sweep.run_cap is not None or sweep.method == "grid":
            return None
        study.enqueue_trial({})  # no run_cap: random and bayes run until stopped
    return None


def worker_attrs() -> dict[str, Any]:
    return {"worker_host": socket.gethostname(), "worker_pid": os.getpid(), "worker_started": _start_time(os.getpid())}


def best_of(values: dict[int, float], goal: str) -> tuple[int, float] | None:
    """(epoch, value) of the best finite reported value."""
    finite = [(e, v) for e, v in values.items() if v == v and abs(v) != float("inf")]
    if not finite:
        return None
    pick = max if goal == "maximize" else min
    return pick(finite, key=lambda ev: (ev[1], -ev[0]) if goal == "maximize" else (ev[1], ev[0]))


def last_checkpoint(run_dir: Path) -> Path | None:
    """The run's ``last.ckpt`` if it reads as an emoframe checkpoint (a kill mid-write leaves a broken one)."""
    from emoframe.checkpoints import read_checkpoint

    path = run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        return None
    try:
        read_checkpoint(path)
    except Exception:  # any unreadable file: the trial is re-run from scratch
        return None
    return path


class _Terminated(Exception):
    pass


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def run_trial(sweep: Sweep, study: Any, trial: Any, folder: Path, url: str) -> Outcome:
    """Sample (or read back) the trial's values, run ``emoframe fit``, and tell the storage how it ended."""
    from optuna.trial import TrialState

    storage, trial_id = study._storage, trial._trial_id
    frozen = storage.get_trial(trial_id)
    slot = int(frozen.user_attrs.get("slot", frozen.number))
    params = {p.name: suggest(trial, p) for p in sweep.parameters}
    run_dir = folder / "trials" / f"{slot:04d}"
    resume = last_checkpoint(run_dir) if frozen.system_attrs.get("failed_trial") is not None else None
    if resume is None and run_dir.exists():  # an interrupted attempt without a usable checkpoint: from scratch
        shutil.rmtree(run_dir)
    overrides = [override(k, v) for k, v in params.items()]
    overrides += [override("run.dir", str(folder.resolve())), "run.name=trials", override("run.version", f"{slot:04d}")]
    argv = trial_command(sweep, overrides, resume)
    for key, value in {"slot": slot, "params": params, "run_dir": str(run_dir), "launch_time": time.time()}.items():
        storage.set_trial_user_attr(trial_id, key, value)
    env = {k: v for k, v in os.environ.items() if k != "EMOFRAME_RUN_DIR"}
    env[ENV] = json.dumps(
        {
            "storage": url,
            "study": sweep.name,
            "trial_id": trial_id,
            "metric": sweep.metric["name"],  # type: ignore[index]
            "params": params,
            "pruner": pruner_spec(sweep),
        }
    )
    env.update({"WANDB_RUN_GROUP": sweep.name, "WANDB_JOB_TYPE": "sweep", "WANDB_NAME": f"{sweep.name}-{slot:04d}"})
    log = folder / "logs" / f"trial_{slot:04d}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent, start_new_session=True
        )
        try:
            storage.set_trial_user_attr(trial_id, "trial_pid", proc.pid)
            storage.set_trial_user_attr(trial_id, "trial_started", _start_time(proc.pid))
            beat = time.monotonic()
            while proc.poll() is None:
                time.sleep(0.5)
                if time.monotonic() - beat >= HEARTBEAT_S:
                    storage.record_heartbeat(trial_id)
                    beat = time.monotonic()
        except (KeyboardInterrupt, _Terminated):
            interrupted = True
            _stop(proc)
        finally:
            signal.signal(signal.SIGTERM, previous)
    seconds = time.monotonic() - start
    if interrupted:
        _hand_back(study, trial_id)
        raise SweepInterrupted(
            f"interrupted: trial {frozen.number} (slot {slot:04d}) will resume from its last checkpoint when "
            f"`emoframe sweep {sweep.path}` runs again"
        )
    frozen = storage.get_trial(trial_id)
    attrs = frozen.user_attrs
    best = best_of(frozen.intermediate_values, sweep.goal)
    if best is not None:
        storage.set_trial_user_attr(trial_id, "best_epoch", best[0])
    storage.set_trial_user_attr(trial_id, "seconds", seconds)
    error = None
    if proc.returncode == 0 and attrs.get("pruned_epoch") is not None:
        study.tell(frozen.number, state=TrialState.PRUNED, skip_if_finished=True)
        state = "PRUNED"
    elif proc.returncode == 0 and best is not None and not attrs.get("error"):
        study.tell(frozen.number, best[1], skip_if_finished=True)
        state = "COMPLETE"
    else:
        error = attrs.get("error") or _last_line(log) or f"exit status {proc.returncode}"
        if proc.returncode == 0 and best is None and not attrs.get("error"):
            error = f"metric {sweep.metric['name']} was never finite"  # type: ignore[index]
        storage.set_trial_user_attr(trial_id, "error", error)
        study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
        state = "FAIL"
    return Outcome(
        number=frozen.number,
        slot=slot,
        state=state,
        value=best[1] if best else None,
        best_epoch=best[0] if best else None,
        seconds=seconds,
        params=params,
        error=error,
    )


def _stop(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _hand_back(study: Any, trial_id: int) -> None:
    """An interrupted trial: FAIL now, retried (resumed) by whichever worker claims it next."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            storage.get_heartbeat_stale_trial_callback()(study, copy.deepcopy(storage.get_trial(trial_id)))


def _last_line(log: Path) -> str | None:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [None])[-1]


def progress_line(sweep: Sweep, study: Any, outcome: Outcome) -> str:
    """One line per finished trial: the count, this trial's result and time, the best so far, the values."""
    from emoframe.sweeps.report import accounting

    counts = accounting(study)
    total = sweep.run_cap or (grid_size(sweep.parameters) if sweep.method == "grid" else None)
    done = counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"]
    metric = sweep.metric["name"]  # type: ignore[index]
    result = f"{metric}={outcome.value:.4f} (epoch {outcome.best_epoch})" if outcome.value is not None else ""
    best = ""
    with contextlib.suppress(ValueError):
        b = study.best_trial
        best = f"best {b.value:.4f} (slot {int(b.user_attrs.get('slot', b.number)):04d})"
    swept = {p.name for p in sweep.parameters if not p.constant}
    values = " ".join(override(k, v) for k, v in outcome.params.items() if k in swept)
    error = f" error: {outcome.error}" if outcome.error else ""
    return (
        f"[{done}/{total or '?'}] slot {outcome.slot:04d} {outcome.state:<8} {result} {best} "
        f"{outcome.seconds:.0f} s  {values}{error}"
    ).replace("  ", " ")


def run_worker(
    sweep: Sweep, folder: Path, storage_url: str | None = None, join: bool = False, count: int | None = None
) -> Any:
    """One worker: claim, run and tell trials until none is left (or ``count`` are done); then the report."""
    from emoframe.sweeps.report import write_report

    check_local(sweep)
    check_recipe(sweep)  # before anything is written: a key the recipe lacks is one line, not failed trials
    url = storage_url or default_storage(folder)
    with removed_unless_finished([folder]):  # a refused join or an unreachable storage leaves no sweep folder
        folder.mkdir(parents=True, exist_ok=True)
        storage = connect(url)
        study = open_study(sweep, storage, join)
    print(f"Sweep {sweep.name}: {sweep.method}, storage {shown(url)}, runs in {folder}/trials", file=sys.stderr)
    resumed = recover(study)
    if resumed:
        print(f"Interrupted trials {resumed}: queued to resume from their last checkpoints", file=sys.stderr)
    ran, failures, ended = 0, 0, 0
    last: Outcome | None = None
    while count is None or ran < count:
        if study.user_attrs.get(STOPPED):
            print(f"Sweep stopped: {study.user_attrs[STOPPED]}", file=sys.stderr)
            break
        recover(study)
        trial = claim(study, sweep)
        if trial is None:
            break
        outcome = run_trial(sweep, study, trial, folder, url)
        ran += 1
        print(progress_line(sweep, study, outcome), flush=True)
        failures = failures + 1 if outcome.state == "FAIL" else 0
        ended += outcome.state != "FAIL"
        last = outcome
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise RecipeError(
                f"{failures} trials in a row failed; the last (slot {outcome.slot:04d}): {outcome.error} "
                f"(log: {folder / 'logs' / f'trial_{outcome.slot:04d}.log'})"
            )
        target = (sweep.metric or {}).get("target")
        if target is not None and outcome.state == "COMPLETE" and outcome.value is not None:
            reached = outcome.value >= target if sweep.goal == "maximize" else outcome.value <= target
            if reached:
                study.set_user_attr(STOPPED, f"slot {outcome.slot:04d} reached the target {target}")
    paths = write_report(sweep, study, folder)
    if last is not None and not ended:
        raise RecipeError(no_trial_completed(ran, last, folder))
    return paths


def no_trial_completed(ran: int, last: Outcome, folder: Path) -> str:
    """The line of a worker whose every trial failed (fewer than MAX_FAILURES_IN_A_ROW of them): exit 2, not 0."""
    log = folder / "logs" / f"trial_{last.slot:04d}.log"
    return f"no trial completed: {ran} of {ran} failed; the last (slot {last.slot:04d}): {last.error} (log: {log})"
