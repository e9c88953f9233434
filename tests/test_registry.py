"""Registry behaviour: registration, build by name or class_path, and every error a recipe can make."""

from __future__ import annotations

from typing import ClassVar, TypedDict, Unpack

import pytest
from torch import nn

from emoframe.registry import (
    LOSSES,
    NonNegative,
    PositiveInt,
    Probability,
    RecipeError,
    Registry,
    accepted_parameters,
    check_arguments,
    load_plugins,
)


@pytest.fixture()
def reg() -> Registry:
    r = Registry("loss", "losses")

    @r.register("ccc")
    class CCC(nn.Module):
        """1 - concordance correlation coefficient."""

        def __init__(self, reduction: str = "mean", weights: list[float] | None = None) -> None:
            super().__init__()
            self.reduction = reduction

    @r.register("ce")
    class CE(nn.Module):
        """Cross entropy."""

        def __init__(self, label_smoothing: float = 0.0) -> None:
            super().__init__()
            self.label_smoothing = label_smoothing

    @r.register("needs_alpha")
    class NeedsAlpha(nn.Module):
        def __init__(self, alpha: float) -> None:
            super().__init__()

    return r


class UserLoss(nn.Module):
    """A user's own loss, named by class_path in a recipe."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha


def test_build_by_name_passes_arguments(reg: Registry) -> None:
    loss = reg.build({"name": "ce", "label_smoothing": 0.1})
    assert type(loss).__name__ == "CE" and loss.label_smoothing == 0.1


def test_build_by_class_path_and_init_args(reg: Registry) -> None:
    loss = reg.build({"class_path": "tests.test_registry.UserLoss", "alpha": 0.3})
    assert isinstance(loss, UserLoss) and loss.alpha == 0.3
    loss = reg.build({"class_path": "tests.test_registry.UserLoss", "init_args": {"alpha": 0.5}})
    assert loss.alpha == 0.5


def test_unknown_name_suggests_closest_and_lists(reg: Registry) -> None:
    with pytest.raises(RecipeError, match=r"Unknown loss 'cc' at loss.name. Did you mean 'ccc'\? Registered: ccc, ce"):
        reg.build({"name": "cc"}, "loss")


def test_unknown_argument_names_key_path(reg: Registry) -> None:
    with pytest.raises(RecipeError, match=r"Unknown key model.loss.label_smoothin .*Did you mean 'label_smoothing'"):
        reg.build({"name": "ce", "label_smoothin": 0.1}, "model.loss")


def test_wrong_type_names_key_path(reg: Registry) -> None:
    with pytest.raises(RecipeError, match=r"Wrong type for loss.label_smoothing: expected float, got str"):
        reg.build({"name": "ce", "label_smoothing": "high"}, "loss")
    with pytest.raises(RecipeError, match=r"Wrong type for loss.weights"):
        reg.build({"name": "ccc", "weights": 3}, "loss")
    assert reg.build({"name": "ce", "label_smoothing": 0}, "loss").label_smoothing == 0  # int is a float


def test_missing_required_value(reg: Registry) -> None:
    with pytest.raises(RecipeError, match=r"Missing required value loss.alpha"):
        reg.build({"name": "needs_alpha"}, "loss")


def test_name_and_class_path_are_exclusive(reg: Registry) -> None:
    with pytest.raises(RecipeError, match="exactly one of 'name:'"):
        reg.build({"name": "ce", "class_path": "x.Y"}, "loss")
    with pytest.raises(RecipeError, match="exactly one of 'name:'"):
        reg.build({"label_smoothing": 0.1}, "loss")


def test_bad_class_path(reg: Registry) -> None:
    with pytest.raises(RecipeError, match="cannot import module 'no_such_pkg'"):
        reg.build({"class_path": "no_such_pkg.Loss"}, "loss")
    with pytest.raises(RecipeError, match="has no attribute 'Nope'"):
        reg.build({"class_path": "tests.test_registry.Nope"}, "loss")


def test_duplicate_registration_names_first_owner(reg: Registry) -> None:
    with pytest.raises(KeyError, match="already registered by .*CCC"):

        @reg.register("ccc")
        class Other(nn.Module):
            pass


def test_injected_arguments_only_when_accepted(reg: Registry) -> None:
    loss = reg.build({"name": "ce"}, "loss", label_smoothing=0.2, unrelated=3)
    assert loss.label_smoothing == 0.2
    loss = reg.build({"name": "ce", "label_smoothing": 0.05}, "loss", label_smoothing=0.2)
    assert loss.label_smoothing == 0.05  # the recipe wins over a derived value


def test_describe_lists_first_docstring_line(reg: Registry) -> None:
    assert ("ccc", "1 - concordance correlation coefficient.") in reg.describe()


def test_plugin_module_from_imports(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_plugin_mod.py").write_text(
        "from torch import nn\n"
        "from emoframe.registry import LOSSES\n"
        "@LOSSES.register('my_plugin_loss')\n"
        "class MyLoss(nn.Module):\n"
        "    '''A plugin loss.'''\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(LOSSES, "_entries", dict(LOSSES._entries))  # the plugin's loss leaves with the test
    load_plugins(["my_plugin_mod"])
    assert "my_plugin_loss" in LOSSES
    with pytest.raises(RecipeError, match="cannot import plugin module 'not_a_module'"):
        load_plugins(["not_a_module"])


def test_entry_point_plugins_are_loaded(tmp_path, monkeypatch) -> None:
    """An installed package exposing the emoframe.plugins group is imported by load_plugins()."""
    pkg = tmp_path / "ep_plugin_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from torch import nn\nfrom emoframe.registry import HEADS\n"
        "@HEADS.register('ep_head')\nclass EpHead(nn.Module):\n    '''From an entry point.'''\n"
    )
    dist = tmp_path / "ep_plugin_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[emoframe.plugins]\nep = ep_plugin_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from emoframe.registry import HEADS

    monkeypatch.setattr(HEADS, "_entries", dict(HEADS._entries))  # the plugin's head leaves with the test
    load_plugins()
    assert "ep_head" in HEADS


def test_moved_keys_name_the_new_key() -> None:
    from emoframe.registry import RecipeError, Registry

    reg = Registry("thing")

    @reg.register("grouped")
    class Grouped:
        moved_keys: ClassVar[dict[str, str]] = {"batch_size": "loader.batch_size"}

        def __init__(self, loader: dict | None = None) -> None:
            self.loader = loader

    with pytest.raises(RecipeError, match=r"^data.batch_size has moved: set data.loader.batch_size instead$"):
        reg.build({"name": "grouped", "batch_size": 4}, "data")
    assert reg.build({"name": "grouped", "loader": {"batch_size": 4}}, "data").loader == {"batch_size": 4}


def test_declared_bounds_are_checked_with_the_key_path() -> None:
    reg = Registry("thing")  # the hints resolve at module level: see the imports

    @reg.register("bounded")
    def bounded(lr: NonNegative = 0.1, p: Probability = 0.5, n: PositiveInt = 1, maybe: Probability | None = None):
        return lr, p, n, maybe

    assert reg.build({"name": "bounded", "lr": 0, "p": 1, "n": 3, "maybe": None}) == (0, 1, 3, None)
    for key, value, expected in [
        ("lr", -1, ">= 0"),
        ("p", 1.5, ">= 0 and <= 1"),
        ("n", 0, ">= 1"),
        ("maybe", -0.1, ">= 0 and <= 1"),
    ]:
        with pytest.raises(RecipeError, match=rf"^Out of range optimizer.{key}: expected {expected}, got {value}$"):
            reg.build({"name": "bounded", key: value}, "optimizer")
    with pytest.raises(RecipeError, match="Wrong type for optimizer.n: expected int"):
        reg.build({"name": "bounded", "n": 1.5}, "optimizer")


class Parts(TypedDict, total=False):
    channels_last: bool
    head: object


def make(threshold: float = 0.5, **parts: Unpack[Parts]) -> dict:
    return {"threshold": threshold, **parts}


def test_unpacked_typed_keywords_are_checked_like_spelled_out_ones() -> None:
    assert accepted_parameters(make) == {"threshold", "channels_last", "head"}
    check_arguments(make, {"channels_last": True, "threshold": 0.3}, "model")
    with pytest.raises(RecipeError, match=r"Unknown key model.channels_lastt .*Did you mean 'channels_last'"):
        check_arguments(make, {"channels_lastt": True}, "model")
    with pytest.raises(RecipeError, match=r"Wrong type for model.channels_last: expected bool"):
        check_arguments(make, {"channels_last": "yes"}, "model")


def test_every_registered_component_has_its_keys_checked() -> None:
    """A datamodule's ``**options: Unpack[ImageOptions]`` must be read as its keys: with ``typing_extensions``'
    Unpack (no longer recognised) every key was accepted, and ``data.subbset`` was a TypeError in the constructor
    (found by the sweep fuzzer)."""
    import emoframe.registry as registry

    registry.load_builtins()
    kinds = [r for r in vars(registry).values() if isinstance(r, Registry)]
    unchecked = [f"{r.kind}/{n}" for r in kinds for n in r.names() if accepted_parameters(r.get(n)) is None]
    assert len(kinds) > 5 and not unchecked, f"components accepting any key: {unchecked}"
    with pytest.raises(RecipeError, match=r"Unknown key data.subbset for Fer2013DataModule. Did you mean 'subset'"):
        check_arguments(registry.DATAMODULES.get("fer2013"), {"root": "x", "subbset": 4000}, "data")
