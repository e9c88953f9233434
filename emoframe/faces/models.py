"""Where dlib's model files come from: a path the user names, or the ``face-recognition-models`` wheel.

That package's ``__init__`` imports ``pkg_resources`` (gone from recent setuptools), so the file is
located from the package's install folder without importing it. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from emoframe.registry import RecipeError

PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"


def model_file(name: str = PREDICTOR_68, path: str | Path | None = None) -> Path:
    """``path`` if given (must exist), else ``face_recognition_models/models/<name>`` from site-packages."""
    if path is not None:
        found = Path(path).expanduser()
        if not found.is_file():
            raise RecipeError(f"dlib model file not found: {found} (expected a file such as {name})")
        return found
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / "models" / name
        if candidate.is_file():
            return candidate
    raise RecipeError(
        f"dlib model {name} not found: install face-recognition-models (pip install face-recognition-models) "
        "or give its path in the recipe (predictor_path: ...)"
    )
