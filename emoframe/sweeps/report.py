"""``emoframe sweep x.yaml --report``: the leaderboard (CSV, Markdown), the best trial's recipe, and plots.

A trial here is a *slot*: an interrupted attempt that was resumed or re-run is folded into the attempt that
finished it (its time added), so the leaderboard has one row per trial the sweep counts. Every file is written
to a temporary name beside it and moved into place, so two workers finishing together leave whole files.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import yaml

from emoframe.files.atomic import atomic_write
from emoframe.sweeps.schema import Sweep
from emoframe.sweeps.space import override

ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAIL": 3}


def _retried(trials: list[Any]) -> set[int]:
    """Numbers of failed attempts that a retry took over (Optuna's ``retry_history``)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def accounting(study: Any) -> dict[str, int]:
    """Counted trials by state; ``RETRIED`` are interrupted attempts folded into their retries (never counted)."""
    trials = study.get_trials(deepcopy=False)
    retried = _retried(trials)
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0, "RETRIED": 0}
    for t in trials:
        key = "RETRIED" if t.number in retried else t.state.name
        counts[key] = counts.get(key, 0) + 1
    return counts


def _seconds(t: Any) -> float | None:
    if t.datetime_start is None:
        return None
    end = t.datetime_complete
    return (end - t.datetime_start).total_seconds() if end is not None else None


def rows(sweep: Sweep, study: Any) -> list[dict[str, Any]]:
    """One row per counted trial, best first: slot, state, metric, best epoch, epochs, time, values, run dir."""
    trials = study.get_trials(deepcopy=False)
    retried = _retried(trials)
    by_number = {t.number: t for t in trials}
    goal = sweep.goal
    out = []
    for t in trials:
        if t.number in retried or t.state.name in ("WAITING",):
            continue
        values = dict(t.user_attrs.get("params") or {})
        finite = {e: v for e, v in t.intermediate_values.items() if v == v and not math.isinf(v)}
        value = t.value if t.state.name == "COMPLETE" else None
        if value is None and finite:
            value = (max if goal == "maximize" else min)(finite.values())
        attempts = [by_number[n] for n in t.system_attrs.get("retry_history", []) if n in by_number] + [t]
        times = [s for s in (_seconds(a) for a in attempts) if s is not None]
        out.append(
            {
                "slot": int(t.user_attrs.get("slot", t.number)),
                "trial": t.number,
                "state": t.state.name,
                sweep.metric["name"]: value,  # type: ignore[index]
                "best_epoch": t.user_attrs.get("best_epoch"),
                "epochs": len(t.intermediate_values),
                "seconds": round(sum(times), 1) if times else None,
                "attempts": len(attempts),
                **values,
                "run_dir": t.user_attrs.get("run_dir", ""),
                "error": t.user_attrs.get("error", ""),
            }
        )
    metric = sweep.metric["name"]  # type: ignore[index]
    sign = -1.0 if goal == "maximize" else 1.0

    def key(r: dict[str, Any]) -> tuple[int, float, int]:
        v = r[metric]
        return (ORDER.get(r["state"], 4), sign * v if v is not None else math.inf, r["slot"])

    return sorted(out, key=key)


def _write(path: Path, text: str | bytes) -> None:
    with atomic_write(path, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return ""
    return str(v).replace("|", "\\|")


def write_report(sweep: Sweep, study: Any, folder: Path) -> dict[str, Path]:
    """leaderboard.csv / .md, best_recipe.yaml and the PNG plots in ``<folder>/report``; their paths."""
    out_dir = folder / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    table = rows(sweep, study)
    names = [p.name for p in sweep.parameters if not p.constant]  # constants are in the best recipe
    metric = sweep.metric["name"]  # type: ignore[index]
    columns = ["slot", "trial", "state", metric, "best_epoch", "epochs", "seconds", "attempts", *names, "run_dir"]
    columns.append("error")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in table:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    paths = {"csv": out_dir / "leaderboard.csv", "markdown": out_dir / "leaderboard.md"}
    _write(paths["csv"], buf.getvalue())
    counts = accounting(study)
    lines = [
        f"# Sweep {sweep.name}",
        "",
        f"{sweep.method} search on {metric} ({sweep.goal}); trials: {counts['COMPLETE']} complete, "
        f"{counts['PRUNED']} pruned, {counts['FAIL']} failed, {counts['RUNNING']} running, {counts['WAITING']} "
        f"waiting; {counts['RETRIED']} interrupted attempts resumed or re-run.",
        "",
        "| " + " | ".join(columns[:-1]) + " |",
        "|" + "---|" * (len(columns) - 1),
    ]
    lines += ["| " + " | ".join(_cell(r.get(k)) for k in columns[:-1]) + " |" for r in table]
    errors = [f"- slot {r['slot']:04d}: {r['error']}" for r in table if r.get("error")]
    if errors:
        lines += ["", "Errors:", *errors]
    best = next((r for r in table if r["state"] == "COMPLETE"), None)
    if best is not None:
        recipe = best_recipe(sweep, best, out_dir)
        if recipe is not None:
            paths["best_recipe"] = recipe
            lines += ["", f"Best: slot {best['slot']:04d}; train it again with `emoframe fit {recipe}`."]
    _write(paths["markdown"], "\n".join(lines) + "\n")
    paths.update(plots(sweep, study, table, out_dir))
    return paths


def best_recipe(sweep: Sweep, best: dict[str, Any], out_dir: Path) -> Path | None:
    """The best trial's resolved recipe (its run's config.yaml), with a run: section of its own."""
    config = Path(best["run_dir"]) / "config.yaml"
    if not config.is_file():
        return None
    cfg = yaml.safe_load(config.read_text()) or {}
    cfg["run"] = {"name": f"{sweep.name}-best"}
    values = " ".join(override(p.name, best.get(p.name)) for p in sweep.parameters if not p.constant)
    header = (
        f"# Best trial of sweep {sweep.name} (slot {best['slot']:04d}, {sweep.metric['name']}="  # type: ignore[index]
        f"{best[sweep.metric['name']]:.4f} at epoch {best['best_epoch']}), from {config}\n"  # type: ignore[index]
        f"# Sampled: {values}\n"
    )
    path = out_dir / "best_recipe.yaml"
    _write(path, header + yaml.safe_dump(cfg, sort_keys=False))
    return path


def plots(sweep: Sweep, study: Any, table: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """metric per trial, parallel coordinates (the values trained with), parameter importance (fANOVA)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = sweep.metric["name"]  # type: ignore[index]
    scored = sorted((r for r in table if r[metric] is not None), key=lambda r: r["trial"])
    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x"), ("FAIL", "s"), ("RUNNING", ".")):
        pts = [(r["trial"], r[metric]) for r in scored if r["state"] == state]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, label=state.lower())
    done = [r for r in scored if r["state"] == "COMPLETE"]
    if done:
        pick = max if sweep.goal == "maximize" else min
        best, xs, ys = None, [], []
        for r in done:
            best = r[metric] if best is None else pick(best, r[metric])
            xs.append(r["trial"])
            ys.append(best)
        ax.step(xs, ys, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{sweep.name}: {metric} per trial")
    ax.legend(fontsize=8)
    paths["metric_per_trial"] = _save(fig, out_dir / "metric_per_trial.png")
    swept = [p for p in sweep.parameters if not p.constant]
    if swept and scored:
        paths["parallel_coordinates"] = _save(
            _parallel(plt, swept, scored, metric), out_dir / "parallel_coordinates.png"
        )
    fig = _importance(plt, study)
    if fig is not None:
        paths["importance"] = _save(fig, out_dir / "importance.png")
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    _write(path, buf.getvalue())
    return path


def _axis(p: Any, values: list[Any]) -> tuple[list[float], list[str]]:
    """Values on [0, 1] (log scale for log distributions, positions for categories) and two tick labels."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        log = "log" in p.distribution and all(v > 0 for v in values)
        xs = [math.log(v) if log else float(v) for v in values]
        lo, hi = min(xs), max(xs)
        span = hi - lo or 1.0
        return [(x - lo) / span for x in xs], [f"{min(values):.3g}", f"{max(values):.3g}"]
    labels = sorted({repr(v) for v in values})
    index = {label: i for i, label in enumerate(labels)}
    n = max(len(labels) - 1, 1)
    return [index[repr(v)] / n for v in values], [labels[0][:12], labels[-1][:12]]


def _parallel(plt: Any, params: list[Any], scored: list[dict[str, Any]], metric: str) -> Any:
    fig, ax = plt.subplots(figsize=(1.8 * (len(params) + 1) + 1, 3.5))
    columns, ticks = [], []
    for p in params:
        col, tick = _axis(p, [r.get(p.name) for r in scored])
        columns.append(col)
        ticks.append(tick)
    col, tick = _axis(type("M", (), {"distribution": "uniform"})(), [r[metric] for r in scored])
    columns.append(col)
    ticks.append(tick)
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(scored):
        ys = [c[i] for c in columns]
        ax.plot(
            range(len(columns)), ys, color=cmap(col[i]), alpha=0.8, linestyle="-" if r["state"] == "COMPLETE" else ":"
        )
    names = [p.name for p in params] + [metric]
    ax.set_xticks(range(len(columns)), [f"{n}\n{t[0]} .. {t[1]}" for n, t in zip(names, ticks)], fontsize=7)
    ax.set_yticks([])
    ax.set_title("parallel coordinates (colour: metric; dotted: pruned)")
    return fig


def _importance(plt: Any, study: Any) -> Any:
    """fANOVA importances (Optuna's evaluator) once two finished trials differ; else no plot."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return None
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        return None
    if not importances:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(importances) + 1.5))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (fANOVA, share of the metric's variance)")
    ax.set_title(f"parameter importance ({len(complete)} finished trials)")
    return fig
