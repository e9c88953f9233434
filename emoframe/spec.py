"""``ModelSpec``: what a trained model is and how its inputs were made, in one description.

The builder makes it from the task class and the datamodule (``ModelSpec.of``); it travels in every checkpoint
(``SPEC_KEY``) and exported file, so ``emoframe.load_model``, predict, export and the ensembles need neither the
data set nor the recipe file. Tasks say what they are as class attributes (``kind``, ``activation``,
``window_key``); the datamodule says how many frames one item holds (``frames_per_item``). Files written before
the spec existed hold a ``DataSpec`` (``emoframe_data``): ``ModelSpec.upgrade`` reads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

KINDS = ("frame", "fusion", "clip", "window")
SPEC_KEY = "emoframe_spec"
PREPROCESSING_KEYS = ("image_size", "channels", "mean", "std", "faces")


@dataclass
class ModelSpec:
    """The classes a model predicts, what one forward pass maps, and the preprocessing of its inputs."""

    channels: int
    num_classes: int
    class_names: list[str]
    feature_dim: int = 0
    image_size: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    faces: dict[str, Any] | None = None  # face_crop settings used in training; None: the inputs were crops already
    feature_mean: list[float] | None = None  # hand-crafted features' training statistics (set when a fit saves)
    feature_std: list[float] | None = None
    task: str = ""  # the registered task name
    kind: str = "frame"  # emoframe.spec.KINDS
    activation: str = "softmax"  # softmax, sigmoid or none (regressed values)
    window: int = 1  # frames per forward pass of clip and window models
    temporal: bool = False  # a temporal model over frames (False: a window model can look at single pictures)

    @classmethod
    def of(cls, datamodule: Any, task: type | None = None, name: str = "", temporal: Any = None) -> ModelSpec:
        """The spec of a task class trained on ``datamodule`` (or on the data another spec describes)."""
        if isinstance(datamodule, ModelSpec):
            data = {f.name: getattr(datamodule, f.name) for f in fields(cls)}
        else:
            image = getattr(datamodule, "image", None)  # data.image: ImageSettings (every built-in datamodule)
            mean, std = image.per_channel() if callable(getattr(image, "per_channel", None)) else (None, None)
            faces = getattr(datamodule, "faces", None)
            data = dict(
                channels=int(getattr(datamodule, "channels", 3)),
                num_classes=int(datamodule.num_classes),
                class_names=[str(c) for c in getattr(datamodule, "class_names", [])],
                feature_dim=int(getattr(datamodule, "feature_dim", 0) or 0),
                image_size=int(image.size) if image is not None else None,
                mean=mean,
                std=std,
                faces=dict(faces.settings()) if callable(getattr(faces, "settings", None)) else None,
                window=int(getattr(datamodule, "frames_per_item", 1) or 1),
            )
        if task is not None:
            data.update(
                task=name,
                kind=str(getattr(task, "kind", "") or "frame"),
                activation=str(getattr(task, "activation", "softmax")),
                temporal=(temporal or {}).get("name") not in ("none", None),
            )
            if not getattr(task, "window_key", None):
                data["window"] = 1
        return cls(**data)

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """How inputs were made in training: size, channels, normalisation and face settings."""
        return {k: getattr(self, k) for k in PREPROCESSING_KEYS}

    @property
    def accepts_images(self) -> bool:
        """Whether single pictures make sense to this model (not to clip models or models of time)."""
        return self.kind in ("frame", "fusion") or (self.kind == "window" and not self.temporal)
