"""Temporal models over per-frame features (B, T, F) -> (B, T, F'), registered as ``model.temporal: {name: ...}``.

Every temporal model exposes its output width: ``out_features`` on an instance and the classmethod
``output_width(in_features, **args)`` from the recipe arguments without building it, which is what the
builder sizes the head with (the head is created before the temporal model, as it always was).
"""

from emoframe.temporal.models import GRU, LSTM, MeanPool, NoTemporal, RNNTemporal, TemporalModel

__all__ = ["GRU", "LSTM", "MeanPool", "NoTemporal", "RNNTemporal", "TemporalModel"]
