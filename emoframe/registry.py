"""Registries: one ``Registry`` per kind of component, built from recipe mappings.

A recipe mapping selects a component by ``name:`` (a registered name) or ``class_path:`` (any
importable class, so users can subclass a component and name it in a recipe); every other key is
a keyword argument.  Arguments are checked against the signature before the call, so a typo
fails with the recipe key path instead of a ``TypeError`` deep inside a constructor.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Annotated, Any, TypeVar

import annotated_types

from emoframe.errors import RecipeError

T = TypeVar("T")
UNPACK = {typing.Unpack}

PLUGIN_GROUP = "emoframe.plugins"
BUILTINS = "emoframe.components"
"""The module whose import registers every built-in component: loaded like a plugin on a registry's first lookup,
so ``from emoframe.registry import LOSSES; LOSSES.build({"name": "ccc"})`` works without importing the CLI."""
_builtins_loaded = False


def load_builtins() -> None:
    """Register the built-in components (once); a registry lookup calls this itself."""
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True  # set first: the import registers into the registries that call this
        importlib.import_module(BUILTINS)


class Registry:
    """Maps names to component classes (or factory functions) of one kind."""

    def __init__(self, kind: str, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or kind + "s"
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@LOSSES.register("ccc")``; the name defaults to the lower-cased object name."""

        def decorate(obj: T) -> T:
            key = name or obj.__name__.lower()  # type: ignore[attr-defined]
            if key in self._entries and self._entries[key] is not obj:
                first = self._entries[key]
                raise KeyError(
                    f"{self.kind} '{key}' is already registered by "
                    f"{first.__module__}.{first.__qualname__}; "
                    f"cannot register {obj.__module__}.{obj.__qualname__}"  # type: ignore[attr-defined]
                )
            self._entries[key] = obj  # type: ignore[assignment]
            return obj

        return decorate

    def __contains__(self, name: str) -> bool:
        load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        load_builtins()
        return len(self._entries)

    def names(self) -> list[str]:
        load_builtins()
        return sorted(self._entries)

    def get(self, name: str, where: str = "") -> Callable[..., Any]:
        """The registered object, or a ``RecipeError`` listing the names and the closest match."""
        load_builtins()
        if name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(name, self._entries, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        at = f" at {where}" if where else ""
        raise RecipeError(
            f"Unknown {self.kind} '{name}'{at}.{hint} Registered: {', '.join(self.names()) or '(none)'}."
            f" Register with @{self.plural.upper()}.register(...) or give class_path."
        )

    def describe(self) -> list[tuple[str, str]]:
        """(name, first docstring line) for every entry, for ``emoframe list``."""
        rows = []
        for name in self.names():
            doc = inspect.getdoc(self._entries[name]) or ""
            rows.append((name, doc.splitlines()[0] if doc else ""))
        return rows

    def resolve(self, cfg: Mapping[str, Any], where: str = "") -> tuple[Callable[..., Any], dict[str, Any]]:
        """Split a recipe mapping into (class or factory, keyword arguments)."""
        if not isinstance(cfg, Mapping):
            raise RecipeError(f"{where or self.kind}: expected a mapping with 'name:' or 'class_path:', got {cfg!r}")
        kwargs = dict(cfg)
        name = kwargs.pop("name", None)
        class_path = kwargs.pop("class_path", None)
        if "init_args" in kwargs:  # LightningCLI style: class_path + init_args
            extra = kwargs.pop("init_args") or {}
            kwargs.update(extra)
        if (name is None) == (class_path is None):
            raise RecipeError(
                f"{where or self.kind}: give exactly one of 'name:' (one of {', '.join(self.names())}) or 'class_path:'"
            )
        if name is not None:
            target = self.get(str(name), where=f"{where}.name" if where else "")
        else:
            target = import_object(str(class_path), where=f"{where}.class_path" if where else "class_path")
        return target, kwargs

    def build(self, cfg: Mapping[str, Any], where: str = "", **injected: Any) -> Any:
        """Build the component a recipe mapping names; ``injected`` are builder-derived arguments.

        Injected arguments the target does not accept are dropped; recipe keys it does not accept are
        an error naming ``where.key``.
        """
        target, kwargs = self.resolve(cfg, where)
        params = accepted_parameters(target)
        for key, value in injected.items():
            if key in kwargs:
                continue  # the recipe overrides what the builder derived
            if params is None or key in params:
                kwargs[key] = value
        check_arguments(target, kwargs, where or self.kind)
        return target(**kwargs)

    def partial(self, cfg: Mapping[str, Any], where: str, provided: tuple[str, ...]) -> Callable[..., Any]:
        """A checked factory: recipe arguments bound now, ``provided`` ones passed at call time."""
        target, kwargs = self.resolve(cfg, where)
        check_arguments(target, kwargs, where, provided=provided)
        return functools.partial(target, **kwargs)


def import_object(path: str, where: str = "class_path") -> Any:
    """Import ``package.module.Name`` (or ``package.module:Name``)."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise RecipeError(f"{where}: '{path}' is not a dotted path like 'my_pkg.module.ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RecipeError(f"{where}: cannot import module '{module_name}' for '{path}': {err}") from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RecipeError(f"{where}: module '{module_name}' has no attribute '{attr}'") from None


def accepted_parameters(target: Callable[..., Any]) -> set[str] | None:
    """Names a callable accepts as keywords; ``None`` when it takes untyped ``**kwargs``.

    ``**options: Unpack[SomeTypedDict]`` (PEP 692: keyword arguments several components share, declared
    once) accepts the TypedDict's keys.
    """
    sig = inspect.signature(target)
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            shared = unpacked_keywords(target)
            if shared is None:
                return None
            names |= set(shared)
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names


def _type_hints(target: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations (``Annotated`` bounds kept) of a function or a class's ``__init__``; empty when they
    cannot be resolved."""
    try:
        return typing.get_type_hints(target.__init__ if inspect.isclass(target) else target, include_extras=True)
    except Exception:  # unresolvable annotations: skip the type check rather than guess
        return {}


def unpacked_keywords(target: Callable[..., Any]) -> dict[str, Any] | None:
    """Key -> type of a ``**kwargs: Unpack[TypedDict]`` parameter (PEP 692), None for plain ``**kwargs``.

    Lets a family of components share keyword arguments (the parts the builder injects into every task, the
    loader settings of every datamodule) declared once, and still have every key checked.
    """
    for key, hint in _type_hints(target).items():
        param = inspect.signature(target).parameters.get(key)
        if param is None or param.kind is not param.VAR_KEYWORD:
            continue
        args = typing.get_args(hint)
        if typing.get_origin(hint) in UNPACK and args and typing.is_typeddict(args[0]):
            return typing.get_type_hints(args[0], include_extras=True)
    return None


def check_arguments(
    target: Callable[..., Any], kwargs: Mapping[str, Any], where: str, provided: tuple[str, ...] = ()
) -> None:
    """Fail before the call on an unknown, missing or wrongly typed argument, naming its key path.

    ``provided`` names arguments supplied later by the caller (e.g. an optimizer's ``params``). A component
    whose recipe keys were regrouped lists the old ones in a ``moved_keys`` class attribute (old key -> new
    key path), so an old recipe fails with the new key's name instead of a bare "unknown key".
    """
    sig = inspect.signature(target)
    name = getattr(target, "__qualname__", repr(target))
    accepted = accepted_parameters(target)
    moved: Mapping[str, str] = getattr(target, "moved_keys", None) or {}
    for key in kwargs:
        if key in moved and (accepted is None or key not in accepted):
            raise RecipeError(f"{where}.{key} has moved: set {where}.{moved[key]} instead")
    if accepted is not None:
        for key in kwargs:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise RecipeError(
                    f"Unknown key {where}.{key} for {name}.{hint} Accepted: {', '.join(sorted(accepted))}"
                )
    try:
        sig.bind(**kwargs, **{k: None for k in provided if k not in kwargs})
    except TypeError as err:
        missing = [
            p.name
            for p in sig.parameters.values()
            if p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in kwargs
            and p.name not in provided
        ]
        if missing:
            raise RecipeError(f"Missing required value {where}.{missing[0]} for {name}") from None
        raise RecipeError(f"{where}: {err}") from None
    hints = {**(unpacked_keywords(target) or {}), **_type_hints(target)}
    for key, value in kwargs.items():
        expected = hints.get(key)
        if expected is None:
            continue
        if not _matches(value, expected):
            raise RecipeError(
                f"Wrong type for {where}.{key}: expected {_type_name(expected)}, got {type(value).__name__} ({value!r})"
            )
        broken = _broken_constraint(value, expected)
        if broken:
            raise RecipeError(f"Out of range {where}.{key}: expected {broken}, got {value!r}")


# Bounds components declare on their arguments (checked by ``check_arguments`` before anything is built).
NonNegative = Annotated[float, annotated_types.Ge(0)]
Positive = Annotated[float, annotated_types.Gt(0)]
PositiveInt = Annotated[int, annotated_types.Ge(1)]
Probability = Annotated[float, annotated_types.Interval(ge=0, le=1)]
MAX_WIDTH = 65_536
Width = Annotated[int, annotated_types.Interval(ge=1, le=MAX_WIDTH)]
"""A layer's width (channels, hidden units): >= 1, and bounded so a typo cannot ask for terabytes of weights."""

CONSTRAINTS: dict[type, tuple[str, str, Callable[[Any, Any], bool]]] = {
    annotated_types.Gt: ("gt", ">", lambda v, b: v > b),
    annotated_types.Ge: ("ge", ">=", lambda v, b: v >= b),
    annotated_types.Lt: ("lt", "<", lambda v, b: v < b),
    annotated_types.Le: ("le", "<=", lambda v, b: v <= b),
}
"""The annotated-types bounds a component may declare: ``lr: Annotated[float, Ge(0)]``, ``Interval(ge=0, le=1)``."""


def _constraints(expected: Any) -> list[Any]:
    """The annotated-types bounds on a hint (``Annotated[float, Ge(0)]``, also inside ``... | None``)."""
    origin = typing.get_origin(expected)
    if origin is typing.Annotated:
        found = []
        for meta in expected.__metadata__:
            found += list(meta) if isinstance(meta, annotated_types.GroupedMetadata) else [meta]
        return [m for m in found if type(m) in CONSTRAINTS]
    if origin in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(expected) for c in _constraints(arg)]
    return []


def _broken_constraint(value: Any, expected: Any) -> str:
    """``'>= 0'`` when ``value`` breaks a declared bound, else ``''`` (``None`` and non-numbers are not bounded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    rules = [(CONSTRAINTS[type(c)], getattr(c, CONSTRAINTS[type(c)][0])) for c in _constraints(expected)]
    if all(holds(value, bound) for (_, _, holds), bound in rules):
        return ""
    return " and ".join(f"{symbol} {bound}" for (_, symbol, _), bound in rules)


def _matches(value: Any, expected: Any) -> bool:
    """A lenient isinstance for recipe values: checks plain types, Optional/Union, Literal, containers."""
    origin = typing.get_origin(expected)
    if origin is typing.Annotated:
        return _matches(value, typing.get_args(expected)[0])
    if expected is Any or expected is inspect.Parameter.empty:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected in (str, bool):
        return isinstance(value, expected)
    if origin in (list, tuple, typing.Sequence, Sequence) or expected in (list, tuple):
        if not (isinstance(value, (list, tuple)) or _is_listconfig(value)):
            return False
        args = typing.get_args(expected)  # the items' type too: data.image.mean=['', 0.5] is not list[float]
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        return all(_matches(v, args[0]) for v in value)
    if origin in (dict, Mapping) or expected is dict:
        return isinstance(value, Mapping) or _is_dictconfig(value)
    return True  # classes, callables, protocols: left to the component


def _is_listconfig(value: Any) -> bool:
    return type(value).__name__ == "ListConfig"


def _is_dictconfig(value: Any) -> bool:
    return type(value).__name__ == "DictConfig"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def load_plugins(modules: list[str] | tuple[str, ...] = (), entry_point_group: str = PLUGIN_GROUP) -> None:
    """Import user modules named in a recipe's ``imports:`` and installed ``emoframe.plugins`` entry points.

    Importing a module runs its ``@REGISTRY.register`` decorators, which is all a plugin needs to do.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise RecipeError(f"imports: cannot import plugin module '{module}': {err}") from err
    for ep in entry_points(group=entry_point_group):
        ep.load()


BACKBONES = Registry("backbone")
HEADS = Registry("head")
LOSSES = Registry("loss", "losses")
DATAMODULES = Registry("datamodule")
TASKS = Registry("task")
CALLBACKS = Registry("callback")
LOGGERS = Registry("logger")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
TRANSFORMS = Registry("transform")
FEATURES = Registry("feature extractor", "features")
AGGREGATIONS = Registry("aggregation")
"""Clip aggregations for clip SVMs (emoframe.clipsvm.aggregations): ``(T, D)`` frames -> one clip vector."""
TEMPORAL = Registry("temporal model", "temporal")
"""Temporal models over per-frame features (emoframe.temporal): ``(B, T, F) -> (B, T, F')``."""

REGISTRIES: dict[str, Registry] = {
    r.plural: r
    for r in (
        BACKBONES,
        HEADS,
        LOSSES,
        DATAMODULES,
        TASKS,
        CALLBACKS,
        LOGGERS,
        OPTIMIZERS,
        SCHEDULERS,
        TRANSFORMS,
        FEATURES,
        AGGREGATIONS,
        TEMPORAL,
    )
}
