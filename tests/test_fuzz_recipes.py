"""A recipe fuzzer: mutations of the shipped recipes through ``emoframe config``.

Each example takes one shipped recipe (resolved, with its data root pointing at the test data), applies one
mutation (a typo in a key, a deleted key, a value of another type, a negative, zero, huge or non-finite number,
an unknown key, a near-miss component name) and runs it as ``emoframe config FILE`` does (``cli.main``
in-process: the builder's ``check``, or the SVM plan for SVM recipes). Every outcome must be a valid recipe
(exit 0) or one clean error line (exit 2); anything else (a traceback) fails the test, with hypothesis's
shrunk mutation. Seeded (``derandomize``) and bounded, so it takes about a minute; the counts are printed.

The shipped sweep files (``sweeps/*.yaml``) are fuzzed the same way: one to three mutations of their
keys, values and parameter ranges (a typo, a deleted or unknown key, a value of another type, a negative, huge or
non-finite number, min above max, an empty ``values:``, another distribution, a swept key the recipe lacks, another
method) through ``emoframe sweep FILE --local`` in-process. Everything a worker does before its first trial runs
for real (the schema, the recipe at both ends of every range, the storage, the study and its slots, the claim and
the trial's sampled values); the trial itself is replaced by a stop, so nothing trains.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from emoframe.cli import main
from emoframe.config import load_recipe, load_svm_recipe, save_recipe
from emoframe.sweeps.schema import DISTRIBUTIONS, METHODS

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("EMOFRAME_FUZZ_EXAMPLES", "240"))
COLLECT = bool(os.environ.get("EMOFRAME_FUZZ_COLLECT"))  # list every crash instead of stopping at the first
KINDS = ("key_typo", "delete", "type_change", "number", "unknown_key", "name_typo")
NUMBERS = (-1, 0, -1e12, 1e12, 10**12, -(10**12), 0.5, float("nan"), float("inf"), 2**63)
OTHER_VALUES = ("x", "", [1, "a"], {"a": 1}, None, True, 3, 2.5, [])


def leaves(tree: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every value (mappings' keys and lists' indices), the containers included."""
    out = [path] if path else []
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += leaves(value, (*path, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += leaves(value, (*path, i))
    return out


def parent_of(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        tree = tree[key]
    return tree


def typo(text: str, pick: int) -> str:
    """One edit of ``text``: drop, double or swap a character, or change its case."""
    if not text:
        return "x"
    i = pick % len(text)
    edits = [
        text[:i] + text[i + 1 :],
        text[:i] + text[i] + text[i:],
        text[:i] + text[i + 1 : i + 2] + text[i : i + 1] + text[i + 2 :],
        text.upper() if text != text.upper() else text.lower(),
    ]
    out = edits[(pick // len(text)) % len(edits)]
    return out if out != text else text + "x"


def mutate(cfg: dict[str, Any], kind: str, where: int, pick: int) -> tuple[dict[str, Any], str]:
    """``cfg`` with one mutation, and a description of it (shown when an example fails)."""
    cfg = copy.deepcopy(cfg)
    paths = leaves(cfg)
    if kind == "name_typo":
        paths = [p for p in paths if p[-1] == "name" and isinstance(parent_of(cfg, p).get("name"), str)] or paths
    if kind in ("key_typo", "unknown_key"):
        paths = [p for p in paths if isinstance(parent_of(cfg, p), dict)]
    if kind == "number":
        numeric = [p for p in paths if isinstance(parent_of(cfg, p)[p[-1]], (int, float))]
        paths = [p for p in numeric if not isinstance(parent_of(cfg, p)[p[-1]], bool)] or paths
    path = paths[where % len(paths)]
    parent, key = parent_of(cfg, path), path[-1]
    shown = ".".join(str(k) for k in path)
    if kind == "key_typo":
        new = typo(str(key), pick)
        parent[new] = parent.pop(key)
        return cfg, f"rename {shown} -> {new}"
    if kind == "delete":
        del parent[key]
        return cfg, f"delete {shown}"
    if kind == "unknown_key":
        parent["zz_unknown"] = 1
        return cfg, f"add {'.'.join(str(k) for k in path[:-1]) or '<top>'}.zz_unknown"
    if kind == "name_typo" and isinstance(parent[key], str):
        parent[key] = typo(parent[key], pick)
        return cfg, f"{shown}={parent[key]!r}"
    values = NUMBERS if kind == "number" else OTHER_VALUES
    parent[key] = values[pick % len(values)]
    return cfg, f"{shown}={parent[key]!r}"


def kind_of_error(line: str) -> str:
    """The kind of a one-line error, for the counts: ``Unknown key``, ``Out of range``, ``Wrong type``, ..."""
    text = line.removeprefix("emoframe: error: ")
    for prefix in ("Unknown key", "Out of range", "Wrong type", "Missing required value"):
        if text.startswith(prefix):
            return f"error: {prefix}"
    if text.startswith("Unknown "):
        return "error: unknown component name"
    return "error: other value check"


@pytest.fixture(scope="module")
def shipped(fer2013_zip: Path, afew_va_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shipped recipes that need only the test data, resolved: FER2013 ones, AFEW-VA, the SVM recipe."""
    features = tmp_path_factory.mktemp("features")
    os.environ.setdefault("AFEW_FEATURES_A", str(features))
    data = {"fer2013": f"data.root={fer2013_zip}", "afew_va": f"data.root={afew_va_clip.parent}"}
    out: dict[str, Any] = {}
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        if path.stem.startswith("fer2013_"):
            out[path.stem] = load_recipe(path, [data["fer2013"]])
        elif path.stem == "afew_va_ccc":
            out[path.stem] = load_recipe(path, [data["afew_va"]])
        elif path.stem == "afew_stat_svm":
            out[path.stem] = load_svm_recipe(path)
    return out


@pytest.mark.slow
def test_mutated_recipes_end_in_one_line_or_are_valid(
    shipped: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes: Counter[str] = Counter()
    crashes: list[str] = []
    file = tmp_path / "mutant.yaml"
    names = sorted(shipped)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),  # no shrinking: the failure names its mutation already
        suppress_health_check=list(HealthCheck),
    )
    @given(
        recipe=st.sampled_from(names),
        kind=st.sampled_from(KINDS),
        where=st.integers(0, 10**6),
        pick=st.integers(0, 10**6),
    )
    def run(recipe: str, kind: str, where: int, pick: int) -> None:
        cfg, what = mutate(shipped[recipe], kind, where, pick)
        save_recipe(cfg, file)
        capsys.readouterr()
        try:
            code = main(["config", str(file)])
        except Exception as err:  # a crash: the point of this test is that there are none
            if COLLECT:
                crashes.append(f"{recipe}: {what}: {type(err).__name__}: {str(err)[:200]}")
                return
            raise AssertionError(f"{recipe}: {what}: {type(err).__name__}: {err}") from err
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("emoframe: error:")]
        assert code in (0, 2), f"{recipe}: {what}: exit {code}"
        if code == 2:
            assert len(errors) == 1 and "Traceback" not in err, f"{recipe}: {what}: {err[-1500:]}"
        outcomes["valid" if code == 0 else kind_of_error(errors[0])] += 1
        outcomes[f"mutations/{kind}"] += 1

    run()
    total = sum(v for k, v in outcomes.items() if k.startswith("mutations/"))
    valid = outcomes["valid"]
    with capsys.disabled():
        print(
            f"\nrecipe fuzzer: {total} mutations of {len(names)} recipes: {valid} valid, {total - valid} one-line errors"
        )
        for key, count in sorted(outcomes.items()):
            print(f"  {key}: {count}")
        for crash in crashes:
            print(f"  CRASH {crash}")
    assert not crashes
    assert total == EXAMPLES or total > 0


SWEEP_EXAMPLES = int(os.environ.get("EMOFRAME_FUZZ_SWEEP_EXAMPLES", "200"))
SWEEP_KINDS = (
    "key_typo",
    "delete",
    "type_change",
    "number",
    "unknown_key",
    "name_typo",
    "range",
    "distribution",
    "new_parameter",
    "method",
)
# what a swept distribution's keys are set to: small, zero, negative, huge (a slot or grid point per value)
FILLERS = (0, 1, -1, 0.5, 2, 705, 1000, 1e12, -1e12, 10**12, 1e-6, 1e300)
NEW_NAMES = (
    "optimizer.lrr",
    "optimizer.momentum",
    "loss.label_smoothing",
    "data.augment.0.p",
    "data.augment.9.p",
    "data.subset",
    "trainer.max_epochs",
    "data.loader.batch_size",
    "model.backbone.widths",
    "model.backbone.name",
    "zz",
)
SECONDS_PER_EXAMPLE = 20  # a hang (a slot per value of a huge range) fails the example instead of the CI job


class ReachedFirstTrial(Exception):
    """Raised in place of the first trial: every check a worker makes before training has passed."""


class Hung(Exception):
    pass


def distribution_spec(dist: str, pick: int) -> dict[str, Any]:
    """``dist`` with each of its keys set to a filler (values: a short list of them)."""
    required, optional = DISTRIBUTIONS[dist]
    spec: dict[str, Any] = {"distribution": dist}
    for i, key in enumerate((*required, *optional)):
        if key == "value":
            spec[key] = FILLERS[(pick + i) % len(FILLERS)]
        elif key in ("values", "probabilities"):
            spec[key] = [0.5, 0.5] if key == "probabilities" else [0.1, FILLERS[pick % len(FILLERS)]]
        else:
            spec[key] = FILLERS[(pick // (i + 1) + i) % len(FILLERS)]
    if pick % 3 == 0:
        spec.pop("distribution")  # W&B's inference from the keys
    return spec


def mutate_sweep(cfg: dict[str, Any], kind: str, where: int, pick: int) -> tuple[dict[str, Any], str]:
    """``cfg`` (a sweep file as read) with one mutation, and its description."""
    params = cfg.get("parameters")
    specs = sorted(params) if isinstance(params, dict) else []
    if kind in ("range", "distribution") and specs:
        cfg = copy.deepcopy(cfg)
        name = specs[where % len(specs)]
        spec = cfg["parameters"][name]
        if kind == "distribution" or not isinstance(spec, dict):
            dist = sorted(DISTRIBUTIONS)[pick % len(DISTRIBUTIONS)]
            cfg["parameters"][name] = distribution_spec(dist, pick // len(DISTRIBUTIONS))
            return cfg, f"parameters.{name}={cfg['parameters'][name]}"
        if "values" in spec:
            edits = [[], spec["values"][::-1], [None], [spec["values"][0]] * 2, [float("nan")], [[1, 2]], "0.1"]
            spec["values"] = edits[pick % len(edits)]
            return cfg, f"parameters.{name}.values={spec['values']!r}"
        low, high = spec.get("min", 0), spec.get("max", 1)
        pairs = [(high, low), (low, low), (-1, -1e-3), (float("nan"), high), (low, float("inf")), (0, 10**12)]
        spec["min"], spec["max"] = pairs[pick % len(pairs)]
        return cfg, f"parameters.{name}: min={spec['min']!r} max={spec['max']!r}"
    if kind == "new_parameter" and isinstance(params, dict):
        cfg = copy.deepcopy(cfg)
        name = NEW_NAMES[where % len(NEW_NAMES)]
        dist = sorted(DISTRIBUTIONS)[pick % len(DISTRIBUTIONS)]
        cfg["parameters"][name] = distribution_spec(dist, pick // len(DISTRIBUTIONS))
        return cfg, f"parameters.{name}={cfg['parameters'][name]}"
    if kind == "method":
        cfg = copy.deepcopy(cfg)
        cfg["method"] = (*METHODS, "Grid", "hyperopt")[pick % (len(METHODS) + 2)]
        return cfg, f"method={cfg['method']!r}"
    if kind in ("range", "distribution", "new_parameter"):
        kind = "type_change"  # the parameters are gone already
    if kind == "name_typo":
        strings = [p for p in leaves(cfg) if isinstance(parent_of(cfg, p)[p[-1]], str)]
        if strings:
            cfg = copy.deepcopy(cfg)
            path = strings[where % len(strings)]
            parent = parent_of(cfg, path)
            parent[path[-1]] = typo(parent[path[-1]], pick)
            return cfg, f"{'.'.join(str(k) for k in path)}={parent[path[-1]]!r}"
    return mutate(cfg, kind if kind != "name_typo" else "type_change", where, pick)


def kind_of_sweep_error(line: str) -> str:
    """The kind of a sweep's one-line error, for the counts."""
    if "of their ranges:" in line:
        return "error: the recipe at an end of a range"
    for needle, kind in (
        ("unknown key", "unknown key"),
        ("unknown value", "unknown name"),
        ("expected a number", "wrong type"),
        ("expected an integer", "wrong type"),
        ("expected a", "wrong type"),
        ("missing", "missing key"),
        ("is above max", "min above max"),
        ("--storage", "storage"),
        ("the local engine", "local engine limit"),
        ("command", "command"),
    ):
        if needle in line:
            return f"error: {kind}"
    return "error: other value check"


@pytest.fixture(scope="module")
def shipped_sweeps() -> dict[str, Any]:
    import yaml

    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((REPO / "sweeps").glob("*.yaml"))}


@pytest.mark.slow  # about 20 s on 2 cores: a fifth of the examples check the recipe twice and open a study
def test_mutated_sweeps_end_in_one_line_or_reach_their_first_trial(
    shipped_sweeps: dict[str, Any],
    fer2013_zip: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    import emoframe.sweeps.engine as sweep_engine
    from emoframe.sweeps.command import trial_command
    from emoframe.sweeps.space import override, suggest

    def first_trial(sweep: Any, study: Any, trial: Any, folder: Path, url: str) -> Any:
        """What run_trial does before it starts `emoframe fit`: the values and the command; then stop."""
        params = {p.name: suggest(trial, p) for p in sweep.parameters}
        trial_command(sweep, [override(k, v) for k, v in params.items()])
        raise ReachedFirstTrial

    def hung(signum: int, frame: Any) -> None:
        raise Hung

    monkeypatch.chdir(REPO)  # the sweep files name their recipe relative to the repository, as W&B's agent runs it
    monkeypatch.setenv("FER2013_ROOT", str(fer2013_zip))
    monkeypatch.setattr(sweep_engine, "run_trial", first_trial)
    previous = signal.signal(signal.SIGALRM, hung)
    outcomes: Counter[str] = Counter()
    crashes: list[str] = []
    names = sorted(shipped_sweeps)
    counter = iter(range(10**9))

    @settings(
        max_examples=SWEEP_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(
        name=st.sampled_from(names),
        mutations=st.lists(
            st.tuples(st.sampled_from(SWEEP_KINDS), st.integers(0, 10**6), st.integers(0, 10**6)),
            min_size=1,
            max_size=3,
        ),
    )
    def run(name: str, mutations: list[tuple[str, int, int]]) -> None:
        cfg, whats = shipped_sweeps[name], []
        for kind, where, pick in mutations:
            cfg, what = mutate_sweep(cfg, kind, where, pick)
            whats.append(what)
        what = f"{name}: {'; '.join(whats)}"
        n = next(counter)
        file, folder = tmp_path / f"mutant_{n}.yaml", tmp_path / f"sweep_{n}"
        file.write_text(yaml.safe_dump(cfg, sort_keys=False))
        capsys.readouterr()
        signal.alarm(SECONDS_PER_EXAMPLE)
        try:
            code: int | None = main(["sweep", str(file), "--local", "--dir", str(folder)])
        except ReachedFirstTrial:
            code = None  # the storage, study and slots are written: a sweep that would now train
            shutil.rmtree(folder)
        except (Exception, Hung) as err:  # a crash or a hang: the point of this test is that there are none
            message = f"{what}: {type(err).__name__}: {str(err)[:300]}"
            shutil.rmtree(folder, ignore_errors=True)
            if COLLECT:
                crashes.append(message)
                return
            raise AssertionError(message) from err
        finally:
            signal.alarm(0)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("emoframe: error:")]
        assert code in (None, 0, 2), f"{what}: exit {code}"
        if code == 2:
            assert len(errors) == 1 and "Traceback" not in err, f"{what}: {err[-1500:]}"
            assert not folder.exists(), f"{what}: a refused sweep left {sorted(folder.rglob('*'))[:5]}"
        outcomes[
            "reached the first trial" if code is None else "exit 0" if code == 0 else kind_of_sweep_error(errors[0])
        ] += 1
        for kind, _, _ in mutations:
            outcomes[f"mutations/{kind}"] += 1
        outcomes["examples"] += 1

    try:
        run()
    finally:
        signal.signal(signal.SIGALRM, previous)
    with capsys.disabled():
        print(f"\nsweep fuzzer: {outcomes['examples']} mutated sweep files of {len(names)} shipped")
        for key, count in sorted(outcomes.items()):
            print(f"  {key}: {count}")
        for crash in crashes:
            print(f"  CRASH {crash}")
    assert not crashes
    assert outcomes["examples"] > 0
