"""Load pretrained weights from a local file: a plain state dict or a Lightning/emoframe checkpoint.

Nothing is downloaded.  Prefixes such as ``module.``, ``backbone.`` or ``model.`` are stripped by
finding how many leading key components to drop so that most keys match the target module.

A file that covers only some of the module's tensors (another architecture: 4 of 24 tensors) is refused in one
line, unless the caller allows a partial load (a backbone's ``partial_weights: true``); a partial load says
on stderr how many tensors it loaded. Extra tensors in the file (a classifier, a task's head) are fine.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
from torch import nn

from emoframe.errors import WeightsError

log = logging.getLogger(__name__)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"Weights file not found: {path} (pretrained weights load from a local file only)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise WeightsError(f"Cannot read weights from {path}: {err}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict or a checkpoint with 'state_dict'")
    return obj


def _strip(state: dict[str, torch.Tensor], target: set[str]) -> dict[str, torch.Tensor]:
    """Drop the number of leading key components (0-3) that makes the most keys match ``target``."""
    best: dict[str, torch.Tensor] = state
    best_hits = -1
    for drop in range(4):
        candidate = {}
        for key, value in state.items():
            parts = key.split(".")
            if len(parts) > drop:
                candidate[".".join(parts[drop:])] = value
        hits = len(target & candidate.keys())
        if hits > best_hits:
            best, best_hits = candidate, hits
    return best


def load_pretrained(
    module: nn.Module, path: str | Path, strict: bool = False, partial: bool = False, flag: str = "partial_weights"
) -> tuple[list[str], list[str]]:
    """Load ``path`` into ``module``; returns (missing, unexpected) keys and logs them.

    Tensors whose shape differs (e.g. a classifier for another number of classes) count as unexpected.
    Unless ``partial``, every tensor of ``module`` must come from the file (BatchNorm's step counters aside):
    a file of another architecture is a ``WeightsError`` that names ``flag``, the recipe key allowing it.
    """
    path = Path(path).expanduser()
    own = module.state_dict()
    state = _strip(_read_state_dict(path), set(own))
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise WeightsError(
            f"{path}: no tensor matches {type(module).__name__} (e.g. file has '{next(iter(state), '')}', "
            f"model expects '{next(iter(own), '')}')"
        )
    unexpected = sorted(set(state) - set(usable))
    missing = sorted(set(own) - set(usable))
    if strict and (missing or unexpected):
        raise WeightsError(f"{path}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    uncovered = [k for k in missing if not k.endswith("num_batches_tracked")]
    total = len(own)
    if uncovered and not partial:
        raise WeightsError(
            f"{path}: holds {len(usable)} of the {total} tensors of {type(module).__name__} (not e.g. "
            f"{', '.join(uncovered[:3])}): weights of another architecture? Set {flag}: true to load them anyway"
        )
    module.load_state_dict(usable, strict=False)
    if uncovered:
        print(
            f"Loaded {len(usable)} of {total} tensors of {type(module).__name__} from {path} ({flag}); "
            f"{len(uncovered)} keep their initial values (e.g. {', '.join(uncovered[:3])})",
            file=sys.stderr,
        )
    log.warning(
        "Loaded %d tensors from %s into %s; missing %d %s; unexpected %d %s",
        len(usable),
        path,
        type(module).__name__,
        len(missing),
        missing[:5],
        len(unexpected),
        unexpected[:5],
    )
    return missing, unexpected
