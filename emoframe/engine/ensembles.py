"""``ensemble``: members' weights by differential evolution; and an ensemble file tested or predicted as a model.

An ensemble feeds each member its own data (its stored recipe), so it runs outside Lightning's loops on the
members' probabilities (``emoframe.ensemble``); probability files of ``test --save-probs`` are members too.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from emoframe.callbacks.writers import ClassProbabilities
from emoframe.devices import resolve_device
from emoframe.engine.evaluation import EvalResult
from emoframe.engine.runs import check_output, removed_unless_finished
from emoframe.ensemble.files import read_ensemble
from emoframe.ensemble.members import ensemble_probabilities
from emoframe.ensemble.run import EnsembleResult, run_ensemble
from emoframe.ensemble.weights import NLL_WEIGHT
from emoframe.errors import RecipeError
from emoframe.eval.probabilities import SplitProbabilities, confusion, score
from emoframe.eval.reports import write_confusion_reports, write_rows
from emoframe.tta import parse_tta


def fit_ensemble(
    members: list[str | Path],
    overrides: list[str] | None = None,
    *,
    name: str = "ensemble",
    output: str | Path | None = None,
    objective: str = "accuracy",
    nll_weight: float = NLL_WEIGHT,
    seed: int = 0,
    tta: Any = None,
    device: str = "auto",
    command: str | None = None,
) -> EnsembleResult:
    """Weights of ``members`` (checkpoints or ``.probs.npz`` files) on validation, the comparison on test, and
    ``<output>/<name>.ensemble.yaml`` (default output: ``runs/ensemble/<name>``)."""
    out = check_output(output, folder=True) or Path("runs") / "ensemble" / name
    views = parse_tta(tta) if tta else None
    with removed_unless_finished([out]):
        return run_ensemble(
            members, out, name, list(overrides or []), objective, seed, views, device, command, nll_weight
        )


def _refuse_single_model_options(recipe: Any, tta: Any, save_probs: Any) -> None:
    if recipe:
        raise RecipeError(f"{recipe}: an ensemble's members bring their own recipes; give key=value overrides only")
    if tta or save_probs:
        raise RecipeError("--tta/--save-probs: an ensemble file records its own TTA views (emoframe ensemble --tta)")


def predict_outputs(probs: SplitProbabilities) -> list[dict[str, torch.Tensor]]:
    """Probabilities as the one-batch ``predict_step`` outputs a class-probability writer takes."""
    p = torch.from_numpy(np.asarray(probs.probs, dtype=np.float32))
    out = {"probs": p, "pred": p.argmax(dim=-1)}
    if (probs.labels >= 0).all() and len(probs.labels):
        out["target"] = torch.from_numpy(probs.labels)
    return [out]


def test_ensemble_file(
    path: str | Path,
    overrides: list[str] | None = None,
    output: str | Path | None = None,
    device: str = "auto",
    recipe: Any = None,
    tta: Any = None,
    save_probs: Any = None,
) -> EvalResult:
    """The ensemble and each member on the test split: ``test_ensemble.csv`` and the ensemble's confusion matrix."""
    _refuse_single_model_options(recipe, tta, save_probs)
    report_dir = (check_output(output, folder=True) or Path(path).parent) / "test"
    spec = read_ensemble(path)
    found, members = ensemble_probabilities(spec, ["test"], list(overrides or []), resolve_device(device))
    test = found["test"]
    rows = []
    for ckpt, weight, probs in members:
        rows.append(
            {"model": str(ckpt), "weight": weight, **score(probs.splits["test"].probs, probs.splits["test"].labels)}
        )
    result = score(test.probs.astype(np.float32), test.labels)
    rows.append({"model": "ensemble", "weight": None, **result})
    with removed_unless_finished([report_dir]):
        report_dir.mkdir(parents=True, exist_ok=True)
        write_rows(rows, report_dir / "test_ensemble.csv")
        write_confusion_reports(confusion(test.probs, test.labels), list(spec.class_names), report_dir, prefix="test")
    return EvalResult({f"test/{k}": v for k, v in result.items()}, report_dir)


def predict_ensemble_file(
    path: str | Path,
    overrides: list[str] | None = None,
    output: str | Path | None = None,
    device: str = "auto",
    recipe: Any = None,
    tta: Any = None,
) -> EvalResult:
    """The ensemble's probabilities on the predict split of its members' data, through the probability writer."""
    _refuse_single_model_options(recipe, tta, None)
    target = check_output(output) or Path(path).parent / "predict" / "predictions.csv"
    spec = read_ensemble(path)
    found, _ = ensemble_probabilities(spec, ["predict"], list(overrides or []), resolve_device(device))
    writer = ClassProbabilities(str(target))
    writer.write(predict_outputs(found["predict"]), SimpleNamespace(class_names=list(spec.class_names)), None)
    return EvalResult(predictions=target)


def ensemble_lines(result: EnsembleResult) -> list[str]:
    """What ``emoframe ensemble`` prints: each member and the ensemble with its weight and figures, the files."""
    out = []
    for row in result.rows:
        figures = "  ".join(f"{k}={row[k]:.4f}" for k in ("val_acc", "test_acc", "test_macro_f1") if row[k] is not None)
        weight = "" if row["weight"] is None else f"w={row['weight']:.3f}"
        out.append(f"{row['model']:<40} {weight:<8} {figures}")
    return [*out, f"Report: {result.report}", f"Ensemble: {result.ensemble_file}"]
