"""``emoframe svm RECIPE``: clip SVMs on extracted per-frame features, fitted, reported and saved as a run.

An SVM recipe is not a Lightning recipe (no datamodule, backbone, loss, optimizer or trainer), so it has its
own command and top-level sections:

    run:      {dir: runs, name: <recipe stem>}          # run directory runs/<name>/version_<n>, as for fit
    features: {net_a: /feats/a, net_b: null}            # name -> folder of <split>.npz from emoframe extract;
                                                        # null switches a set (and the members using it) off
    splits:   {fit: [train], eval: val}                 # eval: null to only fit (e.g. fit: [train, val])
    svm:      {prior: train, members: {net_a: {features: net_a, aggregations: [stat_star, fft], ...}}}

A member's ``features:`` names its feature set; it may be left out when the member is named like a set or
there is only one set. Every other member key is ``ClipSVM``'s (``build_svm_ensemble``). Everything in the
recipe is checked before any feature file is read.

Fitting writes ``svm.joblib`` (``load_model``), ``report.csv`` (per member: C, CV accuracy
and eval accuracy; the ensemble without and with the sqrt class-prior weights; the majority-class rate) and
``<eval>_confusion.csv``/``.png`` of the ensemble as configured (the command adds the recipe as
``config.yaml``). ``--predict`` writes per-clip scores. The recipe is read by emoframe.config.load_svm_recipe.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoframe.checkpoints import newest_run_file
from emoframe.clipsvm.feature_files import SPLIT_NAMES, FeatureFile, load_features
from emoframe.clipsvm.svm import SVMEnsemble, build_svm_ensemble, load_model
from emoframe.errors import DataError, RecipeError
from emoframe.eval.reports import write_confusion_reports
from emoframe.labels import EMOTIONS

MODEL_FILE = "svm.joblib"


@dataclass
class SvmPlan:
    """A checked SVM recipe: the unfitted ensemble, which feature set each member reads, the splits."""

    ensemble: SVMEnsemble
    member_sets: dict[str, str]
    feature_dirs: dict[str, Path]
    fit_splits: list[str]
    eval_split: str | None
    _reference: dict[str, FeatureFile] = field(default_factory=dict)  # first file read per set

    @property
    def sets(self) -> list[str]:
        """The feature sets some member reads, in recipe order."""
        return [name for name in self.feature_dirs if name in self.member_sets.values()]


def _split_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in SPLIT_NAMES:
        raise RecipeError(
            f"{where}: expected a split written by emoframe extract ({', '.join(SPLIT_NAMES)}), got {value!r}"
        )
    return value


def plan_from_recipe(cfg: Mapping[str, Any]) -> SvmPlan:
    """Check the recipe's ``features``, ``splits`` and ``svm`` sections and build the unfitted ensemble."""
    features = cfg.get("features")
    if not isinstance(features, Mapping) or not features:
        raise RecipeError(
            "features: expected a mapping of name -> folder written by emoframe extract, e.g. features.net_a=/feats/a"
        )
    dirs: dict[str, Path] = {}
    off: list[str] = []
    for name, value in features.items():
        if value is None:
            off.append(str(name))
        elif isinstance(value, str) and value:
            dirs[str(name)] = Path(value).expanduser()
        else:
            raise RecipeError(f"features.{name}: expected a folder path (or null to switch it off), got {value!r}")
    svm = cfg.get("svm")
    if not isinstance(svm, Mapping):
        raise RecipeError("Missing required value svm: the recipe needs an 'svm:' section with members:")
    members = svm.get("members")
    if not isinstance(members, Mapping) or not members:
        raise RecipeError(f"svm.members: expected a non-empty mapping of name -> ClipSVM options, got {members!r}")
    member_sets: dict[str, str] = {}
    specs: dict[str, Any] = {}
    for name, spec in members.items():
        at = f"svm.members.{name}"
        spec = dict(spec or {}) if isinstance(spec, Mapping) or spec is None else spec
        if not isinstance(spec, dict):
            raise RecipeError(f"{at}: expected a mapping of ClipSVM options, got {spec!r}")
        chosen = spec.pop("features", None)
        if chosen is None:
            if name in features:
                chosen = name
            elif len(features) == 1:
                chosen = next(iter(features))
            else:
                raise RecipeError(
                    f"{at}.features: name the feature set this member reads, one of {', '.join(features)}"
                )
        if chosen not in features:
            raise RecipeError(f"{at}.features: unknown feature set '{chosen}'. Known: {', '.join(map(str, features))}")
        if chosen in off:
            print(f"svm: member '{name}' left out: features.{chosen} is null", file=sys.stderr)
            continue
        member_sets[str(name)] = str(chosen)
        specs[str(name)] = spec
    if not member_sets:
        raise RecipeError("svm.members: every member reads a feature set that is null; set at least one features entry")
    ensemble = build_svm_ensemble({**{k: v for k, v in svm.items() if k != "members"}, "members": specs}, "svm")
    splits = cfg.get("splits") or {}
    if not isinstance(splits, Mapping):
        raise RecipeError(f"splits: expected a mapping like {{fit: [train], eval: val}}, got {splits!r}")
    unknown = sorted(set(splits) - {"fit", "eval"})
    if unknown:
        raise RecipeError(f"Unknown key splits.{unknown[0]}. Accepted: fit, eval")
    fit = splits.get("fit", ["train"])
    fit = [fit] if isinstance(fit, str) else fit
    if not isinstance(fit, list) or not fit:
        raise RecipeError(f"splits.fit: expected a non-empty list of splits, got {fit!r}")
    fit_splits = [_split_name(s, f"splits.fit[{i}]") for i, s in enumerate(fit)]
    eval_split = splits.get("eval", "val")
    if eval_split is not None:
        eval_split = _split_name(eval_split, "splits.eval")
        if eval_split in fit_splits:
            raise RecipeError(
                f"splits.eval: '{eval_split}' is also fitted on (splits.fit); its accuracy would be a training accuracy"
            )
    return SvmPlan(ensemble, member_sets, dirs, fit_splits, eval_split)


def _read_set(plan: SvmPlan, name: str, split: str) -> FeatureFile:
    """One set's split, checked against the set's other splits (same width, checkpoint and TTA)."""
    folder = plan.feature_dirs[name]
    if not folder.is_dir():
        raise DataError(
            f"features.{name}: no feature folder {folder} (write it with emoframe extract --output {folder})"
        )
    path = folder / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"features.{name}: {path} not found (extract it with emoframe extract ... --splits {split})")
    found = load_features(path)
    first = plan._reference.setdefault(name, found)
    if found.dim != first.dim:
        raise DataError(
            f"features.{name}: {path.name} has {found.dim} features per frame but {first.path.name} has {first.dim}; "
            "a feature set's splits must come from one extraction"
        )
    mine, theirs = found.settings(), first.settings()
    for key, what in (("checkpoint_sha256", "checkpoint"), ("tta", "test-time augmentation")):
        if mine[key] != theirs[key]:
            raise DataError(f"features.{name}: {path.name} and {first.path.name} were extracted with another {what}")
    return found


def read_split(plan: SvmPlan, split: str) -> tuple[dict[str, list[np.ndarray]], np.ndarray, np.ndarray]:
    """Clips of every used feature set for ``split``, aligned by clip name to the first set; labels; names."""
    files = {name: _read_set(plan, name, split) for name in plan.sets}
    first_name = plan.sets[0]
    ref = files[first_name]
    clips: dict[str, list[np.ndarray]] = {}
    for name, f in files.items():
        found = f.clips()
        if name != first_name and not np.array_equal(f.names, ref.names):
            index = {str(n): i for i, n in enumerate(f.names)}
            if len(index) != len(f.names) or len(f.names) != len(ref.names) or set(index) != set(map(str, ref.names)):
                theirs = set(map(str, ref.names))
                lacks = [str(n) for n in ref.names if str(n) not in index]
                extra = [str(n) for n in f.names if str(n) not in theirs]
                example = f"it lacks '{lacks[0]}'" if lacks else f"it has '{extra[0]}'" if extra else "repeated names"
                raise DataError(
                    f"features.{name}: {f.path} holds other clips than features.{first_name} ({ref.path}): "
                    f"{example}; extract every set from the same data"
                )
            order = [index[str(n)] for n in ref.names]
            found = [found[i] for i in order]
            if not np.array_equal(f.labels[order], ref.labels):
                raise DataError(f"features.{name}: {f.path} labels its clips differently from {ref.path}")
        clips[name] = found
    return clips, ref.labels.copy(), ref.names.copy()


def _member_inputs(plan: SvmPlan, clips: Mapping[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    return {member: clips[name] for member, name in plan.member_sets.items()}


def _class_name(label: int) -> str:
    return EMOTIONS[label] if 0 <= label < len(EMOTIONS) else str(label)


def fit_svm(cfg: Mapping[str, Any], run_dir: Path) -> list[dict[str, Any]]:
    """Fit on ``splits.fit``, evaluate on ``splits.eval``, write the run; returns the report rows.

    ``cfg`` is the resolved recipe (emoframe.config.load_svm_recipe); the caller saves it with the run.
    """
    plan = plan_from_recipe(cfg)
    parts = [read_split(plan, split) for split in plan.fit_splits]
    fit_clips = {name: [c for p in parts for c in p[0][name]] for name in plan.sets}
    y = np.concatenate([p[1] for p in parts])
    if (y < 0).any():
        raise DataError(f"splits.fit: {int((y < 0).sum())} clips have no label (unlabelled predict clips?)")
    evaluated = read_split(plan, plan.eval_split) if plan.eval_split else None  # bad eval files fail before fitting
    if evaluated is not None and (evaluated[1] < 0).any():
        raise DataError(
            f"splits.eval: {int((evaluated[1] < 0).sum())} {plan.eval_split} clips have no label; score them with --predict"
        )
    ensemble = plan.ensemble.fit(_member_inputs(plan, fit_clips), y, where="features")
    configured = ensemble.prior
    majority = int(ensemble.classes_[np.argmax(ensemble.class_counts_)])
    rows: list[dict[str, Any]] = []
    split = plan.eval_split
    acc_key = f"{split}_accuracy" if split else "eval_accuracy"
    for member, name in plan.member_sets.items():
        svm = ensemble.members_[member]
        rows.append(
            {
                "model": member,
                "features": name,
                "aggregations": "+".join(svm.aggregations),
                "C": svm.best_C_,
                "cv_accuracy": svm.cv_accuracy_,
            }
        )
    rows.append({"model": "ensemble", "prior": "none"})
    rows.append({"model": "ensemble+prior", "prior": _prior_text(configured if configured is not None else "train")})
    rows.append({"model": f"majority_class ({_class_name(majority)})"})
    if evaluated is not None:
        clips, labels, _ = evaluated
        inputs = _member_inputs(plan, clips)
        for row, member in zip(rows, plan.member_sets):
            row[acc_key] = float(np.mean(ensemble.members_[member].predict(inputs[member]) == labels))
        ensemble.set_params(prior=None)
        rows[-3][acc_key] = float(np.mean(ensemble.predict(inputs) == labels))
        ensemble.set_params(prior=configured if configured is not None else "train")
        rows[-2][acc_key] = float(np.mean(ensemble.predict(inputs) == labels))
        ensemble.set_params(prior=configured)
        rows[-1][acc_key] = float(np.mean(labels == majority))
        for row in rows:
            row["clips"] = len(labels)
        pred = ensemble.predict(inputs)
        present = sorted(set(ensemble.classes_.tolist()) | set(labels.tolist()))
        confusion = np.zeros((len(present), len(present)), dtype=np.int64)
        for t, p in zip(labels, pred):
            confusion[present.index(int(t)), present.index(int(p))] += 1
        write_confusion_reports(confusion, [_class_name(c) for c in present], run_dir, prefix=split or "eval")
    run_dir.mkdir(parents=True, exist_ok=True)
    ensemble.save(run_dir / MODEL_FILE)
    columns = ["model", "features", "aggregations", "C", "cv_accuracy", acc_key, "clips", "prior"]
    with (run_dir / "report.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) and k != "C" else v) for k, v in row.items()})
    return rows


def _prior_text(prior: Any) -> str:
    return prior if isinstance(prior, str) else "counts " + " ".join(f"{float(p):g}" for p in prior)


def find_model(cfg: Mapping[str, Any], model: str | None) -> Path:
    """``--model PATH``, or the newest ``svm.joblib`` among this recipe's runs."""
    if model:
        path = Path(model)
        if not path.is_file():
            raise RecipeError(f"--model: SVM model not found: {path}")
        return path
    base, found = newest_run_file(cfg, MODEL_FILE)
    if found is None:
        raise RecipeError(f"No {MODEL_FILE} under {base}/*/ (run emoframe svm RECIPE first, or give --model PATH)")
    return found


def predict_svm(cfg: Mapping[str, Any], model_path: Path, split: str, output: Path | None) -> tuple[Path, float | None]:
    """Per-clip ensemble scores of ``split`` (``name, target, pred, score_<class>...``); accuracy if labelled."""
    plan = plan_from_recipe(cfg)
    split = _split_name(split, "--split")
    model = load_model(model_path)
    if not isinstance(model, SVMEnsemble) or set(model.members_) != set(plan.member_sets):
        have = ", ".join(getattr(model, "members_", {})) or type(model).__name__
        raise RecipeError(
            f"{model_path}: its members ({have}) are not the recipe's ({', '.join(plan.member_sets)}); "
            "give the recipe it was fitted with"
        )
    clips, labels, names = read_split(plan, split)
    scores = model.decision_function(_member_inputs(plan, clips), where=f"features ({split})")
    pred = model.classes_[scores.argmax(axis=1)]
    path = output or model_path.parent / "predict" / f"{split}_scores.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip", "target", "pred", *[f"score_{_class_name(int(c))}" for c in model.classes_]])
        for name, target, p, row in zip(names, labels, pred, scores):
            truth = _class_name(int(target)) if target >= 0 else ""
            w.writerow([name, truth, _class_name(int(p)), *[f"{s:.5f}" for s in row]])
    labelled = labels >= 0
    accuracy = float(np.mean(pred[labelled] == labels[labelled])) if labelled.all() else None
    return path, accuracy
