"""What the inference pipeline runs: a forward callable with its ``emoframe.spec.ModelSpec`` (``Runner``).

``emoframe.models`` makes it from a checkpoint (the task's ``forward``) or an exported file (the runtime's
``__call__``), so the pipeline never sees a Task or a recipe: the same frames go through PyTorch or onnxruntime.
The spec's ``kind`` says how frames become network inputs:

- ``frame``: one face -> class probabilities (``frame_classifier``);
- ``fusion``: one face and its hand-crafted features (HOG, landmarks), computed on the fly and standardised with
  the training statistics stored in the checkpoint -> class probabilities (``fusion_classifier``);
- ``clip``: ``window`` faces of one track -> one set of class probabilities (``sequence_classifier``);
- ``window``: ``window`` faces of one track -> one output per frame (``va_regressor``: values;
  ``multilabel_classifier``: sigmoid probabilities).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from emoframe.spec import ModelSpec

Kind = Literal["frame", "fusion", "clip", "window"]
Activation = Literal["softmax", "sigmoid", "none", "probs"]  # probs: the forward gives probabilities (TTA)
KINDS = ("frame", "fusion", "clip", "window")


@dataclass
class Runner:
    """A model's forward callable with its ``emoframe.spec.ModelSpec``: what the inference pipeline runs.

    ``activation`` starts as the spec's and becomes ``probs`` when the forward already averages probabilities
    (``--tta``); the other descriptive attributes are the spec's, read through."""

    forward: Callable[..., torch.Tensor]
    spec: ModelSpec
    activation: Activation
    extractors: list[Any] = field(default_factory=list)  # fusion: hand-crafted feature extractors
    feature_mean: np.ndarray | None = None
    feature_std: np.ndarray | None = None
    thresholds: list[float] | None = None  # multi-label decisions
    postprocessors: dict[str, Any] | None = None  # valence/arousal: fitted PostProcessor per target (videos)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def kind(self) -> Kind:
        return self.spec.kind  # type: ignore[return-value]

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    @property
    def image_size(self) -> int:
        return int(self.spec.image_size or 0)

    @property
    def channels(self) -> int:
        return int(self.spec.channels)

    @property
    def mean(self) -> list[float]:
        return list(self.spec.mean or [])

    @property
    def std(self) -> list[float]:
        return list(self.spec.std or [])

    @property
    def faces(self) -> dict[str, Any] | None:
        return self.spec.faces

    @property
    def window(self) -> int:
        return int(self.spec.window)

    @property
    def temporal(self) -> bool:
        return bool(self.spec.temporal)

    @property
    def task_name(self) -> str:
        return self.spec.task

    def __post_init__(self) -> None:
        self._mean = torch.as_tensor(self.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        self._std = torch.as_tensor(self.std, dtype=torch.float32).reshape(1, -1, 1, 1)

    @property
    def value_columns(self) -> list[str]:
        """One column per output: ``p_<class>`` for probabilities, the target's name for regressed values."""
        if self.activation == "none":
            return list(self.class_names)
        return [f"p_{c}" for c in self.class_names]

    def averaged_over(self, views: Any) -> Runner:
        """This frame model with its class probabilities averaged over TTA ``views`` (``emoframe.tta``)."""
        from emoframe.errors import RecipeError
        from emoframe.tta import TTA, parse_tta

        if self.kind not in ("frame", "fusion") or self.activation != "softmax":
            raise RecipeError(f"--tta: a {self.task_name} model; TTA averages frame classifiers' probabilities")
        forward = TTA(self.forward, parse_tta(views, "--tta"), outputs="logits")  # type: ignore[arg-type]
        return replace(self, forward=forward, activation="probs")

    @property
    def accepts_images(self) -> bool:
        return self.spec.accepts_images

    # -- network inputs ----------------------------------------------------------------------------
    def tensor(self, crops: np.ndarray) -> torch.Tensor:
        """uint8 crops (N, S, S) gray or (N, S, S, 3) -> normalised float32 (N, C, S, S) as in training."""
        x = torch.from_numpy(np.ascontiguousarray(crops))
        x = x[..., None] if x.dim() == 3 else x
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[1] != self.channels:
            x = x.mean(dim=1, keepdim=True) if self.channels == 1 else x[:, :1].expand(-1, self.channels, -1, -1)
        return (x - self._mean) / self._std

    def features(self, crops: np.ndarray) -> np.ndarray:
        """The hand-crafted feature vectors of uint8 crops, standardised as the training data were."""
        gray = crops if crops.ndim == 3 else crops.mean(axis=-1).astype(np.uint8)
        values = np.concatenate([e(np.ascontiguousarray(gray)) for e in self.extractors], axis=1).astype(np.float32)
        if self.feature_mean is not None and self.feature_std is not None:
            values = (values - self.feature_mean) / self.feature_std
        return values

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        if self.activation == "softmax":
            return out.float().softmax(dim=-1)
        if self.activation == "sigmoid":
            return torch.sigmoid(out.float())
        return out.float()

    # -- forward passes ----------------------------------------------------------------------------
    @torch.no_grad()
    def run_faces(self, crops: np.ndarray, features: np.ndarray | None, batch_size: int) -> np.ndarray:
        """(N, K) outputs of frame and fusion models for N crops, ``batch_size`` at a time."""
        out = []
        for start in range(0, len(crops), batch_size):
            x = self.tensor(crops[start : start + batch_size]).to(self.device)
            if self.kind == "fusion":
                assert features is not None
                f = torch.from_numpy(features[start : start + batch_size]).to(self.device)
                out.append(self.activate(self.forward(x, f)).cpu().numpy())
            elif self.kind == "window":  # a frame model of a window task: one-frame windows
                mask = torch.ones((len(x), 1), dtype=torch.bool, device=self.device)
                out.append(self.activate(self.forward(x[:, None], mask))[:, 0].cpu().numpy())
            else:
                out.append(self.activate(self.forward(x)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    @torch.no_grad()
    def run_windows(self, windows: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
        """Outputs for windows of crops (each (t <= window, S, S[, 3])), padded to ``window`` frames and masked:
        (t, K) per window for window models, (K,) for clip models."""
        results: list[np.ndarray] = []
        per_batch = max(1, batch_size // max(1, self.window))
        for start in range(0, len(windows), per_batch):
            group = windows[start : start + per_batch]
            frames = torch.zeros((len(group), self.window, self.channels, self.image_size, self.image_size))
            mask = torch.zeros((len(group), self.window), dtype=torch.bool)
            for i, crops in enumerate(group):
                frames[i, : len(crops)] = self.tensor(crops)
                mask[i, : len(crops)] = True
            out = self.activate(self.forward(frames.to(self.device), mask.to(self.device))).cpu().numpy()
            for i, crops in enumerate(group):
                results.append(out[i] if self.kind == "clip" else out[i, : len(crops)])
        return results

    def prediction(self, values: np.ndarray) -> str:
        """The label of one output row: the top class, the labels over their thresholds, or '' for values."""
        if not np.all(np.isfinite(values)):
            return ""
        if self.activation in ("softmax", "probs"):
            return self.class_names[int(np.argmax(values))]
        if self.activation == "sigmoid":
            cut = self.thresholds or [0.5] * len(self.class_names)
            return "|".join(c for c, v, t in zip(self.class_names, values, cut, strict=True) if v >= t)
        return ""
