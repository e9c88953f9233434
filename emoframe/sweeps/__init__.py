"""`emoframe sweep`: W&B sweep files run by W&B's own controller (online) or by a local Optuna engine.

- ``schema.py``: the sweep file, read and checked against W&B's sweep configuration (one line per mistake);
- ``space.py``: W&B parameters as Optuna distributions, and grid points;
- ``command.py``: a trial's ``emoframe fit RECIPE key=value ...`` command from the file's ``command:``;
- ``engine.py``: the local engine (Optuna on SQLite or any RDB URL): workers, exact accounting, resume;
- ``report.py``: leaderboard, best recipe, plots;
- ``online.py``: ``wandb.sweep`` / ``wandb.agent`` with the same trial command.

Optuna and wandb are imported inside functions, so ``import emoframe`` and a plain fit never load them; the trial
side of the engine (per-epoch reports, pruning) is ``emoframe.callbacks.sweep``.
"""

from __future__ import annotations

from emoframe.sweeps.schema import Sweep, load_sweep

__all__ = ["Sweep", "load_sweep"]
