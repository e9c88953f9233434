"""Recipes: YAML files composed with OmegaConf (inheritance, interpolation, env defaults, overrides).

Composition order: each file named in ``defaults:`` (or ``base:``), left to right and recursively,
then the recipe itself, then command-line ``key=value`` overrides.  The result is resolved to plain
Python containers, so nothing downstream sees OmegaConf.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

from emoframe.registry import RecipeError

INHERIT_KEYS = ("defaults", "base")
RUN_KEYS = ("dir", "name", "version")
TOP_LEVEL_KEYS = (
    "imports",
    "seed",
    "run",
    "data",
    "model",
    "loss",
    "optimizer",
    "scheduler",
    "trainer",
    "callbacks",
    "loggers",
    "predict",
    "test",
)
TEST_KEYS = ("tta",)
"""``test:``: ``tta`` (views as ``emoframe test --tta`` takes them), used when the command line gives none."""
ALTERNATIVE_FORMS: dict[str, tuple[frozenset[str], ...]] = {
    "split": (frozenset({"seed", "ratios"}), frozenset({"train", "val", "test"})),  # clips dealt, or listed
}
"""Sections (by their last key) written in one of several forms (sets of keys): an override in one form
replaces the keys of the others (see ``drop_other_form``)."""
SVM_TOP_LEVEL_KEYS = ("seed", "run", "features", "splits", "svm")
"""The sections of an ``emoframe svm`` recipe (no datamodule, model or trainer: see emoframe.clipsvm.run)."""


RECIPE_SUFFIXES = (".yaml", ".yml")
"""What names a recipe file (and a sweep file) among command-line arguments."""


def _load_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise RecipeError(f"Recipe not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml.YAMLError and friends: one line with the file, line and column
        raise RecipeError(f"{path}{_yaml_position(err)}: not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"{path}: a recipe must be a mapping at the top level")
    return cfg


def _yaml_position(err: Exception) -> str:
    """``:line:column`` of a YAML error (1-based, as editors count), when the parser knows it."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is None:
        return ""
    start = getattr(err, "context_mark", None)
    opened = f" (opened at line {start.line + 1})" if start is not None and start.line != mark.line else ""
    return f":{mark.line + 1}:{mark.column + 1}{opened}"


def _yaml_problem(err: Exception) -> str:
    problem = getattr(err, "problem", None) or (str(err).strip().splitlines() or [type(err).__name__])[0]
    context = getattr(err, "context", None)
    return f"{context}: {problem}" if context else str(problem)


def compose(path: str | Path, _seen: tuple[Path, ...] = ()) -> DictConfig:
    """The recipe at ``path`` merged over its ``defaults:``/``base:`` recipes (paths relative to it)."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise RecipeError(f"Recipe inheritance cycle: {chain}")
    cfg = _load_yaml(path)
    parents: list[str] = []
    for key in INHERIT_KEYS:
        if key in cfg:
            value = cfg[key]
            parents += [str(v) for v in value] if isinstance(value, ListConfig) else [str(value)]
            del cfg[key]
    merged = OmegaConf.create({})
    for parent in parents:
        parent_path = (path.parent / parent).resolve()
        if not parent_path.is_file():
            raise RecipeError(f"{path.name}: defaults entry '{parent}' not found (looked for {parent_path})")
        merged = OmegaConf.merge(merged, compose(parent_path, (*_seen, path)))
    return OmegaConf.merge(merged, cfg)  # type: ignore[return-value]


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Apply ``a.b=value`` overrides (values parsed as YAML: ``3``, ``true``, ``[1, 2]``, ``null``) and ``~a.b``
    deletions."""
    for item in overrides:
        if item.startswith("~") and "=" not in item:  # Hydra's deletion: ~trainer.max_time
            delete_key(cfg, item[1:], item)
            continue
        if "=" not in item:
            raise RecipeError(f"Override '{item}' is not of the form key=value (e.g. trainer.max_epochs=3)")
        key, value = item.split("=", 1)
        key = key.lstrip("+")
        new = parse_override_value(item, value)
        # A value naming a component (name: or class_path:) replaces the section, as LightningCLI does: the old
        # component's arguments mean nothing to the new one. So does a mapping in another of the section's
        # alternative forms (ALTERNATIVE_FORMS). Any other mapping merges into what is there.
        names_component = isinstance(new, dict) and ("name" in new or "class_path" in new)
        drop_other_form(cfg, key, new)
        try:
            OmegaConf.update(cfg, key, new, merge=not names_component, force_add=True)
        except OmegaConfBaseException as err:
            raise RecipeError(f"Override '{item}': {str(err).splitlines()[0]}") from None
    return cfg


def parse_override_value(item: str, value: str) -> Any:
    """The override's value as plain YAML data, its ``${...}`` interpolations left unresolved.

    They are resolved later against the whole recipe (``resolve``): parsed alone, ``${optimizer.momentum}``
    would look for the key in a one-key scratch config and fail with omegaconf's traceback.
    """
    try:
        parsed = OmegaConf.create({"v": value}) if value == "" else OmegaConf.from_dotlist([f"v={value}"])
        return OmegaConf.to_container(parsed, resolve=False)["v"]  # type: ignore[index]
    except Exception as err:  # a YAML parser error: one line, not the parser's traceback
        raise RecipeError(f"Override '{item}': the value is not valid YAML ({_yaml_problem(err)})") from None


def drop_other_form(cfg: DictConfig, key: str, new: Any) -> None:
    """Before an override in one of a section's alternative forms lands, remove the keys of the other forms.

    ``data.split={train: [...], ...}`` (or ``data.split.train=[...]``) over a recipe's ``{seed, ratios}``
    means the lists instead, not both: merged, the section would hold keys the user never wrote and the
    datamodule would blame them.
    """
    *parents, last = key.split(".")
    if isinstance(new, dict):  # the whole section: a.split={...}
        section_path, given = key, {str(k) for k in new}
    else:  # one key of it: a.split.train=...
        section_path, given = ".".join(parents), {last}
    forms = ALTERNATIVE_FORMS.get(section_path.rsplit(".", 1)[-1], ())
    form = next((f for f in forms if given and given <= f), None)
    section = OmegaConf.select(cfg, section_path, default=None) if form is not None else None
    if not isinstance(section, DictConfig):
        return
    others = set().union(*forms) - form  # type: ignore[operator]
    for old in [str(k) for k in section if str(k) in others]:
        del section[old]


def delete_key(cfg: DictConfig, key: str, item: str) -> None:
    """Remove ``a.b.c`` from the recipe (so an inherited value falls back to the component's default)."""
    *parents, last = key.split(".")
    node: Any = cfg
    for part in parents:
        node = node.get(part) if isinstance(node, DictConfig) else None
    if not isinstance(node, DictConfig) or last not in node:
        raise RecipeError(f"Override '{item}': the recipe has no key {key} to delete")
    del node[last]


def resolve(cfg: DictConfig) -> dict[str, Any]:
    """Plain containers with every interpolation resolved; a missing ``???`` value names its key path."""
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise RecipeError(f"Missing required value {missing[0]} (set it in the recipe or as {missing[0]}=...)")
        out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except (InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException) as err:
        key = getattr(err, "full_key", "") or ""
        msg = str(err).splitlines()[0]
        raise RecipeError(f"Cannot resolve {key or 'recipe'}: {msg}") from None
    assert isinstance(out, dict)
    return out


def check_keys(section: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    """Unknown keys of a fixed section are typos: fail with the closest known name."""
    for key in section:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            at = f"{where}.{key}" if where else f"'{key}' at the top of the recipe"
            raise RecipeError(f"Unknown key {at}.{hint} Known: {', '.join(known)}")


def check_top_level(cfg: dict[str, Any], known: tuple[str, ...] = TOP_LEVEL_KEYS) -> None:
    """Unknown top-level sections are typos: fail with the closest known name."""
    check_keys(cfg, known, "")


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, known: tuple[str, ...] = TOP_LEVEL_KEYS
) -> dict[str, Any]:
    """Compose, override, resolve and check a recipe; the run name defaults to the recipe's file stem.

    ``known`` are the accepted top-level sections (``emoframe svm`` recipes have their own).
    """
    cfg = compose(path)
    cfg = apply_overrides(cfg, list(overrides or []))
    out = resolve(cfg)
    check_top_level(out, known)
    run = out.setdefault("run", {}) or {}
    if not isinstance(run, dict):
        raise RecipeError(f"run: expected a mapping with {', '.join(RUN_KEYS)}, got {run!r}")
    check_keys(run, RUN_KEYS, "run")
    out["run"] = run
    run.setdefault("name", Path(path).stem)
    return out


def load_svm_recipe(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """An ``emoframe svm`` recipe: composed, overridden, resolved, its top-level sections checked."""
    return load_recipe(path, list(overrides or []), known=SVM_TOP_LEVEL_KEYS)


def checkpoint_recipe(
    stored: dict[str, Any], overrides: list[str] | None = None, data_from: str | Path | None = None
) -> dict[str, Any]:
    """A checkpoint's stored recipe, its ``data:`` replaced by the recipe file ``data_from``'s (when given), then
    the overrides; resolved and checked like a recipe file."""
    cfg = OmegaConf.create(stored)
    if data_from:
        own = compose(data_from)
        if "data" not in own:
            raise RecipeError(f"{data_from}: no data: section to extract features from")
        cfg["data"] = own["data"]  # replaced, not merged: another datamodule shares no keys with the training one
        imports = [*(stored.get("imports") or []), *(own.get("imports") or [])]
        if imports:
            cfg["imports"] = list(dict.fromkeys(imports))
    out = resolve(apply_overrides(cfg, list(overrides or [])))
    check_top_level(out)
    return out


def to_yaml(cfg: dict[str, Any]) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(cfg))


def save_recipe(cfg: dict[str, Any], path: Path) -> None:
    """Write the resolved recipe atomically (a crash never leaves half a file that a later run reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(to_yaml(cfg))
    tmp.replace(path)
