"""Layers import downward only: a FER2013 fit pulls in neither scikit-learn nor dlib, and nothing below the
builder (eval/, clipsvm/) imports the builder or the recipe reader."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "emoframe"


@pytest.mark.slow  # a fresh interpreter importing torch and Lightning: 10 s or more on 2 cores
def test_fer2013_task_imports_neither_sklearn_nor_dlib(fer2013_zip: Path) -> None:
    """The fer2013_small_cnn recipe's datamodule and task, built in a fresh interpreter."""
    code = f"""
import sys
from emoframe.builder import build_datamodule, build_task
from emoframe.config import load_recipe
cfg = load_recipe({str(REPO / "recipes" / "fer2013_small_cnn.yaml")!r}, ["data.root={fer2013_zip}"])
task = build_task(cfg, build_datamodule(cfg))
assert type(task).__name__ == "FrameClassifier", type(task)
heavy = [m for m in ("sklearn", "dlib") if m in sys.modules]
assert not heavy, heavy
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _emoframe_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported emoframe module, inside a function) for every import statement of a file."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name, in_function) for a in child.names if a.name.startswith("emoframe"))
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("emoframe"):
                found.append((child.lineno, str(child.module), in_function))
            visit(child, inner)

    visit(tree, False)
    return found


@pytest.mark.parametrize("folder", ["eval", "clipsvm"])
def test_below_the_builder_nothing_reads_recipes(folder: str) -> None:
    """eval/ and clipsvm/ take built objects and plain mappings: no emoframe.builder or emoframe.config import,
    and no function-level emoframe import (the kind that dodges a cycle)."""
    bad = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for line, module, in_function in _emoframe_imports(path):
            if module in ("emoframe.builder", "emoframe.config", "emoframe.cli") or in_function:
                bad.append(f"{path.relative_to(REPO)}:{line}: {module}{' (in a function)' if in_function else ''}")
    assert not bad, bad


def test_only_the_cli_and_the_package_entry_import_the_engine() -> None:
    """The engine is the top layer: no module below it imports ``emoframe.engine`` or ``emoframe.cli``."""
    top = {PACKAGE / "cli.py", PACKAGE / "__init__.py", PACKAGE / "__main__.py"}
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in top or (PACKAGE / "engine") in path.parents:
            continue
        for line, module, _ in _emoframe_imports(path):
            if module == "emoframe.cli" or module.split(".")[:2] == ["emoframe", "engine"]:
                bad.append(f"{path.relative_to(REPO)}:{line}: {module}")
    assert not bad, bad
