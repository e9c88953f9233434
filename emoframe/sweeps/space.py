"""W&B parameters as Optuna suggestions, grid points, and values written as ``key=value`` recipe overrides.

Distributions Optuna has (uniform, int, log-uniform, categorical, stepped) are suggested directly, so TPE models
them as they are. The others are sampled through their inverse CDF from a uniform coordinate in (0, 1), which
Optuna searches instead (normal, log-normal, beta, weighted categorical, quantised log-uniform): the values a
trial trains with are kept in its ``params`` user attribute, and those are what the leaderboard shows.
"""

from __future__ import annotations

import itertools
import json
import math
from statistics import NormalDist
from typing import Any

import yaml

from emoframe.sweeps.schema import Parameter

SCALARS = (str, int, float, bool, type(None))
EPS = 1e-9  # the uniform coordinate stays inside (0, 1), where every inverse CDF is finite


def encode(value: Any) -> Any:
    """An Optuna categorical choice: scalars as they are, lists and mappings as JSON text."""
    return value if isinstance(value, SCALARS) else json.dumps(value, sort_keys=True)


def decode(choice: Any, values: list[Any]) -> Any:
    for v in values:
        if encode(v) == choice:
            return v
    return choice


def _quantise(x: float, q: float) -> float:
    """W&B's ``round(x / q) * q``; integers stay integers when q is."""
    out = round(x / q) * q
    return round(out) if float(q).is_integer() else out


def suggest(trial: Any, p: Parameter) -> Any:
    """The value of ``p`` for an Optuna trial (fixed or enqueued values come back as they were)."""
    d, s = p.distribution, p.get
    if d == "constant":
        return s("value")
    if d == "categorical":
        values = s("values")
        return decode(trial.suggest_categorical(p.name, [encode(v) for v in values]), values)
    if d == "int_uniform":
        return trial.suggest_int(p.name, int(s("min")), int(s("max")))
    if d == "uniform":
        return trial.suggest_float(p.name, float(s("min")), float(s("max")))
    if d == "q_uniform":
        return _quantise(trial.suggest_float(p.name, float(s("min")), float(s("max"))), float(s("q")))
    if d in ("log_uniform_values", "inv_log_uniform_values"):  # 1/X log-uniform on [1/max, 1/min] is X log-uniform
        return trial.suggest_float(p.name, float(s("min")), float(s("max")), log=True)
    if d == "log_uniform":  # X = exp(U(min, max))
        return trial.suggest_float(p.name, math.exp(s("min")), math.exp(s("max")), log=True)
    if d == "inv_log_uniform":  # X = exp(-U(min, max))
        return trial.suggest_float(p.name, math.exp(-s("max")), math.exp(-s("min")), log=True)
    if d == "q_log_uniform_values":
        return _quantise(trial.suggest_float(p.name, float(s("min")), float(s("max")), log=True), float(s("q")))
    if d == "q_log_uniform":
        return _quantise(trial.suggest_float(p.name, math.exp(s("min")), math.exp(s("max")), log=True), float(s("q")))
    u = trial.suggest_float(p.name, EPS, 1.0 - EPS)  # the rest: through the inverse CDF
    return from_unit(p, u)


def from_unit(p: Parameter, u: float) -> Any:
    """The value at quantile ``u`` of a normal, log-normal, beta or weighted categorical parameter."""
    d, s = p.distribution, p.get
    if d == "categorical_w_probabilities":
        total = 0.0
        for value, prob in zip(s("values"), s("probabilities")):
            total += prob
            if u < total:
                return value
        return s("values")[-1]
    if d.endswith("beta"):
        from scipy.stats import beta  # scipy: already a dependency (valence/arousal post-processing)

        x = float(beta.ppf(u, s("a"), s("b")))
    else:
        x = NormalDist(s("mu"), s("sigma")).inv_cdf(u) if s("sigma") > 0 else float(s("mu"))
        if "log_normal" in d:
            x = math.exp(x)
    return _quantise(x, float(s("q"))) if d.startswith("q_") else x


def ends(p: Parameter) -> tuple[Any, Any]:
    """The lowest and highest value a parameter can take (its first and last for lists; the median of a
    distribution without bounds), so the recipe can be checked at both ends of the range before any trial."""
    d, s = p.distribution, p.get
    if d == "constant":
        return s("value"), s("value")
    if d.startswith("categorical"):
        return s("values")[0], s("values")[-1]
    if d == "int_uniform":
        return int(s("min")), int(s("max"))
    if d in ("uniform", "q_uniform", "log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"):
        return float(s("min")), float(s("max"))
    if d in ("log_uniform", "q_log_uniform"):
        return math.exp(s("min")), math.exp(s("max"))
    if d == "inv_log_uniform":
        return math.exp(-s("max")), math.exp(-s("min"))
    middle = from_unit(p, 0.5)
    return middle, middle


def extremes(p: Parameter) -> tuple[float, float] | None:
    """The lowest and highest value a numeric parameter draws (its bounds, or its quantiles ``EPS`` and
    ``1 - EPS``, quantised); None for ``value:`` and ``values:``. Raises OverflowError or ValueError, or gives a
    non-finite number, when the distribution reaches beyond a float (``log_uniform`` up to ``exp(1000)``)."""
    d, s = p.distribution, p.get
    if d == "constant" or d.startswith("categorical"):
        return None
    if d in ("log_uniform", "q_log_uniform"):
        low, high = math.exp(s("min")), math.exp(s("max"))
    elif d == "inv_log_uniform":
        low, high = math.exp(-s("max")), math.exp(-s("min"))
    elif "min" in p.spec:
        low, high = float(s("min")), float(s("max"))
    else:
        return from_unit(p, EPS), from_unit(p, 1.0 - EPS)
    if d.startswith("q_"):
        low, high = _quantise(low, float(s("q"))), _quantise(high, float(s("q")))
    return low, high


def axis_size(p: Parameter) -> float:
    """How many values a grid takes for ``p`` (``math.inf`` when it cannot be counted), without listing them."""
    s = p.get
    if p.distribution == "constant":
        return 1
    if p.distribution == "categorical":
        return len(s("values"))
    if p.distribution == "int_uniform":
        return int(s("max")) - int(s("min")) + 1
    try:  # q_uniform
        return math.floor((s("max") - s("min")) / s("q") + 1e-9) + 1
    except (OverflowError, ValueError):
        return math.inf


def grid_size(parameters: list[Parameter]) -> float:
    """The number of grid points (``grid_points``'s length), computed from the axes' sizes."""
    return math.prod(axis_size(p) for p in parameters)


def grid_points(parameters: list[Parameter]) -> list[dict[str, Any]]:
    """Every combination, first parameter slowest (W&B's order), as Optuna params (categoricals encoded)."""
    axes: list[list[Any]] = []
    for p in parameters:
        s = p.get
        if p.distribution == "constant":
            axes.append([None])
        elif p.distribution == "categorical":
            axes.append([encode(v) for v in s("values")])
        elif p.distribution == "int_uniform":
            axes.append(list(range(int(s("min")), int(s("max")) + 1)))
        else:  # q_uniform
            n = math.floor((s("max") - s("min")) / s("q") + 1e-9)
            axes.append([s("min") + i * s("q") for i in range(n + 1)])
    names = [p.name for p in parameters]
    return [{n: v for n, v, p in zip(names, combo, parameters) if not p.constant} for combo in itertools.product(*axes)]


def override(name: str, value: Any) -> str:
    """``name=value`` as ``emoframe fit`` reads it (YAML): strings quoted only when YAML would read them otherwise."""
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value and "\n" not in value
        except yaml.YAMLError:
            plain = False
        text = value if plain else json.dumps(value)
    elif isinstance(value, float):
        text = repr(value) if math.isfinite(value) else {"inf": ".inf", "-inf": "-.inf"}.get(repr(value), ".nan")
    else:
        text = json.dumps(value)  # null, true, 3, [..], {..}: JSON is YAML
    return f"{name}={text}"
