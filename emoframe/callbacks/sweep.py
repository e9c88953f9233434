"""The trial side of ``emoframe sweep``'s local engine: per-epoch reports to the Optuna storage, and pruning.

The engine starts each trial as an ordinary ``emoframe fit`` process with ``EMOFRAME_SWEEP_TRIAL`` set (a JSON
object: storage URL, study, trial id, metric, pruner); the builder then adds this callback. On rank 0 it logs the
sampled values to every logger, reports the metric after each validation (``trial.report(value, epoch)``), and
asks the pruner; the decision is broadcast so every DDP rank stops at the same epoch, cleanly (exit status 0).
The engine reads the outcome from the storage. Optuna is imported only here, only in a sweep trial.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from typing import Any

from pytorch_lightning.callbacks import Callback

from emoframe.errors import RecipeError

ENV = "EMOFRAME_SWEEP_TRIAL"
CONTINUE, PRUNE, NO_METRIC = 0, 1, 2


DRIVERS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "postgresql": (("psycopg", "psycopg", "psycopg[binary]"), ("psycopg2", "psycopg2", "psycopg2-binary")),
    "mysql": (("mysqldb", "MySQLdb", "mysqlclient"), ("pymysql", "pymysql", "PyMySQL")),
}
"""Per database, SQLAlchemy's drivers (name, module, pip package), its default first."""
SCHEME_ALIASES = {"postgres": "postgresql"}


def storage_url(url: str) -> str:
    """The URL with an installed driver named where it names none: SQLAlchemy 2 maps ``postgresql://`` to
    psycopg 3, while many machines (and docs/sweeps.md) have psycopg2. A database with no driver installed is
    one line naming the package to install."""
    scheme, sep, rest = url.partition("://")
    if not sep or "+" in scheme:
        return url
    scheme = SCHEME_ALIASES.get(scheme, scheme)
    drivers = DRIVERS.get(scheme)
    if not drivers:
        return f"{scheme}://{rest}"
    for driver, module, _ in drivers:
        if importlib.util.find_spec(module) is not None:
            return f"{scheme}://{rest}" if driver == drivers[0][0] else f"{scheme}+{driver}://{rest}"
    packages = " or ".join(package for _, _, package in drivers)
    raise RecipeError(f"no {scheme} driver is installed: pip install {packages}")


def open_storage(url: str, **kwargs: Any) -> Any:
    """An Optuna RDB storage; SQLite waits up to a minute for a lock held by another worker or trial."""
    import optuna

    url = storage_url(url)
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, **kwargs)


def make_pruner(spec: dict[str, Any] | None) -> Any:
    """W&B's hyperband (one set of bands ``min_iter * eta**k``, keep the top 1/eta) is successive halving."""
    import optuna

    if not spec:
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=int(spec["min_resource"]), reduction_factor=int(spec["eta"]), min_early_stopping_rate=0
    )


class SweepTrial(Callback):
    """Reports ``metric`` to trial ``trial_id`` of ``study`` after every validation; stops the fit when pruned."""

    def __init__(
        self,
        storage: str,
        study: str,
        trial_id: int,
        metric: str,
        params: dict[str, Any] | None = None,
        pruner: dict[str, Any] | None = None,
    ) -> None:
        self.storage_url = storage
        self.study_name = study
        self.trial_id = int(trial_id)
        self.metric = metric
        self.params = dict(params or {})
        self.pruner = pruner
        self._trial: Any = None

    @classmethod
    def from_env(cls) -> SweepTrial | None:
        text = os.environ.get(ENV)
        return cls(**json.loads(text)) if text else None

    def _optuna_trial(self) -> Any:
        if self._trial is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(
                study_name=self.study_name,
                storage=open_storage(self.storage_url),
                sampler=optuna.samplers.RandomSampler(),  # nothing is sampled here
                pruner=make_pruner(self.pruner),
            )
            self._trial = optuna.Trial(study, self.trial_id)
        return self._trial

    def _set(self, key: str, value: Any) -> None:
        self._optuna_trial().storage.set_trial_user_attr(self.trial_id, key, value)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            for logger in trainer.loggers:  # the sampled values under their sweep names (W&B's config keys)
                logger.log_hyperparams({**self.params, "sweep": self.study_name})
            self._set("train_start", time.time())

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        decision = CONTINUE
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.metric)
            if value is None:
                logged = ", ".join(sorted(trainer.callback_metrics)) or "nothing"
                self._set("error", f"metric {self.metric} was never logged (logged: {logged})")
                decision = NO_METRIC
            else:
                trial = self._optuna_trial()
                trial.report(float(value), step=int(trainer.current_epoch))
                if trial.should_prune():
                    self._set("pruned_epoch", int(trainer.current_epoch))
                    decision = PRUNE
        decision = trainer.strategy.broadcast(decision, src=0)
        if decision != CONTINUE:
            trainer.should_stop = True

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            self._set("train_end", time.time())
