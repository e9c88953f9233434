"""Exact resume: the random number generators' states travel in every checkpoint and come back on resume.

Without them a resumed run draws other shuffles, augmentations and dropout masks than the uninterrupted run
would have, so ``--resume last`` gave other epochs (issue 16: 0.2687 / 0.3167 against 0.1837 / 0.2797).
Python's, numpy's and torch's global generators (CUDA's too) are saved with each checkpoint and restored when
Lightning restores the checkpoint, before the next epoch's loaders draw their seeds from them. The builder adds
this callback to every fit and skips the sanity check of a resumed run, which would draw from them first.

A resumed run also logs where the interrupted one did: ``ContinuedCSVLogger`` continues its ``metrics.csv``
(the interrupted epoch's rows dropped, as that epoch runs again), and ``wandb_run_id`` gives the W&B logger
the run's stored id, so W&B continues the same run.
"""

from __future__ import annotations

import csv
import os
import random
import re
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from torch.utils.data import DataLoader


class RNGState(Callback):
    """Saves and restores the global RNG states with the checkpoint (``callbacks.RNGState`` in its state)."""

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors, ints and tuples only, so ``torch.load(weights_only=True)`` (Lightning's) reads it."""
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": {
                "name": str(name),
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached": float(cached),
            },
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def __init__(self) -> None:
        self._first_epoch = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """In the first epoch of a resumed fit, restart a training loader whose iterator was made for epoch 0.

        Lightning makes the first iterator before it restores the checkpoint (to count the steps for the
        schedule) and sets the sampler's epoch only afterwards, and in that first epoch it does not make another;
        persistent workers have then already taken epoch 0's indices. ``iter()`` on such a loader restarts its
        one iterator, the one Lightning holds. (Later epochs Lightning restarts itself: once only, or the
        workers would draw twice from their generators.)
        """
        if not self._first_epoch:
            return
        self._first_epoch = False
        for loader in _loaders(trainer.train_dataloader):
            if getattr(getattr(loader, "sampler", None), "stale", False) and loader.persistent_workers:
                iter(loader)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        n = state_dict["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
        torch.set_rng_state(state_dict["torch"])
        if state_dict.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def _loaders(value: Any) -> list[DataLoader]:
    """The DataLoaders in ``trainer.train_dataloader`` (one, or a list or mapping of them)."""
    if isinstance(value, DataLoader):
        return [value]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [loader for v in value for loader in _loaders(v)]
    return []


class ContinuedCSVWriter(ExperimentWriter):
    """Lightning's CSV writer that, when ``keep_through_epoch`` is given, keeps the rows of the epochs up to it in the
    existing ``metrics.csv`` (rewritten atomically) and appends after them, instead of deleting the file."""

    def __init__(self, log_dir: str, keep_through_epoch: int | None = None) -> None:
        self.keep_through_epoch = keep_through_epoch
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self.keep_through_epoch is None or not path.is_file():
            super()._check_log_dir_exists()
            return
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows, keys = list(reader), list(reader.fieldnames or [])
        kept = [r for r in rows if not r.get("epoch") or int(float(r["epoch"])) <= self.keep_through_epoch]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, path)
        self.metrics_keys = keys  # save() appends under this header (or rewrites it when new keys come)


class ContinuedCSVLogger(CSVLogger):
    """``<run>/csv/version_<n>/metrics.csv``; a resumed run (``resume_epoch``: the checkpoint's epoch) continues the
    newest version's file: the rows of the epochs the checkpoint holds are kept, those after it (the interrupted
    epoch, which runs again) are dropped, and the new rows are appended."""

    def __init__(
        self, save_dir: str, name: str = "csv", flush_logs_every_n_steps: int = 100, resume_epoch: int | None = None
    ) -> None:
        versions = sorted(
            int(m.group(1))
            for p in Path(save_dir, name).glob("version_*")
            if (m := re.fullmatch(r"version_(\d+)", p.name))
        )
        continued = resume_epoch is not None and bool(versions)
        super().__init__(
            save_dir,
            name=name,
            version=versions[-1] if continued else None,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )
        self._keep_through_epoch = resume_epoch if continued else None

    @property
    @rank_zero_experiment
    def experiment(self) -> ContinuedCSVWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuedCSVWriter(self.log_dir, self._keep_through_epoch)
        return self._experiment  # type: ignore[return-value]


WANDB_ID_FILE = "wandb_run_id"
"""In the run directory: the id of the run's W&B run, which a resumed run continues."""


def wait_for_orphaned_wandb_services(timeout_s: float = 60.0) -> None:
    """Wait (up to ``timeout_s``) for W&B services whose process was killed to exit.

    A ``wandb-core`` service outlives a ``kill -9`` of its process for a moment and holds the run's id
    ("run ID ... is in use"), so a resumed fit started at once could not continue that run. Linux only (/proc).
    """
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        orphans = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if not args or not args[0].endswith(b"wandb-core") or b"--pid" not in args:
                continue
            owner = args[args.index(b"--pid") + 1] if args.index(b"--pid") + 1 < len(args) else b""
            if owner.isdigit() and not Path(f"/proc/{int(owner)}").exists():
                orphans.append(cmdline)
        if not orphans:
            return
        time.sleep(0.5)


def wandb_run_id(save_dir: str, resume: bool) -> tuple[str, str | None]:
    """The W&B run id for a run logging to ``save_dir`` and W&B's ``resume`` mode: on resume the stored id
    (``"allow"``), else a new id, stored (by rank 0) for a later resume."""
    path = Path(save_dir) / WANDB_ID_FILE
    if resume and path.is_file() and (stored := path.read_text().strip()):
        # A service inherited from a parent process (wandb sets WANDB_SERVICE for its children) outlives the killed
        # run, and its stream there holds the id ("run ID ... is in use"): the resumed run starts its own service.
        os.environ.pop("WANDB_SERVICE", None)
        wait_for_orphaned_wandb_services()
        return stored, "allow"
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # W&B's id alphabet
    if rank_zero_only.rank == 0:  # global rank 0 only: under multi-node DDP every node has a LOCAL_RANK 0
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(run_id + "\n")
        os.replace(tmp, path)
    return run_id, None
