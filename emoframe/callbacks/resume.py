"""Exact resume: the random number generators' states travel in every checkpoint and come back on resume.

Without them a resumed run draws other shuffles, augmentations and dropout masks than the uninterrupted run
would have, so ``--resume last`` gave other epochs (issue 16: 0.2687 / 0.3167 against 0.1837 / 0.2797).
Python's, numpy's and torch's global generators (CUDA's too) are saved with each checkpoint and restored when
Lightning restores the checkpoint, before the next epoch's loaders draw their seeds from them. The builder adds
this callback to every fit and skips the sanity check of a resumed run, which would draw from them first.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback


class RNGState(Callback):
    """Saves and restores the global RNG states with the checkpoint (``callbacks.RNGState`` in its state)."""

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors, ints and tuples only, so ``torch.load(weights_only=True)`` (Lightning's) reads it."""
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": {
                "name": str(name),
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached": float(cached),
            },
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        n = state_dict["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
        torch.set_rng_state(state_dict["torch"])
        if state_dict.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
