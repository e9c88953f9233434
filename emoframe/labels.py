"""emoframe's label set: the FER2013 order, used by every classification datamodule."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Index = label id: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral (FER2013's CSV order)."""
