"""The sweep file: a W&B sweep configuration, read with PyYAML and checked key by key.

The keys, distributions and bounds follow W&B's sweep schema (``config/schema.json`` of wandb/sweeps, the
server's validator); wandb 0.31 ships no copy of it, so the checks are written out here. Every mistake ends in
ONE line naming the file, the key path and, for a misspelt name, the closest known one.

The same file is handed to ``wandb.sweep`` unchanged (online), so nothing emoframe-specific is added to the
format: the recipe to train is the ``program`` (or a ``.yaml`` in ``command``), the trial command is ``command``
with W&B's macros, and ``${args_no_hyphens}`` passes the sampled values as ``key=value`` recipe overrides.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoframe.config import RECIPE_SUFFIXES as RECIPE_SUFFIXES
from emoframe.errors import RecipeError

TOP_LEVEL_KEYS = (
    "apiVersion",
    "kind",
    "controller",
    "description",
    "program",
    "job",
    "image_uri",
    "entity",
    "project",
    "method",
    "command",
    "name",
    "run_cap",
    "metric",
    "metrics",
    "scheduler",
    "early_terminate",
    "parameters",
)
METHODS = ("grid", "random", "bayes", "custom")
METRIC_KEYS = ("name", "goal", "target", "impute", "impute_while_running")
GOALS = ("minimize", "maximize")
HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")
PARAMETER_KEYS = ("value", "values", "distribution", "min", "max", "mu", "sigma", "q", "probabilities", "a", "b")

# distribution -> (required keys, optional keys), as W&B's schema.json (``distribution`` itself is always allowed)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "constant": (("value",), ()),
    "categorical": (("values",), ()),
    "categorical_w_probabilities": (("values", "probabilities"), ()),
    "int_uniform": (("min", "max"), ()),
    "uniform": (("min", "max"), ()),
    "q_uniform": (("min", "max"), ("q",)),
    "log_uniform": (("min", "max"), ()),
    "log_uniform_values": (("min", "max"), ()),
    "inv_log_uniform": (("min", "max"), ()),
    "inv_log_uniform_values": (("min", "max"), ()),
    "q_log_uniform": (("min", "max"), ("q",)),
    "q_log_uniform_values": (("min", "max"), ("q",)),
    "normal": ((), ("mu", "sigma")),
    "q_normal": ((), ("mu", "sigma", "q")),
    "log_normal": ((), ("mu", "sigma")),
    "q_log_normal": ((), ("mu", "sigma", "q")),
    "beta": ((), ("a", "b")),
    "q_beta": ((), ("a", "b", "q")),
}
DEFAULTS = {"mu": 0.0, "sigma": 1.0, "q": 1.0, "a": 1.0, "b": 1.0}
POSITIVE_MIN = ("log_uniform_values", "inv_log_uniform_values", "q_log_uniform_values")

MACROS = (
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_hyphens",
    "args_no_equals",
    "args_no_boolean_flags",
    "args_json",
    "args_json_file",
    "args_append_hydra",
    "args_override_hydra",
)
OVERRIDE_MACROS = ("args_no_hyphens", "args_append_hydra", "args_override_hydra")
"""Macros that expand to ``key=value`` (``+key=value``, ``++key=value``): the forms ``emoframe fit`` takes."""
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")
DEFAULT_COMMAND = ("${env}", "${interpreter}", "-m", "emoframe", "fit", "${program}", "${args_no_hyphens}")


@dataclass(frozen=True)
class Parameter:
    """One swept (or constant) recipe key: its dotted name, W&B distribution and the numbers that define it."""

    name: str
    distribution: str
    spec: dict[str, Any]

    @property
    def constant(self) -> bool:
        return self.distribution == "constant"

    def get(self, key: str) -> Any:
        return self.spec.get(key, DEFAULTS.get(key))


@dataclass
class Sweep:
    """A checked sweep file. ``raw`` is the mapping as read (what ``wandb.sweep`` gets)."""

    path: Path
    raw: dict[str, Any]
    name: str
    method: str
    parameters: list[Parameter]
    command: list[str]
    program: str | None = None
    metric: dict[str, Any] | None = None
    early_terminate: dict[str, Any] | None = None
    run_cap: int | None = None
    project: str | None = None
    entity: str | None = None
    recipe: Path | None = field(default=None)

    @property
    def goal(self) -> str:
        return str((self.metric or {}).get("goal", "minimize"))

    def fingerprint(self) -> str:
        """What must not change between the workers of one sweep: method, metric, parameters, cap, hyperband."""
        keys = ("method", "metric", "parameters", "run_cap", "early_terminate")
        text = json.dumps({k: self.raw.get(k) for k in keys}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _close(word: str, known: tuple[str, ...] | list[str]) -> str:
    match = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> RecipeError:
        return RecipeError(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")

    def keys(self, mapping: dict[str, Any], known: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in known:
                at = f"{where}.{key}" if where else str(key)
                raise self.fail(at, f"unknown key.{_close(key, known)} Known: {', '.join(known)}")

    def choice(self, value: Any, known: tuple[str, ...], where: str) -> str:
        if value not in known:
            raise self.fail(
                where, f"unknown value {value!r}.{_close(str(value), known)} Expected one of: {', '.join(known)}"
            )
        return str(value)

    def mapping(self, value: Any, where: str, example: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping like {example}, got {value!r}")
        return value

    def number(self, value: Any, where: str, integer: bool = False) -> float:
        if isinstance(value, str) and FLOAT_TEXT.match(value):
            raise self.fail(
                where, f"{value!r} is a string to YAML 1.1 (W&B reads it so too): write it with a dot, e.g. 1.0e-4"
            )
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not _finite(value):
            got = f"{value!r}" if len(repr(value)) < 40 else f"{type(value).__name__} {repr(value)[:20]}..."
            raise self.fail(where, f"expected {'an integer' if integer else 'a number'}, got {got}")
        return value


def _finite(value: float) -> bool:
    """Finite as a float: an integer too large for one (``1e400`` written out) is not."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a W&B sweep file; any mistake raises one ``RecipeError`` line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"Sweep file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise RecipeError(f"{path}{where}: not valid YAML: {getattr(err, 'problem', None) or err}") from None
    return parse_sweep(raw, path)


def parse_sweep(raw: Any, path: str | Path = "<sweep>") -> Sweep:
    """Check a sweep configuration (a mapping, as ``wandb.sweep`` takes it)."""
    path = Path(path)
    c = _Checker(path)
    if not isinstance(raw, dict):
        raise c.fail("", "a sweep file must be a mapping with method:, metric:, parameters: ...")
    c.keys(raw, TOP_LEVEL_KEYS, "")
    if "method" not in raw:
        raise c.fail("method", "missing: grid, random or bayes")
    method = c.choice(raw["method"], METHODS, "method")
    metric = _metric(c, raw.get("metric"))
    early = _early_terminate(c, raw.get("early_terminate"))
    if raw.get("run_cap") is not None:
        cap = c.number(raw["run_cap"], "run_cap", integer=True)
        if cap < 1:
            raise c.fail("run_cap", f"expected a positive integer, got {cap}")
    if method == "bayes" and metric is None:
        raise c.fail("metric", "method bayes needs a metric: {name: val/acc, goal: maximize}")
    if early is not None and metric is None:
        raise c.fail("metric", "early_terminate (hyperband) needs a metric: {name: val/loss, goal: minimize}")
    if "parameters" not in raw:
        raise c.fail("parameters", "missing: the recipe keys to sweep, e.g. optimizer.lr: {values: [0.01, 0.1]}")
    parameters = _parameters(c, raw["parameters"], "parameters", "")
    if method == "grid":
        for p in parameters:
            if p.distribution not in ("constant", "categorical", "int_uniform", "q_uniform"):
                raise c.fail(
                    f"parameters.{p.name}",
                    f"method grid takes value:, values:, int_uniform or q_uniform, not {p.distribution}",
                )
    command = raw.get("command")
    if command is not None:
        if not isinstance(command, list) or not command or not all(isinstance(x, (str, int, float)) for x in command):
            raise c.fail("command", f"expected a list of strings like {list(DEFAULT_COMMAND)}, got {command!r}")
        for i, chunk in enumerate(command):
            for macro in re.findall(r"\$\{([^}]*)\}", str(chunk)):
                if not macro.startswith("envvar:"):
                    c.choice(macro, MACROS, f"command[{i}]: ${{{macro}}}")
    for key in ("program", "name", "project", "entity", "description"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise c.fail(key, f"expected a string, got {raw[key]!r}")
    name = str(raw.get("name") or path.stem)
    return Sweep(
        path=path,
        raw=raw,
        name=name,
        method=method,
        parameters=parameters,
        command=[str(x) for x in command] if command else [],
        program=raw.get("program"),
        metric=metric,
        early_terminate=early,
        run_cap=raw.get("run_cap"),
        project=raw.get("project"),
        entity=raw.get("entity"),
    )


def _metric(c: _Checker, metric: Any) -> dict[str, Any] | None:
    if metric is None:
        return None
    metric = c.mapping(metric, "metric", "{name: val/acc, goal: maximize}")
    c.keys(metric, METRIC_KEYS, "metric")
    if not isinstance(metric.get("name"), str) or not metric["name"]:
        raise c.fail("metric.name", "missing: the logged metric to optimise, e.g. val/acc")
    if "goal" in metric:
        c.choice(metric["goal"], GOALS, "metric.goal")
    if metric.get("target") is not None:
        c.number(metric["target"], "metric.target")
    if "impute" in metric:
        c.choice(metric["impute"], ("latest", "best", "worst"), "metric.impute")
    if "impute_while_running" in metric:
        c.choice(
            str(metric["impute_while_running"]).lower(),
            ("latest", "best", "worst", "false"),
            "metric.impute_while_running",
        )
    return metric


def _early_terminate(c: _Checker, early: Any) -> dict[str, Any] | None:
    if early is None:
        return None
    early = c.mapping(early, "early_terminate", "{type: hyperband, min_iter: 3, eta: 3}")
    c.keys(early, HYPERBAND_KEYS, "early_terminate")
    if "type" not in early:
        raise c.fail("early_terminate.type", "missing: hyperband")
    c.choice(early["type"], ("hyperband",), "early_terminate.type")
    if "min_iter" in early:
        if c.number(early["min_iter"], "early_terminate.min_iter", integer=True) < 1:
            raise c.fail("early_terminate.min_iter", "expected an integer of at least 1")
    elif "max_iter" in early and "s" in early:
        c.number(early["max_iter"], "early_terminate.max_iter", integer=True)
        c.number(early["s"], "early_terminate.s")
    else:
        raise c.fail("early_terminate", "hyperband needs min_iter, or max_iter and s")
    if "eta" in early and c.number(early["eta"], "early_terminate.eta") <= 1:
        raise c.fail("early_terminate.eta", f"expected a number above 1, got {early['eta']}")
    if "strict" in early and not isinstance(early["strict"], bool):
        raise c.fail("early_terminate.strict", f"expected true or false, got {early['strict']!r}")
    return early


def _parameters(c: _Checker, params: Any, where: str, prefix: str) -> list[Parameter]:
    params = c.mapping(params, where, "{optimizer.lr: {min: 0.001, max: 0.1}}")
    if not params:
        raise c.fail(where, "no parameters: give at least one recipe key to sweep")
    out: list[Parameter] = []
    for name, spec in params.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not PARAMETER_NAME.match(name):
            raise c.fail(at, "a parameter name is letters, digits, '_', '.' or '-', starting with a letter or '_'")
        spec = c.mapping(spec, at, "{values: [0.01, 0.1]} or {min: 0.001, max: 0.1}")
        if "parameters" in spec:  # nested parameters: optimizer: {parameters: {lr: ...}} is optimizer.lr
            extra = sorted(set(spec) - {"parameters"})
            if extra:
                raise c.fail(f"{at}.{extra[0]}", "a parameter with nested parameters: takes no other key")
            out += _parameters(c, spec["parameters"], f"{at}.parameters", f"{prefix}{name}.")
            continue
        c.keys(spec, (*PARAMETER_KEYS, "parameters"), at)
        out.append(_parameter(c, f"{prefix}{name}", spec, at))
    return out


def _infer_distribution(c: _Checker, spec: dict[str, Any], at: str) -> str:
    """W&B's defaults: value -> constant, values -> categorical, int min/max -> int_uniform, else uniform."""
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "min" in spec and "max" in spec:
        ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
        return "int_uniform" if ints else "uniform"
    raise c.fail(at, "expected value:, values:, min: and max:, or a distribution: (normal takes mu: and sigma:)")


def _parameter(c: _Checker, name: str, spec: dict[str, Any], at: str) -> Parameter:
    if "distribution" in spec:
        dist = c.choice(spec["distribution"], tuple(DISTRIBUTIONS), f"{at}.distribution")
    else:
        dist = _infer_distribution(c, spec, at)
    required, optional = DISTRIBUTIONS[dist]
    allowed = (*required, *optional, "distribution")
    for key in spec:
        if key not in allowed:
            raise c.fail(f"{at}.{key}", f"distribution {dist} takes {', '.join(required + optional)}")
    for key in required:
        if key not in spec:
            raise c.fail(f"{at}.{key}", f"missing: distribution {dist} needs {', '.join(required)}")
    if "values" in spec and (not isinstance(spec["values"], list) or not spec["values"]):
        raise c.fail(f"{at}.values", f"expected a non-empty list, got {spec['values']!r}")
    for key in ("min", "max", "mu", "sigma", "q", "a", "b"):
        if key in spec:
            c.number(spec[key], f"{at}.{key}", integer=dist == "int_uniform")
    if "min" in spec and spec["min"] > spec["max"]:
        raise c.fail(at, f"min {spec['min']} is above max {spec['max']}")
    if dist in POSITIVE_MIN and spec["min"] <= 0:
        raise c.fail(f"{at}.min", f"distribution {dist} takes values, so min must be above 0 (got {spec['min']})")
    if "sigma" in spec and spec["sigma"] < 0:
        raise c.fail(f"{at}.sigma", f"expected a number of at least 0, got {spec['sigma']}")
    for key in ("a", "b"):  # a beta distribution's shapes: Beta(0, b) has no values (NaN)
        if key in spec and spec[key] <= 0:
            raise c.fail(f"{at}.{key}", f"expected a number above 0, got {spec[key]}")
    if "q" in spec and spec["q"] <= 0:
        raise c.fail(f"{at}.q", f"expected a number above 0, got {spec['q']}")
    if "probabilities" in spec:
        probs = spec["probabilities"]
        if not isinstance(probs, list) or len(probs) != len(spec["values"]):
            raise c.fail(f"{at}.probabilities", f"expected one probability per value ({len(spec['values'])})")
        for i, p in enumerate(probs):
            if c.number(p, f"{at}.probabilities[{i}]") < 0:
                raise c.fail(f"{at}.probabilities[{i}]", f"expected a number of at least 0, got {p}")
        if abs(sum(probs) - 1.0) > 1e-6:
            raise c.fail(f"{at}.probabilities", f"the probabilities sum to {sum(probs):g}, not 1")
    parameter = Parameter(name=name, distribution=dist, spec=dict(spec))
    _check_extremes(c, parameter, at)
    return parameter


def _check_extremes(c: _Checker, p: Parameter, at: str) -> None:
    """The values drawn must be floats: ``log_uniform`` up to ``exp(1000)`` or a log-normal with ``mu: 1000``
    overflow, and a log scale needs a lowest value above 0 (``exp(-800)`` is 0.0)."""
    from emoframe.sweeps.space import extremes  # space builds on this module

    numbers = ", ".join(f"{k} {p.spec[k]}" for k in ("min", "max", "mu", "sigma", "a", "b", "q") if k in p.spec)
    what = f"distribution {p.distribution}" + (f" with {numbers}" if numbers else "")
    exponents = " (min and max are exponents: X = exp(U(min, max)); log_uniform_values takes the values)"
    hint = exponents if p.distribution in ("log_uniform", "inv_log_uniform", "q_log_uniform") else ""
    try:
        values = extremes(p)
    except (OverflowError, ValueError, ZeroDivisionError):
        values = (math.inf, math.inf)
    if values is None:
        return
    if not all(math.isfinite(v) for v in values):
        raise c.fail(at, f"{what} draws values beyond a float's range{hint}")
    if hint and math.exp(-p.spec["max"] if p.distribution == "inv_log_uniform" else p.spec["min"]) <= 0:
        raise c.fail(at, f"{what} draws values down to 0, not on a log scale{hint}")
