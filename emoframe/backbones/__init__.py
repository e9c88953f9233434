"""Backbones: plain torch modules with a ``num_features`` attribute (the builder sizes heads from it)."""

from emoframe.backbones import dlib_resnet, small_cnn, timm_backbone  # noqa: F401  (registration)
from emoframe.backbones.weights import load_pretrained

__all__ = ["load_pretrained"]
