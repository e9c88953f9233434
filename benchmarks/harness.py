"""What every benchmark script shares, so that each script holds only its experiment.

- **Run** a recipe through the engine: ``fit`` and ``test`` (``emoframe.fit`` / ``emoframe.test``), ``engine`` for
  the other verbs (``extract``, ``svm``, ``ensemble``, ``export``, ``predict``), ``fit_and_test`` for the FER2013
  recipe runs (fit, test the best checkpoint, optionally save it as an ensemble member), and ``emoframe_command`` /
  ``emoframe_env`` / ``run_emoframe`` where a script needs a fresh ``python -m emoframe`` process on purpose
  (peak memory, sweep workers).
- **Read** a run's figures: ``read_run`` (seed, fit time, epochs, test figures of a run folder), ``metrics_rows``
  (its per-epoch CSV log), ``mean_sd``.
- **Time** a call: ``timed(fn, ...)`` and ``stopwatch()``.
- **Record** the machine: ``machine()`` (CPU model, cores, vector extensions, GPU, torch, Python) and the date.
- **Publish** a figure to docs/benchmarks.md: ``publish`` replaces a measure's section, ``publish_row`` one row of a
  measure's table; whatever they replace is appended to docs/benchmarks_history.md. Both files are written
  whole or not at all (``emoframe.files.atomic``).

Scripts run as ``python benchmarks/NAME.py``, so this folder is first on ``sys.path``: ``from harness import ...``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoframe.files.atomic import atomic_write

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HISTORY = REPO / "docs" / "benchmarks_history.md"
DATA = REPO.parent / "shared" / "data"
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]

DOC_HEADER = """# Benchmarks

One section per measure, each with its current figures only: the newest run of the script named in its
*Command* line, with the date and the machine it ran on (CPU model, cores, vector extensions). Machines here
differ up to threefold in speed, so compare wall-clock figures only within one section (one run, one machine);
ratios measured in one run carry across machines better. Figures that a newer run replaced are kept, with their
own command, date and machine, in [the history](benchmarks_history.md). Every section is written by its script
(`benchmarks/harness.py`'s `publish` and `publish_row`): rerun it to refresh the figures.
"""
HISTORY_HEADER = """# Benchmark history

Figures that a newer run of the same measure replaced on [the benchmarks page](benchmarks.md), grouped by measure,
oldest first, each with the command, date and machine it was measured with. Kept so that a change of figure can be
traced; read the benchmarks page for the current ones.
"""

# Vector extensions that decide CPU throughput here: fused multiply-add, AVX2, AVX-512 (and its bf16 / VNNI
# forms), AMX. /proc/cpuinfo's flag names.
VECTOR_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


# --------------------------------------------------------------------------------------------- the machine


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    vector: tuple[str, ...]
    gpu: str
    torch: str
    python: str

    def __str__(self) -> str:
        return f"{self.short()}, {self.gpu}, torch {self.torch}, Python {self.python}"

    def short(self) -> str:
        """For a table cell: ``2 CPU cores (AMD EPYC; vector extensions: avx, avx2, ...)``."""
        vector = ", ".join(self.vector) or "none of " + "/".join(VECTOR_FLAGS)
        return f"{self.cores} CPU cores ({self.cpu}; vector extensions: {vector})"


def _cpuinfo() -> tuple[str, set[str]]:
    """The CPU's model name and flags, from /proc/cpuinfo or, failing that, lscpu."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        try:
            text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "model name(s)") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine(), flags


def machine() -> Machine:
    """This machine, as the benchmarks page records it."""
    import torch

    cpu, flags = _cpuinfo()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    vector = tuple(f for f in VECTOR_FLAGS if f in flags)
    return Machine(cpu, os.cpu_count() or 1, vector, gpu, torch.__version__, platform.python_version())


def today() -> str:
    return dt.date.today().isoformat()


def command() -> str:
    """The command that runs this script now, as a reader would type it."""
    argv = list(sys.argv)
    with contextlib.suppress(ValueError):
        argv[0] = str(Path(argv[0]).resolve().relative_to(REPO))
    return "python " + " ".join(shlex.quote(a) for a in argv)


# ------------------------------------------------------------------------------------------------- timing


@dataclass
class Stopwatch:
    """Started when made; ``elapsed()`` so far, ``seconds`` once ``stopwatch()``'s block has ended."""

    seconds: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@contextlib.contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """``with stopwatch() as t: ...``; then ``t.seconds`` (set when the block ends, also on an error)."""
    watch = Stopwatch()
    try:
        yield watch
    finally:
        watch.seconds = watch.elapsed()


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and the seconds it took."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ the engine


def fer2013_zip(data: str | Path = DATA) -> Path:
    return Path(data) / "fer2013" / "fer2013.zip"


def _engine() -> Any:
    os.environ.setdefault("WANDB_MODE", "offline")  # benchmarks never upload
    os.environ.setdefault("WANDB_SILENT", "true")
    import emoframe

    if not hasattr(emoframe, "fit"):
        raise SystemExit("this emoframe has no engine (emoframe.fit): install the current checkout (pip install -e .)")
    return emoframe


def engine(verb: str, *args: Any, **kwargs: Any) -> Any:
    """``emoframe.<verb>(*args, **kwargs)``: the engine's Python API, the CLI's verbs with the same options."""
    return getattr(_engine(), verb)(*args, **kwargs)


def fit(recipe: str | Path | Mapping[str, Any], overrides: Sequence[str] = (), *, resume: Any = None) -> Any:
    """``emoframe.fit`` (W&B offline): a ``FitResult`` with ``run_dir``, ``best``, ``last`` and ``metrics``."""
    return engine("fit", recipe if isinstance(recipe, Mapping) else str(recipe), list(overrides), resume=resume)


def test(ckpt: str | Path, overrides: Sequence[str] = (), **options: Any) -> Any:
    """``emoframe.test`` of a checkpoint (``tta``, ``save_probs``, ``output``, ``device`` as the CLI's options): an
    ``EvalResult`` whose ``metrics`` hold ``test/...`` and, with TTA, ``test_tta/...``."""
    return engine("test", None, list(overrides), ckpt=str(ckpt), **options)


def fixture(name: str) -> Any:
    """``tests/fixtures/<name>.py`` (the generators of datasets in their real layouts), imported from the checkout."""
    import importlib

    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))  # the checkout's tests/ is not part of the installed package
    return importlib.import_module(f"tests.fixtures.{name}")


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the block (what a recipe's ``${oc.env:...}`` reads), then as it was."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def emoframe_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh emoframe process: this one's, W&B offline, this checkout first on the path."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **extra}  # benchmarks never upload
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return env


def emoframe_command(*args: str) -> list[str]:
    """``python -m emoframe ARGS`` with this interpreter: for scripts that need a fresh process on purpose."""
    return [sys.executable, "-m", "emoframe", *map(str, args)]


def run_emoframe(*args: str, env: Mapping[str, str] | None = None, log: Path | None = None) -> str:
    """``python -m emoframe ARGS`` in a fresh process, run to the end; its output (or SystemExit with its tail)."""
    proc = subprocess.run(
        emoframe_command(*args), cwd=REPO, env=dict(env or emoframe_env()), capture_output=True, text=True
    )
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ emoframe {' '.join(map(str, args))}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): emoframe {' '.join(map(str, args))}\n{proc.stderr[-3000:]}")
    return proc.stdout


def relative(path: str | Path) -> Path:
    """``path`` relative to the checkout where it is inside it (what the docs show)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(REPO)
    except ValueError:
        return path


@dataclass
class RecipeRun:
    """One FER2013 recipe fitted and its best checkpoint tested (``fit_and_test``)."""

    recipe: str
    overrides: list[str]
    run_dir: Path
    best: Path
    fit_seconds: float
    best_epoch: int
    metrics: dict[str, float]  # test/... (plain) and, when the recipe tests with TTA, test_tta/...

    def tta(self) -> bool:
        return "test_tta/acc" in self.metrics


def fit_and_test(
    recipe: str,
    overrides: Sequence[str] = (),
    *,
    data: str | Path = DATA,
    runs: str | Path = REPO / "benchmarks" / "runs",
    members: str | Path | None = None,
) -> RecipeRun:
    """Fit a FER2013 recipe on ``data``, timed, and test its best checkpoint (by PublicTest) on PrivateTest.

    With ``members`` (a PREFIX), the best checkpoint's validation and test probabilities are saved as
    ``PREFIX.none.probs.npz`` and, when the recipe tests with TTA, ``PREFIX.<views>.probs.npz`` (small files to
    commit: ensemble members that outlive the machine), and the run's figures as ``PREFIX.run.json``."""
    root = [f"data.root={fer2013_zip(data)}"]
    path = Path(recipe) if Path(recipe).is_file() else REPO / recipe  # recipes/... from anywhere
    result, seconds = timed(fit, path, [*root, f"run.dir={runs}", *QUIET, *overrides])
    run_dir = Path(result.run_dir)
    if result.best is None:
        raise SystemExit(f"{run_dir}: the fit saved no best checkpoint")
    best = Path(result.best)
    views = _recipe_tta(run_dir)
    probs = {}
    if members is not None:
        Path(members).parent.mkdir(parents=True, exist_ok=True)
        if views:  # the TTA pass's test probabilities are saved, not redone
            probs = {"save_probs": f"{members}.{views}.probs.npz"}
    evaluated = test(best, [*root, *QUIET], **probs)
    if members is not None:
        test(best, [*root, *QUIET], tta="none", save_probs=f"{members}.none.probs.npz")
    done = RecipeRun(str(recipe), list(overrides), run_dir, best, seconds, _epoch(best), dict(evaluated.metrics))
    if members is not None:
        import json

        backbone = os.environ.get("EMOFRAME_BACKBONE_WEIGHTS")  # the start of a fine-tuned twin (Kumari's recipes)
        summary = {
            **run_summary(run_dir, done.metrics),
            "recipe": str(recipe),
            "overrides": list(overrides),
            "backbone": backbone,
        }
        with atomic_write(Path(f"{members}.run.json")) as f:
            json.dump(summary, f, indent=1)
    return done


RECIPES_MEASURE = "fer2013-recipes"
RECIPES_TITLE = "FER2013 recipes: one fit each, PrivateTest with the best checkpoint by PublicTest"
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def recipe_row(run: RecipeRun) -> dict[str, str]:
    """A ``fit_and_test`` run's row of the table ``fer2013-recipes`` (its columns, in order)."""
    m, tta, classes = run.metrics, run.tta(), FER2013_CLASSES
    return {
        "run": f"`{Path(run.recipe).stem}` `{' '.join(run.overrides) or '-'}`",
        "PrivateTest acc": f"{m['test/acc']:.4f}",
        "macro F1": f"{m['test/macro_f1']:.4f}",
        "TTA acc": f"{m['test_tta/acc']:.4f}" if tta else "-",
        "TTA macro F1": f"{m['test_tta/macro_f1']:.4f}" if tta else "-",
        "best epoch": str(run.best_epoch),
        "fit wall time": f"{run.fit_seconds / 60:.1f} min",
        f"recall {' / '.join(classes)}": " / ".join(f"{m.get(f'test/recall/{c}', float('nan')):.2f}" for c in classes),
    }


def publish_recipe(run: RecipeRun, write: bool = True) -> dict[str, str]:
    """Make ``run`` its recipe and overrides' current row of the table ``fer2013-recipes``; the row's cells."""
    cells = recipe_row(run)
    publish_row(RECIPES_MEASURE, cells["run"], cells, title=RECIPES_TITLE, write=write)
    return cells


def tiny_checkpoint(recipe: str | Path, runs: str | Path, data: str | Path = DATA) -> Path:
    """A checkpoint of a FER2013 recipe after one training batch (through the engine, like any fit): for speed
    measurements, where the weights do not matter but the model, its recipe and spec must be real."""
    result = fit(
        Path(recipe) if Path(recipe).is_file() else REPO / recipe,
        [
            f"data.root={fer2013_zip(data)}",
            f"run.dir={runs}",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0",
            "loggers.wandb=null",
            *QUIET,
        ],
    )
    found = result.last or result.best
    if found is None:
        raise SystemExit(f"{result.run_dir}: the one-batch fit saved no checkpoint")
    return Path(found)


def _recipe_tta(run_dir: Path) -> str | None:
    from omegaconf import OmegaConf

    views = OmegaConf.load(run_dir / "config.yaml").get("test", {}).get("tta")
    return None if views in (None, "none") else str(views)


# ----------------------------------------------------------------------------------------- a run's figures


def _checkpoint(path: Path) -> Mapping[str, Any]:
    from emoframe.checkpoints import read_checkpoint

    return read_checkpoint(path).payload


def _epoch(ckpt: Path) -> int:
    """The 1-based epoch a checkpoint was saved at (the best checkpoint's: the best epoch)."""
    return int(_checkpoint(ckpt)["epoch"]) + 1


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a fit's CSV log (``csv/version_*/metrics.csv``, the newest version): one per logged step/epoch."""
    files = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"))
    if not files:
        raise SystemExit(f"{run_dir}: no csv/version_*/metrics.csv (a fit with the csv logger writes one)")
    with files[-1].open() as f:
        return list(csv.DictReader(f))


def read_run(run: Path, need_timer: bool = True) -> dict[str, Any]:
    """The seed, fit time, epochs and test figures of one run folder (of ``fit_and_test`` or ``emoframe fit`` then
    ``emoframe test``): the seed from ``config.yaml``; the fit's wall time from Lightning's ``Timer`` (the clock
    ``trainer.max_time`` stops by, validation included; ``None`` if the run had no ``trainer.max_time`` and
    ``need_timer`` is false); the PrivateTest figures from ``test/csv`` and, with TTA, ``test/test_tta.csv``."""
    from omegaconf import OmegaConf

    seed = OmegaConf.load(run / "config.yaml").get("seed")
    last = _checkpoint(run / "checkpoints" / "last.ckpt")
    timer = next((v for k, v in last.get("callbacks", {}).items() if k.startswith("Timer")), None)
    if timer is None and need_timer:
        raise SystemExit(f"{run}/checkpoints/last.ckpt: no Timer state (expected a run with trainer.max_time)")
    metrics = sorted((run / "test" / "csv").glob("version_*/metrics.csv"))
    if not metrics:
        raise SystemExit(f"{run}/test/csv: no test metrics (run `emoframe test --ckpt {run}/checkpoints/best.ckpt`)")
    with metrics[-1].open() as f:  # a test that saved probabilities logs a validation row too
        plain = [r for r in csv.DictReader(f) if r.get("test/acc")][-1]
    row: dict[str, Any] = {
        "run": relative(run),
        "seed": seed,
        "fit_min": timer["time_elapsed"]["train"] / 60 if timer else None,
        "epochs": int(last["epoch"]) + 1,
        "best_epoch": _epoch(run / "checkpoints" / "best.ckpt"),
        "acc": float(plain["test/acc"]),
        "macro_f1": float(plain["test/macro_f1"]),
    }
    tta_file = run / "test" / "test_tta.csv"
    if tta_file.is_file():
        with tta_file.open() as f:
            tta = next(r for r in csv.DictReader(f) if r["tta"] != "none")
        row.update(tta_views=tta["tta"], tta_acc=float(tta["acc"]), tta_macro_f1=float(tta["macro_f1"]))
    return row


def run_summary(run: Path, metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
    """What a saved member's ``PREFIX.run.json`` keeps of its run: ``read_run``'s figures, JSON-ready; the test
    figures from ``metrics`` (an ``EvalResult``'s) where given."""
    row = read_run(run, need_timer=False)
    if metrics:
        row.update(acc=metrics["test/acc"], macro_f1=metrics["test/macro_f1"])
        if "test_tta/acc" in metrics:
            row.update(tta_acc=metrics["test_tta/acc"], tta_macro_f1=metrics["test_tta/macro_f1"])
    return {**row, "run": str(row["run"])}


def mean_sd(values: Sequence[float], scale: float = 100.0) -> str:
    """``mean ± sample sd`` of ``values`` x ``scale``, two decimals."""
    mean = statistics.fmean(values) * scale
    sd = statistics.stdev(values) * scale if len(values) > 1 else float("nan")
    return f"{mean:.2f} ± {sd:.2f}"


# ------------------------------------------------------------------------------------------------ publishing


def _block(kind: str, name: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- {kind}:{re.escape(name)} -->\n(.*?)\n<!-- /{kind}:{re.escape(name)} -->", re.S)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(text.rstrip() + "\n")


NOTES = "<!-- notes -->"  # the hand-written notes at the end of the page: new measures go before them
INDEX = re.compile(r"<!-- index -->\n.*?<!-- /index -->", re.S)


def _add_section(page: str, section: str) -> str:
    at = page.find(NOTES)
    if at < 0:
        return f"{page.rstrip()}\n\n{section}\n"
    return f"{page[:at].rstrip()}\n\n{section}\n\n{page[at:]}"


def index(page: str) -> str:
    """The page's table of measures: each one's title, when and on which CPU its current figures were measured."""
    lines = ["<!-- index -->", "| measure | measured | machine |", "|---|---|---|"]
    for found in re.finditer(r"<!-- bench:(\S+) -->\n(.*?)\n<!-- /bench:\1 -->", page, re.S):
        body = found.group(2)
        measured = re.findall(r"\*Measured:\* (\d{4}-\d\d-\d\d) on (.*?\)),", body)
        if measured:
            dates = sorted({d for d, _ in measured})
            machines = sorted({m for _, m in measured})
        else:  # a table of rows, each with its own date and machine
            cells = [
                _cells(x) for x in body.splitlines() if x.startswith("| ") and re.search(r"\| \d{4}-\d\d-\d\d, ", x)
            ]
            dates = sorted({c[-2].split(", ", 1)[0] for c in cells})
            machines = sorted({c[-2].split(", ", 1)[1] for c in cells})
        when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else "-"
        lines.append(f"| {_title(body, found.group(1))} | {when} | {'; '.join(machines) or '-'} |")
    lines.append("<!-- /index -->")
    return INDEX.sub(lambda _: "\n".join(lines), page) if INDEX.search(page) else page


def _provenance(cmd: str, when: str, where: str) -> str:
    return f"*Measured:* {when} on {where}  \n*Command:* `{cmd}`"


def _title(body: str, name: str) -> str:
    first = body.lstrip().splitlines()[0] if body.strip() else ""
    return first[3:].strip() if first.startswith("## ") else name


def _archive(history: str, name: str, title: str, entry: str) -> str:
    """``history`` with ``entry`` appended to measure ``name``'s block (made, at the end, if it has none)."""
    pattern = _block("history", name)
    found = pattern.search(history)
    if found is None:
        return (
            f"{history.rstrip()}\n\n<!-- history:{name} -->\n## {title}\n\n{entry.strip()}\n<!-- /history:{name} -->\n"
        )
    inner = f"{found.group(1).rstrip()}\n\n{entry.strip()}"
    return (
        history[: found.start()]
        + f"<!-- history:{name} -->\n{inner}\n<!-- /history:{name} -->"
        + history[found.end() :]
    )


def _as_history_entry(section: str, title: str) -> str:
    """A replaced section as a history entry: its heading becomes a sub-heading with its date."""
    date = re.search(r"\*(?:Measured|Date):\*\s*(\d{4}-\d\d-\d\d)", section)
    lines = section.strip().splitlines()
    if lines and lines[0].startswith("## "):
        lines = lines[1:]
    return f"### {title}, {date.group(1) if date else 'date not recorded'}\n" + "\n".join(lines)


def publish(name: str, body: str | Sequence[str], write: bool = True) -> str:
    """Print measure ``name``'s section (``body``, starting with its ``## title``) and, unless ``write`` is false
    (a dry or partial run), make it the measure's current section of docs/benchmarks.md, with the command, date and
    machine; the section it replaces goes to the end of the measure's part of docs/benchmarks_history.md."""
    text = (body if isinstance(body, str) else "\n".join(body)).rstrip()
    print(text)
    if not write:
        return text
    section = f"{text}\n\n{_provenance(command(), today(), str(machine()))}"
    page = DOC.read_text() if DOC.exists() else DOC_HEADER
    history = HISTORY.read_text() if HISTORY.exists() else HISTORY_HEADER
    pattern = _block("bench", name)
    found = pattern.search(page)
    new = f"<!-- bench:{name} -->\n{section}\n<!-- /bench:{name} -->"
    if found is None:
        page = _add_section(page, new)
    else:
        history = _archive(
            history, name, _title(found.group(1), name), _as_history_entry(found.group(1), _title(found.group(1), name))
        )
        page = page[: found.start()] + new + page[found.end() :]
    _write(HISTORY, history)  # history first: a crash between the two leaves a figure twice, never none
    _write(DOC, index(page))
    print(f"wrote section '{name}' of {relative(DOC)}")
    return text


ROW_TAIL = ("measured", "command")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def publish_row(
    name: str, key: str, cells: Mapping[str, str], *, title: str, intro: str = "", write: bool = True
) -> str:
    """Make ``key``'s row of measure ``name``'s table current: ``cells`` (column -> text, in order; ``key`` is the
    first column) plus the date and machine and the command. The row it replaces goes to the measure's table in
    docs/benchmarks_history.md; other keys' rows stay. A new measure gets ``title`` and ``intro``."""
    columns = [*cells, *ROW_TAIL]
    values = [*cells.values(), f"{today()}, {machine().short()}", f"`{command()}`"]
    if any("|" in v for v in values):
        raise ValueError(f"a table cell holds '|': {values}")
    line = "| " + " | ".join(values) + " |"
    print(line)
    if not write:
        return line
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "---|" * len(columns)
    page = DOC.read_text() if DOC.exists() else DOC_HEADER
    history = HISTORY.read_text() if HISTORY.exists() else HISTORY_HEADER
    pattern = _block("bench", name)
    found = pattern.search(page)
    if found is None:
        inner = "\n\n".join(x for x in (f"## {title}", intro.strip(), f"{header}\n{rule}\n{line}") if x)
        page = _add_section(page, f"<!-- bench:{name} -->\n{inner}\n<!-- /bench:{name} -->")
    else:
        lines = found.group(1).splitlines()
        at = next((i for i, x in enumerate(lines) if x.startswith("| ") and _cells(x)[0] == key), None)
        if at is None:  # a new key: after the table's last row
            at = max(i for i, x in enumerate(lines) if x.startswith("|")) + 1
            lines.insert(at, line)
        else:
            old, lines[at] = lines[at], line
            history = _archive_row(history, name, _title(found.group(1), name), lines, old)
        page = (
            page[: found.start()]
            + f"<!-- bench:{name} -->\n"
            + "\n".join(lines)
            + f"\n<!-- /bench:{name} -->"
            + page[found.end() :]
        )
    _write(HISTORY, history)
    _write(DOC, index(page))
    print(f"wrote row '{key}' of section '{name}' of {relative(DOC)}")
    return line


def _archive_row(history: str, name: str, title: str, current: list[str], old: str) -> str:
    """``old`` appended to the table of measure ``name`` in the history (with the current table's header)."""
    header = next(x for x in current if x.startswith("|"))
    rule = current[current.index(header) + 1]
    pattern = _block("history", name)
    found = pattern.search(history)
    if found is None:
        return _archive(history, name, title, f"{header}\n{rule}\n{old}")
    lines = found.group(1).splitlines()
    rows = [i for i, x in enumerate(lines) if x.startswith("|")]
    start = rows[-1] if rows else None
    while start is not None and start - 1 in rows:
        start -= 1  # the first line of the block's last table: its header
    if start is None or lines[start] != header:  # no table yet, or other columns: a new table
        lines += ["", header, rule, old]
    else:
        lines.insert(rows[-1] + 1, old)
    return (
        history[: found.start()]
        + f"<!-- history:{name} -->\n"
        + "\n".join(lines)
        + f"\n<!-- /history:{name} -->"
        + history[found.end() :]
    )


def ensemble_table(rows: list[dict]) -> list[str]:
    """The member / average / weighted rows of an ``emoframe ensemble`` run as a markdown table."""
    lines = ["| model | weight | val acc % | test acc % | test macro F1 % |", "|---|---|---|---|---|"]
    for r in rows:
        weight = "" if r["weight"] is None else f"{r['weight']:.3f}"
        best = " (best on val)" if r["kind"].startswith("best") else ""
        lines.append(
            f"| {r['model']}{best} | {weight} | {100 * r['val_acc']:.2f} | {100 * r['test_acc']:.2f} | "
            f"{100 * r['test_macro_f1']:.2f} |"
        )
    return lines
