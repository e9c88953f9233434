"""The ensemble file (``<name>.ensemble.yaml``): members' checkpoints, their weights and the class names.

    format: emoframe-ensemble
    version: 1
    class_names: [angry, disgust, fear, happy, sad, surprise, neutral]
    members:                        # paths relative to this file's folder (or absolute)
      - {checkpoint: ../a/checkpoints/best.ckpt, weight: 0.52, probabilities: members/0_best.probs.npz}
      - {checkpoint: ../b/checkpoints/best.ckpt, weight: 0.48}
    tta: null                       # or the views (emoframe.tta) every member's probabilities are averaged over
    search: {objective: accuracy, seed: 0, method: differential_evolution, val_accuracy: 0.61}

``emoframe test``/``predict --ckpt x.ensemble.yaml`` and ``emoframe.ensemble.load_ensemble`` read it; it is
written atomically (a temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emoframe.errors import RecipeError
from emoframe.files.atomic import atomic_write
from emoframe.tta import TTATransform, parse_tta

ENSEMBLE_FORMAT = "emoframe-ensemble"
ENSEMBLE_VERSION = 1
ENSEMBLE_SUFFIXES = (".ensemble.yaml", ".ensemble.yml")


@dataclass(frozen=True)
class MemberEntry:
    """One member: its checkpoint (``None`` for probabilities without one) and weight; paths absolute."""

    checkpoint: Path | None
    weight: float
    probabilities: Path | None = None


@dataclass(frozen=True)
class EnsembleSpec:
    members: tuple[MemberEntry, ...]
    class_names: tuple[str, ...]
    tta: tuple[TTATransform, ...] | None = None
    search: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None


def is_ensemble_file(path: str | Path) -> bool:
    """Whether ``path`` names an ensemble file (by its suffix: ``.ensemble.yaml``)."""
    return str(path).endswith(ENSEMBLE_SUFFIXES)


def _relative(path: Path | None, folder: Path) -> str | None:
    if path is None:
        return None
    path = Path(path).resolve()
    try:
        return os.path.relpath(path, folder.resolve())
    except ValueError:  # another drive
        return str(path)


def write_ensemble(path: str | Path, spec: EnsembleSpec) -> Path:
    """Write ``spec`` to ``path`` (``.ensemble.yaml``) atomically; member paths are stored relative to its folder."""
    path = Path(path)
    if not is_ensemble_file(path):
        raise RecipeError(f"{path}: an ensemble file's name ends with .ensemble.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    members = []
    for m in spec.members:
        entry: dict[str, Any] = {"checkpoint": _relative(m.checkpoint, path.parent), "weight": float(m.weight)}
        if m.probabilities is not None:
            entry["probabilities"] = _relative(m.probabilities, path.parent)
        members.append(entry)
    doc = {
        "format": ENSEMBLE_FORMAT,
        "version": ENSEMBLE_VERSION,
        "class_names": list(spec.class_names),
        "members": members,
        "tta": [t.settings() for t in spec.tta] if spec.tta else None,
        "search": dict(spec.search),
    }
    with atomic_write(path) as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return path


def read_ensemble(path: str | Path) -> EnsembleSpec:
    """The ensemble file at ``path``, or one ``RecipeError`` line naming it and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"Ensemble file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: not a readable ensemble file ({type(err).__name__})") from None
    if not isinstance(doc, Mapping) or doc.get("format") != ENSEMBLE_FORMAT:
        raise RecipeError(f"{path}: not an emoframe ensemble file (write one with emoframe ensemble)")
    if doc.get("version") != ENSEMBLE_VERSION:
        raise RecipeError(
            f"{path}: ensemble file version {doc.get('version')!r}; this emoframe reads {ENSEMBLE_VERSION}"
        )
    names = doc.get("class_names")
    if not isinstance(names, Sequence) or isinstance(names, str) or not names:
        raise RecipeError(f"{path}: class_names: expected a list of class names")
    raw = doc.get("members")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise RecipeError(f"{path}: members: expected a list of {{checkpoint, weight}}")
    members = []
    for i, m in enumerate(raw):
        where = f"{path}: members[{i}]"
        if not isinstance(m, Mapping):
            raise RecipeError(f"{where}: expected a mapping with checkpoint and weight")
        weight = m.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise RecipeError(f"{where}.weight: expected a number >= 0, got {weight!r}")

        def resolve(key: str, m: Mapping[str, Any] = m) -> Path | None:
            value = m.get(key)
            return None if value is None else (path.parent / str(value)).resolve()

        members.append(MemberEntry(resolve("checkpoint"), float(weight), resolve("probabilities")))
    if sum(m.weight for m in members) <= 0:
        raise RecipeError(f"{path}: the members' weights sum to 0")
    tta = parse_tta(doc["tta"], f"{path}: tta") if doc.get("tta") else None
    search = doc.get("search") if isinstance(doc.get("search"), Mapping) else {}
    return EnsembleSpec(tuple(members), tuple(str(c) for c in names), tta, dict(search), path)
