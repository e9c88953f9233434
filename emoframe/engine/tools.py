"""The verbs around training: ``svm`` (clip SVMs on extracted features), ``sweep``, ``check`` and ``components``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoframe.builder import check, new_run_dir
from emoframe.config import compose, load_svm_recipe, save_recipe
from emoframe.engine.recipes import recipe_for
from emoframe.engine.runs import check_output
from emoframe.errors import RecipeError
from emoframe.registry import REGISTRIES, load_builtins, load_plugins


def svm(recipe: str | Path, overrides: list[str] | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Fit a recipe's clip SVMs on extracted features: the run folder and one row of figures per SVM."""
    from emoframe.clipsvm.run import fit_svm

    if not recipe:
        raise RecipeError("Give an SVM recipe file (e.g. recipes/afew_stat_svm.yaml)")
    cfg = load_svm_recipe(recipe, overrides)
    run_dir = new_run_dir(cfg)
    rows = fit_svm(cfg, run_dir)
    save_recipe(cfg, run_dir / "config.yaml")
    return run_dir, rows


def svm_scores(
    recipe: str | Path,
    overrides: list[str] | None = None,
    *,
    split: str = "test",
    model: str | Path | None = None,
    output: str | Path | None = None,
) -> tuple[Path, float | None]:
    """Per-clip scores of a fitted SVM model (default: the newest run of ``recipe``) and the split's accuracy."""
    from emoframe.clipsvm.run import find_model, predict_svm

    if not recipe:
        raise RecipeError("Give an SVM recipe file (e.g. recipes/afew_stat_svm.yaml)")
    target = check_output(output)
    cfg = load_svm_recipe(recipe, overrides)
    return predict_svm(cfg, find_model(cfg, model), split, target)


def sweep(file: str | Path, **options: Any) -> Any:
    """A W&B sweep file: W&B online, else (or ``local=True``) the local Optuna engine (``emoframe.sweeps.run``)."""
    from emoframe.sweeps.run import sweep as run_sweep

    check_output(options.get("folder"), "--dir", folder=True)
    return run_sweep(str(file), **options)


def check_recipe(recipe: Any, overrides: list[str] | None = None) -> dict[str, Any]:
    """The resolved recipe once it passes every check ``fit`` makes before training (``emoframe config``)."""
    from emoframe.clipsvm.run import plan_from_recipe

    if isinstance(recipe, (str, Path)) and "svm" in compose(recipe):  # an `emoframe svm` recipe
        cfg = load_svm_recipe(recipe, overrides)
        plan_from_recipe(cfg)
        return cfg
    cfg = recipe_for(recipe, overrides)
    check(cfg)
    return cfg


def _registries(kind: str | None) -> list[Any]:
    load_builtins()
    load_plugins()
    if kind is None:
        return list(REGISTRIES.values())
    registry = REGISTRIES.get(kind) or next((r for r in REGISTRIES.values() if r.kind == kind), None)
    if registry is None:
        raise RecipeError(f"Unknown kind '{kind}'. Kinds: {', '.join(REGISTRIES)}")
    return [registry]


def list_components(kind: str | None = None) -> dict[str, list[str]]:
    """Registered names per kind (``backbones``, ``losses``, ``temporal``, ...), built-ins and plugins."""
    return {r.plural: r.names() for r in _registries(kind)}


def svm_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What ``emoframe svm`` prints: one line per SVM with its C (or prior) and accuracies."""
    out = []
    for row in rows:
        shown = [f"{k}={v:.4f}" for k, v in row.items() if k.endswith("_accuracy") and isinstance(v, float)]
        extra = f"C={row['C']:g}" if "C" in row else f"prior={row['prior']}" if "prior" in row else ""
        out.append(f"{row['model']:<24} {extra:<16} {'  '.join(shown)}")
    return out


def component_lines(kind: str | None = None) -> list[str]:
    """What ``emoframe list`` prints: each kind, then its names and summaries."""
    out = []
    for registry in _registries(kind):
        entries = list(registry.describe())
        out += [f"{registry.plural}:", *(f"  {name:<20} {doc}" for name, doc in entries)]
        out += [] if entries else ["  (none registered yet)"]
    return out
