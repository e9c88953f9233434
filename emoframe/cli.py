"""`emoframe fit | validate | test | predict | export | extract | ensemble | svm | sweep | list | config`.

Argument parsing only: each verb is a function of ``emoframe.engine`` with the same options, declared once in
``SHARED`` and ``VERBS``. Recipe, data and weight errors end the command with one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENVIRONMENT_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)
"""Failures of the machine, not of emoframe: a read-only, forbidden or full output folder ends in one line."""
ONE_LINE_ERRORS = ("RecipeError", "DataError", "WeightsError")

Option = tuple[tuple[str, ...], dict[str, Any]]


def _opt(*names: str, **kwargs: Any) -> Option:
    return names, kwargs


VIEWS = "views: 1-18 of the paper's set (default 18), flip, paper, ten_crop, a+b, or a YAML list"
SHARED: dict[str, Option] = {
    "recipe": _opt("args", nargs="*", metavar="RECIPE [key=value ...]", help="recipe file, then overrides"),
    "ckpt": _opt("--ckpt", metavar="best|last|PATH", help="checkpoint: a path, or best/last of the recipe"),
    "output": _opt("--output", help="where to write (a file or a folder, as the verb says)"),
    "device": _opt("--device", default="auto", help="where the network runs: auto, cpu, cuda, cuda:N"),
    "tta": _opt("--tta", nargs="?", const="18", metavar="VIEWS", help=f"average over {VIEWS} (default: the recipe's)"),
}
EVAL = ("recipe", "ckpt", "output", "device")
SAVE_PROBS = _opt("--save-probs", metavar="PATH", help="write val and test probabilities (.probs.npz)")


@dataclass
class Verb:
    """One command: its help, the shared options it takes, its own options, and the function that runs it."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], None]
    shared: tuple[str, ...] = ("recipe",)
    own: list[Option] = field(default_factory=list)
    required: tuple[str, ...] = ()


def _args(ns: argparse.Namespace) -> tuple[str | None, list[str]]:
    from emoframe.engine.recipes import split_args

    return split_args(list(getattr(ns, "args", [])))


def _kw(ns: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options ``names`` of a parsed command, as keyword arguments of its engine function."""
    return {k: getattr(ns, k) for k in names}


def run_fit(ns: argparse.Namespace) -> None:
    from emoframe.callbacks.sweep import SweepTrial
    from emoframe.engine import fit

    fit(*_args(ns), resume=ns.resume, trial=SweepTrial.from_env())  # a sweep worker hands its trial over


def run_validate(ns: argparse.Namespace) -> None:
    from emoframe.engine import validate

    print(*validate(*_args(ns), **_kw(ns, "ckpt", "output", "device")).lines(), sep="\n")


def run_test(ns: argparse.Namespace) -> None:
    from emoframe.engine import test

    print(*test(*_args(ns), **_kw(ns, "ckpt", "tta", "save_probs", "output", "device")).lines(), sep="\n")


def run_predict(ns: argparse.Namespace) -> None:
    from emoframe.engine import predict
    from emoframe.engine.inputs import INPUT_OPTIONS, split_inputs

    inputs, rest = split_inputs(list(ns.args))
    if not inputs:
        print(*predict(None, *_args(ns), **_kw(ns, "ckpt", "tta", "output", "device")).lines(), sep="\n")
        return
    summary = predict(
        inputs, *_args(argparse.Namespace(args=rest)), **_kw(ns, "ckpt", "tta", "output", "device", *INPUT_OPTIONS)
    )
    out = sys.stderr if ns.json_lines or any(i.isdigit() or "://" in i for i in inputs) else sys.stdout
    print(*summary.notes, summary.line(), sep="\n", file=sys.stderr, flush=True)  # stdout: JSON lines of live sources
    for path in summary.paths:
        print(f"Predictions: {path}" if path.suffix == ".csv" else f"Wrote: {path}", file=out)
    if summary.interrupted:
        raise SystemExit(130)


def run_export(ns: argparse.Namespace) -> None:
    from emoframe.engine import export_model

    result = export_model(ns.ckpt, ns.format, ns.output, ns.parity, list(ns.args), ns.items, ns.opset)
    print(result.summary(), file=sys.stderr)
    print(f"Exported: {result.path}")


def run_extract(ns: argparse.Namespace) -> None:
    from emoframe.engine import extract
    from emoframe.engine.extraction import extract_lines

    keys = ("ckpt", "output", "splits", "tta", "batch_size", "device", "overwrite")
    print(*extract_lines(extract(*_args(ns), **_kw(ns, *keys))), sep="\n")


def run_ensemble(ns: argparse.Namespace) -> None:
    from emoframe.engine import fit_ensemble
    from emoframe.engine.ensembles import ensemble_lines

    members, overrides = [a for a in ns.args if "=" not in a], [a for a in ns.args if "=" in a]
    command = "emoframe ensemble " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["ensemble"] else None
    keys = ("name", "output", "objective", "nll_weight", "seed", "tta", "device")
    print(*ensemble_lines(fit_ensemble(members, overrides, command=command, **_kw(ns, *keys))), sep="\n")


def run_svm(ns: argparse.Namespace) -> None:
    from emoframe.engine import svm, svm_scores
    from emoframe.engine.tools import svm_lines

    if ns.predict:
        path, accuracy = svm_scores(*_args(ns), **_kw(ns, "split", "model", "output"))  # type: ignore[misc]
        print(f"Scores: {path}", *([f"{ns.split}_accuracy\t{accuracy:.4f}"] if accuracy is not None else []), sep="\n")
        return
    run_dir, rows = svm(*_args(ns))  # type: ignore[misc]
    print(f"Run directory: {run_dir}", file=sys.stderr)
    print(*svm_lines(rows), sep="\n")


def run_sweep(ns: argparse.Namespace) -> None:
    from emoframe.engine import sweep

    sweep(ns.file, folder=ns.dir, **_kw(ns, "report", "local", "storage", "join", "agent", "count"))


def run_list(ns: argparse.Namespace) -> None:
    from emoframe.engine.tools import component_lines

    print(*component_lines(ns.kind), sep="\n")


def run_config(ns: argparse.Namespace) -> None:
    from emoframe.config import to_yaml
    from emoframe.engine import check_recipe

    recipe, overrides = _args(ns)
    print(to_yaml(check_recipe(recipe, overrides)), end="")


PREDICT_INPUTS = [
    _opt("--faces", default="all", choices=("all", "largest", "none"), help="faces per frame to report"),
    _opt("--every", type=int, default=1, metavar="N", help="videos: look at one frame in N"),
    _opt("--fps", type=float, help="videos: look at about this many frames per second"),
    _opt("--detect-every", type=int, default=1, metavar="N", help="find faces in one looked-at frame in N (faster)"),
    _opt("--render", metavar="OUT.mp4", help="one video in: write it with boxes, labels and bars"),
    _opt("--batch-size", type=int, default=64, help="faces per forward pass"),
    _opt("--decode-side", type=int, default=640, help="decode videos at this longer side (0: full)"),
    _opt("--no-timeline", dest="timeline", action="store_false", help="no timeline PNG per video"),
    _opt("--json", dest="json_lines", action="store_const", const=True, help="JSON lines on stdout (live: default)"),
    _opt("--no-progress", dest="progress", action="store_false", help="no progress bar"),
]
VERBS = [
    Verb("fit", "train a recipe", run_fit, own=[_opt("--resume", metavar="last|PATH", help="continue a run")]),
    Verb("validate", "validate a trained model", run_validate, EVAL),
    Verb("test", "test a model or an ensemble file", run_test, (*EVAL, "tta"), [SAVE_PROBS]),
    Verb("predict", "pictures, videos, streams, or a split", run_predict, (*EVAL, "tta"), PREDICT_INPUTS),
    Verb(
        "export",
        "a checkpoint as ONNX or TorchScript, checked against PyTorch at export",
        run_export,
        ("recipe", "ckpt", "output"),
        [
            _opt("--format", default="onnx", choices=("onnx", "torchscript"), help="file format (default onnx)"),
            _opt("--parity", default="data", choices=("data", "random"), help="check on the recipe's data or noise"),
            _opt("--items", type=int, default=8, help="items of the data the parity check runs on"),
            _opt("--opset", type=int, default=None, help="ONNX opset (default 17)"),
        ],
        required=("ckpt",),
    ),
    Verb(
        "extract",
        "per-frame backbone features of a checkpoint, for clip SVMs",
        run_extract,
        ("recipe", "ckpt", "output", "device", "tta"),
        [
            _opt("--splits", default="train,val", help="comma-separated: train, val, test, predict"),
            _opt("--batch-size", type=int, default=64, help="frames per forward pass (times the views)"),
            _opt("--overwrite", action="store_true", help="extract again even if a split file is complete"),
        ],
        required=("ckpt",),
    ),
    Verb(
        "ensemble",
        "weights of a weighted ensemble by differential evolution, its report and file",
        run_ensemble,
        ("recipe", "output", "device", "tta"),
        [
            _opt("--name", default="ensemble", help="the ensemble file is <output>/<name>.ensemble.yaml"),
            _opt("--objective", default="accuracy", help="accuracy (Kumari's, + nll-weight x log-loss) or nll"),
            _opt("--nll-weight", type=float, default=0.1, help="log-loss term of the accuracy objective (0: pure)"),
            _opt("--seed", type=int, default=0, help="differential evolution's seed"),
        ],
    ),
    Verb(
        "svm",
        "fit clip SVMs on extracted features (or --predict scores)",
        run_svm,
        ("recipe", "output"),
        [
            _opt("--predict", action="store_true", help="write per-clip scores with a fitted model"),
            _opt("--split", default="test", help="--predict: the split to score (default test)"),
            _opt("--model", help="--predict: svm.joblib (default: the newest run of the recipe)"),
        ],
    ),
    Verb(
        "sweep",
        "run a W&B sweep file: W&B online, else (or --local) the local Optuna engine",
        run_sweep,
        (),
        [
            _opt("file", metavar="SWEEP.yaml", help="a W&B sweep configuration whose command runs emoframe fit"),
            _opt("--local", action="store_true", help="the local Optuna engine even when W&B is online"),
            _opt("--storage", metavar="URL", help="Optuna storage (default: sqlite in the sweep folder)"),
            _opt("--join", action="store_true", help="add a worker to a sweep that exists (fails if it does not)"),
            _opt("--agent", metavar="SWEEP_ID", help="W&B online: run an agent of an existing W&B sweep"),
            _opt("--count", type=int, help="this worker runs at most N trials"),
            _opt("--dir", help="the sweep folder (default: $EMOFRAME_RUNS/sweeps/<name>, else runs/sweeps/<name>)"),
            _opt("--report", action="store_true", help="write the leaderboard, best recipe and plots, then stop"),
        ],
    ),
    Verb("list", "list registered components", run_list, (), [_opt("kind", nargs="?", help="e.g. backbones, losses")]),
    Verb("config", "check the recipe as fit does, then print it resolved", run_config),
]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoframe", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        p = sub.add_parser(verb.name, help=verb.help)
        for key in verb.shared:
            names, kwargs = SHARED[key]
            p.add_argument(*names, **{**kwargs, **({"required": True} if key in verb.required else {})})
        for names, kwargs in verb.own:
            p.add_argument(*names, **kwargs)
        p.set_defaults(func=verb.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # user modules next to the recipes import as with `python -m`
    parser = make_parser()
    ns, extra = parser.parse_known_args(argv)  # overrides may follow options: fit r.yaml --resume last a=1
    unknown = [a for a in extra if a.startswith("-") or not hasattr(ns, "args")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(ns, "args"):
        ns.args = [*ns.args, *extra]
    try:
        ns.func(ns)
    except FileNotFoundError as err:
        print(f"emoframe: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = err.filename or "an output file"
        print(f"emoframe: error: cannot write {where}: {err.strerror} (choose a writable folder)", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__name__ not in ONE_LINE_ERRORS:
            raise
        print(f"emoframe: error: {err}", file=sys.stderr)
        return 2
    finally:
        finish_runs()
    return 0


def finish_runs() -> None:
    """Close the W&B run, so a later command in the same process starts its own instead of reusing it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


if __name__ == "__main__":
    sys.exit(main())
