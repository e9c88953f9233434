"""Inference on anything: photos, folders and globs of pictures, video files, cameras and streams
(``emoframe predict --ckpt X INPUT...``, ``emoframe.load_model(...).predict(x)``); see docs/predict.md.

``sources`` (inputs -> frames) -> ``faces`` (the training preprocessing, replayed) -> ``run`` (the worker
process, batching, progress) -> ``outputs`` (rows, timelines, rendered video); ``spec`` is what the pipeline
needs of a model, ``predictor`` the ``Model`` that ``emoframe.load_model`` returns.
"""

from emoframe.inference.faces import FER_SCALE, FER_SHIFT, FaceCropper, Tracker
from emoframe.inference.predictor import Model
from emoframe.inference.run import Options, Summary, predict
from emoframe.inference.spec import Runner

__all__ = ["FER_SCALE", "FER_SHIFT", "FaceCropper", "Model", "Options", "Runner", "Summary", "Tracker", "predict"]
