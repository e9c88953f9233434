"""``emoframe sweep FILE``: which engine runs it (W&B online, or the local Optuna engine), or the report."""

from __future__ import annotations

import sys
from pathlib import Path

from emoframe.errors import RecipeError
from emoframe.sweeps.schema import load_sweep


def sweep(
    file: str,
    *,
    report: bool = False,
    local: bool = False,
    storage: str | None = None,
    join: bool = False,
    agent: str | None = None,
    count: int | None = None,
    folder: str | None = None,
) -> dict[str, Path] | str:
    """Run (or join, or report on) a sweep; the report's paths, or the W&B sweep id online."""
    from emoframe.sweeps import engine, online

    spec = load_sweep(file)
    if count is not None and count < 1:
        raise RecipeError(f"--count: expected a positive number of trials, got {count}")
    if agent is not None:
        if local or storage or join or report:
            raise RecipeError("--agent joins a W&B sweep: it takes no --local, --storage, --join or --report")
        return online.run_online(spec, agent, count)
    where = engine.folder_of(spec, folder)
    if report:
        if storage is None and not (where / "optuna.db").is_file():
            raise RecipeError(f"--report: no sweep '{spec.name}' in {where} (run it first, or give --storage/--dir)")
        engine.check_local(spec)
        url = storage or engine.default_storage(where)
        study = engine.open_study(spec, engine.connect(url), join=True)
        from emoframe.sweeps.report import write_report

        paths = write_report(spec, study, where)
    elif local or storage or join or not online.is_online():
        paths = engine.run_worker(spec, where, storage, join=join, count=count)
    else:
        return online.run_online(spec, None, count)
    for kind, path in paths.items():
        print(f"{kind}: {path}", file=sys.stderr)
    return paths
