"""Evaluation outputs: reports written by `emoframe test` and `emoframe predict`."""
