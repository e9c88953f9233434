"""``export``: a checkpoint's task as an ONNX or TorchScript file with its spec inside, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoframe import builder, config
from emoframe.checkpoints import read_checkpoint
from emoframe.engine.recipes import is_recipe_file
from emoframe.engine.runs import check_output
from emoframe.errors import RecipeError
from emoframe.export.run import ExportResult
from emoframe.models import task_of


def export_model(
    ckpt: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    parity: str = "data",
    overrides: list[str] | None = None,
    items: int = 8,
    opset: int | None = None,
) -> ExportResult:
    """``emoframe export``: the checkpoint's task as an ONNX (``format="onnx"``) or TorchScript file, its recipe,
    DataSpec, task and class names inside, checked against PyTorch before it is kept.

    ``parity="data"`` checks on ``items`` items of the recipe's own datamodule (test split, else validation) when
    its data can be read, else on random inputs; ``"random"`` skips the data. ``overrides`` (``key=value``) change
    that datamodule only (``data.root=...`` where the data moved); the file stores the checkpoint's recipe.
    """
    from emoframe.export.onnx import OPSET
    from emoframe.export.run import default_output, export_task

    recipe = next((o for o in overrides or [] if is_recipe_file(o)), None)
    if recipe:
        raise RecipeError(
            f"{recipe}: export reads the recipe from --ckpt; give key=value overrides for its data: section"
        )
    if parity not in ("data", "random"):
        raise RecipeError(f"--parity: expected 'data' or 'random', got {parity!r}")
    if isinstance(items, bool) or not isinstance(items, int) or items < 1:
        raise RecipeError(f"--items: expected an integer >= 1, got {items!r}")
    checkpoint = read_checkpoint(ckpt)
    task = task_of(checkpoint)
    batch, source = None, "random inputs (--parity random)"
    if parity == "data":
        batch, source = _real_batch(task.recipe or {}, overrides, items)
    path = check_output(output) or default_output(checkpoint.path, format)
    return export_task(task, format, path, dict(checkpoint.payload), batch, source, items=items, opset=opset or OPSET)


def _real_batch(recipe: dict[str, Any], overrides: list[str] | None, items: int) -> tuple[Any, str]:
    """A batch of the recipe's datamodule (test split, else validation; no loader workers) and its description,
    or ``(None, why not)``."""
    data = dict(recipe.get("data") or {})
    data["loader"] = {**dict(data.get("loader") or {}), "num_workers": 0, "batch_size": items}
    name = data.get("name") or data.get("class_path")
    try:
        cfg = config.checkpoint_recipe({**recipe, "data": data}, overrides)
        datamodule = builder.build_datamodule(cfg)
    except Exception as err:  # any failure to build it: parity still runs, on random inputs, and says why
        return None, f"random inputs (data.{name} not built: {_first_line(err)})"
    why = "no test or validation items"
    for stage, split in (("test", "test"), ("validate", "val")):
        try:
            datamodule.setup(stage)
            batch = next(iter(getattr(datamodule, f"{split}_dataloader")()), None)
        except Exception as err:  # unreachable data: missing folder, empty split, unreadable files
            why = _first_line(err)
            continue
        if batch is not None:
            return batch, f"{min(items, len(batch[0]))} real {split} items of data.{name}"
    return None, f"random inputs (data.{name} not readable: {why})"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]
