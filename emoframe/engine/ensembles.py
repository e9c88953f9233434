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
from emoframe.engine.results import EvalResult
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


def predict_outputs(probs: SplitProbabilities) -> list[dict[str, torch.Tensor]]:
    """Probabilities as the one-batch ``predict_step`` outputs a class-probability writer takes."""
    p = torch.from_numpy(np.asarray(probs.probs, dtype=np.float32))
    out = {"probs": p, "pred": p.argmax(dim=-1)}
    if (probs.labels >= 0).all() and len(probs.labels):
        out["target"] = torch.from_numpy(probs.labels)
    return [out]


def ensemble_file(
    stage: str,
    path: str | Path,
    overrides: list[str] | None = None,
    output: str | Path | None = None,
    device: str = "auto",
    recipe: Any = None,
    tta: Any = None,
    save_probs: Any = None,
) -> EvalResult:
    """``test``/``predict --ckpt x.ensemble.yaml``: the ensemble on the test/predict split of its members' data.

    ``test`` writes ``test_ensemble.csv`` (each member and the ensemble) and the ensemble's confusion matrix;
    ``predict`` the probabilities, through the class-probability writer."""
    if recipe:
        raise RecipeError(f"{recipe}: an ensemble's members bring their own recipes; give key=value overrides only")
    if tta or save_probs:
        raise RecipeError("--tta/--save-probs: an ensemble file records its own TTA views (emoframe ensemble --tta)")
    split = "test" if stage == "test" else "predict"
    where = check_output(output, folder=split == "test") or Path(path).parent / split
    spec = read_ensemble(path)
    found, members = ensemble_probabilities(spec, [split], list(overrides or []), resolve_device(device))
    if split == "predict":
        target = where if output else where / "predictions.csv"
        ClassProbabilities(str(target)).write(
            predict_outputs(found["predict"]), SimpleNamespace(class_names=list(spec.class_names)), None
        )
        return EvalResult(predictions=target)
    report_dir = where / "test" if output else where
    rows = [
        {"model": str(c), "weight": w, **score(p.splits["test"].probs, p.splits["test"].labels)} for c, w, p in members
    ]
    result = score(found["test"].probs.astype(np.float32), found["test"].labels)
    with removed_unless_finished([report_dir]):
        report_dir.mkdir(parents=True, exist_ok=True)
        write_rows([*rows, {"model": "ensemble", "weight": None, **result}], report_dir / "test_ensemble.csv")
        cm = confusion(found["test"].probs, found["test"].labels)
        write_confusion_reports(cm, list(spec.class_names), report_dir, prefix="test")
    return EvalResult({f"test/{k}": v for k, v in result.items()}, report_dir)


def ensemble_lines(result: EnsembleResult) -> list[str]:
    """What ``emoframe ensemble`` prints: each member and the ensemble with its weight and figures, the files."""
    out = []
    for row in result.rows:
        figures = "  ".join(f"{k}={row[k]:.4f}" for k in ("val_acc", "test_acc", "test_macro_f1") if row[k] is not None)
        weight = "" if row["weight"] is None else f"w={row['weight']:.3f}"
        out.append(f"{row['model']:<40} {weight:<8} {figures}")
    return [*out, f"Report: {result.report}", f"Ensemble: {result.ensemble_file}"]
