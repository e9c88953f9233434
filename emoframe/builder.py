"""Recipe -> (trainer, task, datamodule).  The only module that reads recipes; components never do.

Derived values (input channels, number of classes, feature sizes, checkpoint directory) are injected
here, so recipes do not repeat them.  Everything is constructed before any data is loaded, so a
recipe mistake fails in seconds with its key path.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException

import emoframe.components  # noqa: F401  (registers every built-in component)
from emoframe.callbacks.resume import RNGState
from emoframe.checkpoints import find_checkpoint as find_checkpoint  # re-exported: checkpoints are found there
from emoframe.checkpoints import run_dir_of_checkpoint as run_dir_of_checkpoint
from emoframe.config import save_recipe
from emoframe.launch import run_dir_for
from emoframe.optim import try_optimizer
from emoframe.registry import (
    BACKBONES,
    CALLBACKS,
    DATAMODULES,
    HEADS,
    LOGGERS,
    LOSSES,
    OPTIMIZERS,
    SCHEDULERS,
    TASKS,
    TEMPORAL,
    RecipeError,
    accepted_parameters,
    check_arguments,
    load_plugins,
)
from emoframe.spec import ModelSpec
from emoframe.tasks.base import Task
from emoframe.tta import TTATransform, parse_tta

TRAINER_INJECTED = ("callbacks", "logger", "default_root_dir")


@dataclass
class Built:
    trainer: pl.Trainer
    task: Task
    datamodule: pl.LightningDataModule
    run_dir: Path


def _section(cfg: dict[str, Any], key: str, required: bool = True) -> Any:
    value = cfg.get(key)
    if required and not value:
        raise RecipeError(f"Missing required value {key}: the recipe needs a '{key}:' section")
    return value


MAPPING_SECTIONS = ("data", "model", "loss", "optimizer", "scheduler", "trainer")  # callbacks, loggers: _mapping


def check_sections(cfg: dict[str, Any]) -> None:
    """The top-level sections are mappings (or absent/null) and ``imports`` a list of module names."""
    for key in MAPPING_SECTIONS:
        value = cfg.get(key)
        if value is not None and not isinstance(value, dict):
            raise RecipeError(f"{key}: expected a mapping (a '{key}:' section of keys), got {value!r}")
    imports = cfg.get("imports")
    if imports is not None and not (isinstance(imports, list) and all(isinstance(m, str) for m in imports)):
        raise RecipeError(f"imports: expected a list of module names, got {imports!r}")


def build_datamodule(cfg: dict[str, Any]) -> pl.LightningDataModule:
    datamodule = DATAMODULES.build(_section(cfg, "data"), "data")
    check_memory = getattr(datamodule, "check_memory", None)
    if callable(check_memory):  # a batch larger than the machine's memory fails now, in one line
        check_memory()
    return datamodule


TASK_INJECTED = ("backbone", "temporal", "head", "loss", "class_names", "optimizer", "scheduler")


def _data_inputs(
    model: dict[str, Any], task_args: dict[str, Any], params: set[str], datamodule: pl.LightningDataModule
) -> dict[str, Any]:
    """Derived task arguments beyond the image: ``feature_dim`` for a task whose signature takes it."""
    if "feature_dim" not in params or "feature_dim" in task_args:
        return {}
    feature_dim = int(getattr(datamodule, "feature_dim", 0) or 0)
    if feature_dim < 1:
        task = model.get("name") or model.get("class_path")
        raise RecipeError(
            f"model: task '{task}' fuses the image with a feature vector, but the datamodule yields none: "
            "add data.features, e.g. data.features='[{name: hog}, {name: landmarks68}]'"
        )
    return {"feature_dim": feature_dim}


def backbone_inputs(datamodule: Any, backbone_cfg: Any) -> dict[str, Any]:
    """What the builder derives for the backbone ``backbone_cfg`` from the data: ``in_chans``, and the data's
    per-channel ``input_mean``/``input_std`` (``data.image.mean``/``std``) when the backbone's signature names
    them (``dlib_resnet`` undoes the data's normalisation and applies dlib's own). A recipe value wins."""
    spec = ModelSpec.of(datamodule)
    out: dict[str, Any] = {"in_chans": int(getattr(datamodule, "channels", spec.channels))}
    target, _ = BACKBONES.resolve(backbone_cfg, "model.backbone")
    named = accepted_parameters(target) or set()  # not given to an untyped **kwargs
    if spec.mean is not None and spec.std is not None and {"input_mean", "input_std"} <= named:
        out["input_mean"], out["input_std"] = list(spec.mean), list(spec.std)
    return out


def temporal_spec(target: Any, given: Any) -> dict[str, Any] | None:
    """The ``model.temporal`` mapping for a task that takes a temporal model (None for one that does not).

    A bare name (``temporal: gru``) reads as ``{name: gru}``; a mapping without a name, or naming the task's
    default model, is laid over the task's ``temporal_default`` (so ``model.temporal.hidden_size=32`` keeps
    the rest of the default).
    """
    params = accepted_parameters(target)
    if params is not None and "temporal" not in params:
        if given is not None:
            raise RecipeError(f"model.temporal: task {target.__qualname__} takes no temporal model")
        return None
    default = dict(getattr(target, "temporal_default", None) or {"name": "none"})
    spec = {"name": given} if isinstance(given, str) else dict(given or {})
    if not isinstance(given, (str, type(None))) and not hasattr(given, "keys"):
        raise RecipeError(f"model.temporal: expected a mapping like {{name: lstm, hidden_size: 128}}, got {given!r}")
    if ("name" not in spec and "class_path" not in spec) or spec.get("name") == default.get("name"):
        spec = {**default, **spec}
    return spec


def temporal_width(spec: dict[str, Any] | None, in_features: int) -> int:
    """The width out of the temporal model ``spec`` for ``in_features`` per frame, without building it."""
    if spec is None:
        return in_features
    target, args = TEMPORAL.resolve(spec, "model.temporal")
    check_arguments(target, args, "model.temporal", provided=("in_features",))
    width = getattr(target, "output_width", None)
    return int(width(in_features, **args)) if width else in_features


def build_task(cfg: dict[str, Any], datamodule: pl.LightningDataModule, for_training: bool = True) -> Task:
    """Backbone (in_chans from the data) -> head (sized from the backbone, the temporal model, the task and the
    classes) -> temporal model -> task."""
    model = dict(_section(cfg, "model"))
    backbone_cfg = model.pop("backbone", None)
    if not backbone_cfg:
        raise RecipeError("Missing required value model.backbone (e.g. {name: timm, model: resnet18})")
    head_cfg = model.pop("head", None) or {"name": "linear"}
    temporal_cfg = model.pop("temporal", None)
    target, task_args = TASKS.resolve(model, "model")
    params = accepted_parameters(target)
    data_inputs = _data_inputs(model, task_args, params or set(), datamodule)
    provided = tuple(k for k in TASK_INJECTED if params is None or k in params)
    check_arguments(target, {**task_args, **data_inputs}, "model", provided=provided)  # before head_in_features
    temporal = temporal_spec(target, temporal_cfg)
    backbone = BACKBONES.build(backbone_cfg, "model.backbone", **backbone_inputs(datamodule, backbone_cfg))
    num_features = getattr(backbone, "num_features", None)
    if not isinstance(num_features, int):
        raise RecipeError("model.backbone: the backbone must expose an int attribute 'num_features'")
    width = temporal_width(temporal, num_features)  # backbone -> temporal model -> the task's own extra width
    head_in = getattr(target, "head_in_features", None)
    head = HEADS.build(
        head_cfg,
        "model.head",
        in_features=head_in(width, **task_args, **data_inputs) if head_in else width,
        num_outputs=datamodule.num_classes,  # type: ignore[attr-defined]
    )
    loss = LOSSES.build(_section(cfg, "loss"), "loss")
    optimizer = scheduler = None
    if cfg.get("optimizer"):
        optimizer = OPTIMIZERS.partial(cfg["optimizer"], "optimizer", provided=("params",))
    elif for_training:
        raise RecipeError("Missing required value optimizer (e.g. {name: sgd, lr: 0.01, nesterov: true})")
    if cfg.get("scheduler"):
        scheduler = SCHEDULERS.partial(
            cfg["scheduler"], "scheduler", provided=("optimizer", "total_steps", "steps_per_epoch")
        )
    # created after the head, where the tasks used to create it, so seeded runs draw the same weights
    injected = {}
    if temporal is not None:
        injected["temporal"] = TEMPORAL.build(temporal, "model.temporal", in_features=num_features)
        if int(getattr(injected["temporal"], "out_features", width)) != width:
            raise RecipeError(
                f"model.temporal: out_features differs from {type(injected['temporal']).__name__}"
                ".output_width(); the head was sized with the latter"
            )
    task = TASKS.build(
        model,
        "model",
        backbone=backbone,
        head=head,
        loss=loss,
        class_names=list(getattr(datamodule, "class_names", [])),
        optimizer=optimizer,
        scheduler=scheduler,
        **injected,
        **data_inputs,
    )
    if not isinstance(task, Task):
        raise RecipeError(f"model: {type(task).__name__} is not an emoframe Task (subclass emoframe.tasks.Task)")
    task.recipe = cfg
    task.spec = ModelSpec.of(datamodule, type(task), str(model.get("name") or target.__name__), temporal)
    return task


def upgrade_recipe(cfg: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A recipe stored by an earlier emoframe (in its checkpoints) in today's keys, and the keys it moved.

    Each component's ``moved_keys`` say where a flat key went (``data.batch_size -> data.loader.batch_size``,
    ``model.hidden_size -> model.temporal.hidden_size``), so a checkpoint trained before a regrouping still
    tests, predicts and extracts; a recipe *file* with an old key fails instead, naming the new one.
    """
    out = copy.deepcopy(cfg)
    moved: list[str] = []
    for section, registry in (("data", DATAMODULES), ("model", TASKS)):
        spec = out.get(section)
        if not isinstance(spec, dict):
            continue
        try:
            target, _ = registry.resolve(spec, section)
        except RecipeError:
            continue  # an unknown component: left for the build to report
        accepted = accepted_parameters(target)
        for old, new in (getattr(target, "moved_keys", None) or {}).items():
            if old in spec and (accepted is None or old not in accepted):
                _set_path(spec, new.split("."), spec.pop(old))
                moved.append(f"{section}.{old} -> {section}.{new}")
    return out, moved


def _set_path(mapping: dict[str, Any], path: list[str], value: Any) -> None:
    """``mapping[a][b] = value`` for ``path == [a, b]``; a bare component name on the way becomes ``{name: ...}``."""
    *parents, last = path
    for key in parents:
        inner = mapping.get(key)
        if isinstance(inner, str):
            inner = {"name": inner}
        elif not isinstance(inner, dict):
            inner = {}
        mapping[key] = inner
        mapping = inner
    mapping.setdefault(last, value)


def new_run_dir(cfg: dict[str, Any]) -> Path:
    """``<run.dir>/<run.name>/version_<n>``, the next free n (or ``run.version`` when given), the same on every rank
    and node of a distributed launch (``slurm-<job id>`` under SLURM; emoframe.launch says how)."""
    run = cfg.get("run") or {}
    base = Path(run.get("dir", "runs")) / str(run.get("name", "run"))
    version = run.get("version")
    return run_dir_for(base, None if version is None else str(version))


def build_trainer(
    cfg: dict[str, Any],
    run_dir: Path,
    stage: str,
    resume_epoch: int | None = None,
    callbacks: list[pl.Callback] | tuple[pl.Callback, ...] = (),
) -> pl.Trainer:
    """The Trainer of a stage, with the recipe's callbacks and loggers and the engine's ``callbacks`` (a sweep's
    trial); ``resume_epoch`` (the checkpoint's epoch, for ``fit --resume``) lets the loggers continue the run's CSV
    file and W&B run."""
    trainer_cfg = dict(cfg.get("trainer") or {})
    check_arguments(pl.Trainer, trainer_cfg, "trainer", provided=TRAINER_INJECTED)
    for key in TRAINER_INJECTED:
        if key in trainer_cfg:
            raise RecipeError(f"trainer.{key} is set by emoframe; use the recipe's callbacks:/loggers:/run: sections")
    check_trainer_values(trainer_cfg)
    given, callbacks = list(callbacks), []
    if stage == "fit":
        callbacks.append(RNGState())  # exact resume, for every recipe
        callbacks += given  # a trial of `emoframe sweep`'s local engine: per-epoch reports, pruning
        for key, spec in _mapping(cfg, "callbacks").items():
            if spec:  # a null entry switches off a callback inherited from a base recipe
                where = f"callbacks.{key}"  # recipe_key, like dirpath, goes only to callbacks that accept it
                check_monitor_mode(spec, where)
                checkpoints = str(run_dir / "checkpoints")
                try:
                    callbacks.append(CALLBACKS.build(spec, where, dirpath=checkpoints, recipe_key=where))
                except MisconfigurationException as err:  # Lightning's own checks (a ModelCheckpoint or EarlyStopping)
                    raise RecipeError(f"{where}: {str(err).strip().splitlines()[0]}") from None
    log_dir = run_dir if stage == "fit" else run_dir / stage
    resumed = {"resume_epoch": resume_epoch} if stage == "fit" and resume_epoch is not None else {}
    loggers = [
        LOGGERS.build(
            spec,
            f"loggers.{key}",
            save_dir=str(log_dir),
            name=f"{(cfg.get('run') or {}).get('name')}-{stage}",
            **resumed,
        )
        for key, spec in _mapping(cfg, "loggers").items()
        if spec
    ]
    try:
        return pl.Trainer(**trainer_cfg, callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir))
    except (MisconfigurationException, ValueError, TypeError) as err:  # Lightning's own checks, as one line
        raise RecipeError(f"trainer: {str(err).strip().splitlines()[0]}") from None


MONITORED = ("model_checkpoint", "early_stopping")


def check_monitor_mode(spec: Any, where: str) -> None:
    """A checkpoint or early stop that monitors a score (not a loss) must say ``mode:``: Lightning's default
    ``min`` would keep the worst checkpoint and stop on improvement, silently."""
    if not isinstance(spec, dict) or spec.get("name") not in MONITORED:
        return
    monitor = spec.get("monitor")
    if monitor and "mode" not in spec and "loss" not in str(monitor):
        raise RecipeError(
            f"Missing required value {where}.mode: it monitors {monitor}, a score; set mode: max "
            "(or mode: min if lower is better)"
        )


def _mapping(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    """A section of named entries (callbacks:, loggers:), so one can be overridden or switched off by name."""
    value = cfg.get(key) or {}
    if not isinstance(value, dict):
        raise RecipeError(f"{key}: expected a mapping of name -> {{name: ...}} (e.g. {key}.x=null), got {value!r}")
    return value


MAX_CPU_PROCESSES_PER_CORE = 4
MAX_NODES = 4096


def device_count(devices: Any) -> int | None:
    """How many devices ``trainer.devices`` asks for (``3``, ``"3"``, ``"0,1"``, ``[0, 1]``); None for auto / -1."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int):
        return devices if devices >= 0 else None
    if isinstance(devices, str):
        text = devices.strip()
        if text.lstrip("-").isdigit():
            return int(text) if int(text) >= 0 else None
        if "," in text:
            return len([d for d in text.split(",") if d.strip()])
        return None
    if isinstance(devices, (list, tuple)):
        return len(devices)
    return None


def check_trainer_values(trainer_cfg: dict[str, Any]) -> None:
    """Values Lightning accepts but that cannot run here: more processes than the machine can hold (a CPU run
    asking for far more processes than cores, more GPUs than present, thousands of nodes)."""
    devices, accelerator = trainer_cfg.get("devices"), str(trainer_cfg.get("accelerator", "auto"))
    count = device_count(devices)
    cores = os.cpu_count() or 1
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and count is not None and count > MAX_CPU_PROCESSES_PER_CORE * cores:
        raise RecipeError(
            f"trainer.devices: {devices} CPU processes on a {cores}-core machine; "
            f"expected at most {MAX_CPU_PROCESSES_PER_CORE * cores} (or a GPU accelerator)"
        )
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not on_cpu and accelerator in ("auto", "gpu", "cuda") and count is not None and gpus and count > gpus:
        raise RecipeError(f"trainer.devices: {devices} GPUs asked for; this machine has {gpus}")
    nodes = trainer_cfg.get("num_nodes", 1)
    if isinstance(nodes, int) and not isinstance(nodes, bool) and not 1 <= nodes <= MAX_NODES:
        raise RecipeError(f"trainer.num_nodes: expected an integer from 1 to {MAX_NODES}, got {nodes}")


def seed_of(cfg: dict[str, Any]) -> int:
    """The recipe's ``seed``: an integer numpy and torch can both take (0 to 2**32 - 1)."""
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise RecipeError(f"seed: expected an integer from 0 to {2**32 - 1}, got {seed!r}")
    return seed


def check_optimizer(task: Task) -> None:
    """The optimizer's and schedule's own argument checks (``lr >= 0``, betas, ...) run now, on a stand-in
    parameter, not at the first step (later phases' optimizers, e.g. ``freeze_unfreeze``'s, check theirs when
    their callback is built)."""
    try_optimizer(task.optimizer_factory, task.scheduler_factory, "optimizer", "scheduler")


STAGE_KEYS = {"test": ("tta",), "predict": ("writer", "tta")}
"""What the ``test:`` and ``predict:`` sections of a recipe take."""


def stage_tta(cfg: dict[str, Any], stage: str, given: Any = None) -> tuple[TTATransform, ...] | None:
    """The TTA views of ``emoframe test``/``predict``: ``given`` (``--tta``), else the recipe's ``<stage>.tta``
    (``test: {tta: paper}``), else none. An unknown key of the section or bad views fail in one line."""
    section = cfg.get(stage) or {}
    if not isinstance(section, dict):
        raise RecipeError(f"{stage}: expected a mapping like {{tta: paper}}, got {section!r}")
    known = STAGE_KEYS.get(stage, ())
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise RecipeError(f"Unknown key {stage}.{unknown[0]}: the {stage}: section takes {', '.join(known)}")
    if given is not None:
        views = parse_tta(given, "--tta")
    elif section.get("tta") is not None:
        views = parse_tta(section["tta"], f"{stage}.tta")
    else:
        return None
    return None if views == (TTATransform(),) else views


def check(cfg: dict[str, Any]) -> None:
    """Build everything ``fit`` builds (datamodule, task, optimizers, trainer, callbacks, loggers) and discard it.

    No run directory, recipe file or logger run is created: this is ``emoframe config``'s validation, the
    same as ``fit``'s because it is the same code.
    """
    check_sections(cfg)
    load_plugins(list(cfg.get("imports") or []))
    seed_of(cfg)
    for stage in STAGE_KEYS:
        stage_tta(cfg, stage)
    datamodule = build_datamodule(cfg)
    task = build_task(cfg, datamodule, for_training=True)
    check_optimizer(task)
    with tempfile.TemporaryDirectory(prefix="emoframe-check-") as tmp:
        build_trainer(cfg, Path(tmp), "fit")


def build(
    cfg: dict[str, Any],
    stage: str = "fit",
    run_dir: Path | None = None,
    resume_epoch: int | None = None,
    callbacks: list[pl.Callback] | tuple[pl.Callback, ...] = (),
) -> Built:
    """Everything a stage needs, constructed and checked before any data is read; ``resume_epoch``: the epoch of
    the checkpoint a ``fit --resume`` continues from; ``callbacks``: the engine's own (a sweep's trial)."""
    check_sections(cfg)
    load_plugins(list(cfg.get("imports") or []))
    pl.seed_everything(seed_of(cfg), workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    task = build_task(cfg, datamodule, for_training=stage == "fit")
    if stage == "fit":
        check_optimizer(task)
    run_dir = run_dir or new_run_dir(cfg)
    trainer_cfg = cfg
    if resume_epoch is not None:  # the sanity check would draw from the restored generators before the next epoch does
        trainer_cfg = {**cfg, "trainer": {**(cfg.get("trainer") or {}), "num_sanity_val_steps": 0}}
    trainer = build_trainer(trainer_cfg, run_dir, stage, resume_epoch, callbacks)
    task.report_dir = run_dir / stage
    if trainer.is_global_zero:
        if stage == "fit":
            save_recipe(cfg, run_dir / "config.yaml")
        for logger in trainer.loggers:
            logger.log_hyperparams(cfg)
    return Built(trainer=trainer, task=task, datamodule=datamodule, run_dir=run_dir)
