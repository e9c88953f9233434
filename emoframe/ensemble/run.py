"""``emoframe ensemble``: members' validation probabilities -> weights -> report on test -> ensemble file.

Kumari's comparison in one command: every member, their plain average and the weighted ensemble (weights by
differential evolution on the validation split, ``emoframe.ensemble.weights``), scored on validation and test
(accuracy and macro F1). Writes, under ``--output``:

    ensemble.md, ensemble.csv        the comparison (one row per member, the average, the weighted ensemble)
    <name>.ensemble.yaml             the ensemble: members' checkpoints + weights + class names (test/predict --ckpt)
    members/<i>_<stem>.probs.npz     each checkpoint member's val/test probabilities (read back by a later run)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from emoframe.ensemble.files import EnsembleSpec, MemberEntry, write_ensemble
from emoframe.ensemble.members import (
    align_members,
    check_same_classes,
    classes_of,
    evaluate_member,
    is_probability_file,
    load_member,
    resolve_device,
)
from emoframe.ensemble.weights import NLL_WEIGHT, WeightSearch, combine, search_weights
from emoframe.errors import RecipeError
from emoframe.eval.probabilities import ProbabilityFile, save_probabilities, score
from emoframe.eval.reports import write_rows
from emoframe.files.atomic import atomic_write
from emoframe.tta import TTATransform, describe_views

SPLITS = ("val", "test")


@dataclass
class EnsembleResult:
    rows: list[dict[str, Any]]
    search: WeightSearch
    ensemble_file: Path
    report: Path
    csv: Path


def _member_name(path: Path, index: int, names: list[str]) -> str:
    """A short, unique name: the run folder for ``<run>/checkpoints/best.ckpt``, else the file's stem."""
    stem = path.name.removesuffix(".probs.npz").removesuffix(".npz").removesuffix(".ckpt")
    if path.parent.name == "checkpoints":
        stem = f"{path.parent.parent.parent.name}/{path.parent.parent.name}/{stem}"
    return stem if stem not in names else f"{stem}#{index}"


def _scores(probs: np.ndarray, labels: np.ndarray, prefix: str) -> dict[str, float | None]:
    if (labels < 0).all():
        return {f"{prefix}_acc": None, f"{prefix}_macro_f1": None}
    s = score(probs.astype(np.float32), labels)
    return {f"{prefix}_acc": s["acc"], f"{prefix}_macro_f1": s["macro_f1"]}


def _write_text(path: Path, text: str) -> Path:
    with atomic_write(path) as f:
        f.write(text)
    return path


def run_ensemble(
    members: Sequence[str | Path],
    output: str | Path,
    name: str = "ensemble",
    overrides: Sequence[str] = (),
    objective: str = "accuracy",
    seed: int = 0,
    views: Sequence[TTATransform] | None = None,
    device: str = "auto",
    command: str | None = None,
    nll_weight: float = NLL_WEIGHT,
) -> EnsembleResult:
    """Weights for ``members`` (checkpoints or probability files) on validation, the comparison on test, the file."""
    if not members:
        raise RecipeError("emoframe ensemble: give the members (checkpoints or .probs.npz files)")
    if not name or "/" in name:
        raise RecipeError(f"--name: expected a file name without '/', got {name!r}")
    output = Path(output)
    target = resolve_device(device)
    paths = [Path(m) for m in members]
    for path in paths:  # before any member is evaluated
        if not path.is_file():
            kind = "Probability file" if is_probability_file(path) else "Checkpoint"
            raise RecipeError(f"{kind} not found: {path}")
    names: list[str] = []
    for i, path in enumerate(paths):
        names.append(_member_name(path, i, names))
    members_loaded: list[Any] = [load_member(path, SPLITS, overrides, target) for path in paths]
    check_same_classes([classes_of(m) for m in members_loaded], [str(p) for p in paths])  # before any evaluation
    (output / "members").mkdir(parents=True, exist_ok=True)
    loaded: list[ProbabilityFile] = []
    entries: list[tuple[Path | None, Path | None]] = []  # (checkpoint, probabilities file)
    for i, path in enumerate(paths):
        print(f"Member {i}: {path}", file=sys.stderr, flush=True)
        member, members_loaded[i] = members_loaded[i], None  # released once evaluated
        probs = evaluate_member(member, SPLITS, views, target)
        if is_probability_file(path):
            ckpt = probs.meta.get("checkpoint")
            ckpt_path = Path(ckpt) if ckpt and Path(ckpt).is_file() else None
            if probs.meta.get("tta") != ([v.settings() for v in views] if views else None):
                print(
                    f"Note: {path} holds probabilities of other TTA views than --tta gives; weighed as they are, "
                    "while test/predict with the ensemble file use --tta's",
                    file=sys.stderr,
                )
            entries.append((ckpt_path, path))
        else:
            saved = save_probabilities(output / "members" / f"{i}_{path.stem}.probs.npz", probs)
            entries.append((path, saved))
        loaded.append(probs)
    loaded = align_members(loaded, names, SPLITS)  # classes in the first member's order, by name
    labels = {s: loaded[0].splits[s].labels for s in SPLITS}
    stacks = {s: np.stack([p.splits[s].probs for p in loaded]) for s in SPLITS}
    search = search_weights(list(stacks["val"]), labels["val"], objective=objective, seed=seed, nll_weight=nll_weight)  # type: ignore[arg-type]

    rows: list[dict[str, Any]] = []
    for i, n in enumerate(names):
        row: dict[str, Any] = {"model": n, "kind": "member", "weight": float(search.weights[i])}
        for s in SPLITS:
            row.update(_scores(stacks[s][i], labels[s], s))
        rows.append(row)
    best = max(range(len(names)), key=lambda i: rows[i]["val_acc"])
    rows[best]["kind"] = "best member (val)"
    for label, weights in (("average", np.ones(len(names))), ("weighted (DE)", search.weights)):
        row = {"model": label, "kind": "ensemble", "weight": None}
        for s in SPLITS:
            row.update(_scores(combine(stacks[s], weights), labels[s], s))
        rows.append(row)
    csv_path = write_rows(rows, output / "ensemble.csv")

    ensemble_file = output / f"{name}.ensemble.yaml"
    spec_members = tuple(MemberEntry(c, float(w), p) for (c, p), w in zip(entries, search.weights))
    search_info = {
        "objective": search.objective,
        "nll_weight": nll_weight if search.objective == "accuracy" else None,
        "seed": search.seed,
        "method": search.method,
        "val_accuracy": round(search.val_accuracy, 6),
        "evaluations": search.evaluations,
    }
    spec = EnsembleSpec(spec_members, tuple(loaded[0].class_names), tuple(views) if views else None, search_info)
    if any(c is None for c, _ in entries):
        print(
            "Note: some members are probabilities without a checkpoint: the ensemble file cannot predict",
            file=sys.stderr,
        )
    write_ensemble(ensemble_file, spec)
    report = _write_text(output / "ensemble.md", _markdown(rows, search, views, command, ensemble_file))
    return EnsembleResult(rows, search, ensemble_file, report, csv_path)


def _fmt(v: Any) -> str:
    return "" if v is None else f"{100 * v:.2f}" if isinstance(v, float) else str(v)


def _markdown(
    rows: list[dict[str, Any]], search: WeightSearch, views: Any, command: str | None, ensemble_file: Path
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Ensemble",
        "",
        f"{when}. Weights by `scipy.optimize.differential_evolution` on the validation split (minimising "
        f"{search.describe()}, seed {search.seed}, {search.evaluations} evaluations; kept: {search.method}); "
        f"TTA: {describe_views(views) if views else 'none'}. Ensemble file: `{ensemble_file.name}`.",
        "",
    ]
    if command:
        lines += ["    " + command, ""]
    lines += [
        "| model | kind | weight | val acc % | val macro F1 % | test acc % | test macro F1 % |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        weight = "" if r["weight"] is None else f"{r['weight']:.3f}"
        cells = [r["model"], r["kind"], weight] + [
            _fmt(r[k]) for k in ("val_acc", "val_macro_f1", "test_acc", "test_macro_f1")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
