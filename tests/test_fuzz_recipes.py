"""A recipe fuzzer (issue 16, item 8): mutations of the shipped recipes through ``emoframe config``.

Each example takes one shipped recipe (resolved, with its data root pointing at the test data), applies one
mutation (a typo in a key, a deleted key, a value of another type, a negative, zero, huge or non-finite number,
an unknown key, a near-miss component name) and runs it as ``emoframe config FILE`` does (``cli.main``
in-process: the builder's ``check``, or the SVM plan for SVM recipes). Every outcome must be a valid recipe
(exit 0) or one clean error line (exit 2); anything else (a traceback) fails the test, with hypothesis's
shrunk mutation. Seeded (``derandomize``) and bounded, so it takes about a minute; the counts are printed.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from emoframe.cli import main
from emoframe.config import load_recipe, load_svm_recipe, save_recipe

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
