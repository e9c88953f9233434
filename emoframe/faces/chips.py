"""dlib's own aligned face chips: frontal detector, 5-point landmarks, ``dlib.get_face_chip``.

These are the inputs ``dlib.face_recognition_model_v1`` was trained on (150x150 RGB, padding 0.25), so the
``dlib_resnet`` backbone sees the same faces as dlib does. Detection runs on a copy scaled to at most
``detect_side`` pixels (a 1080p frame is slow at full size); landmarks and the chip use the full frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from emoframe.faces.models import model_file

PREDICTOR_5 = "shape_predictor_5_face_landmarks.dat"


class FaceChipper:
    """RGB uint8 frames -> dlib-aligned face chips (uint8 (size, size, 3)), every face found."""

    def __init__(
        self,
        size: int = 150,
        padding: float = 0.25,
        detect_side: int = 800,
        upsample: int = 1,
        predictor_path: str | Path | None = None,
    ) -> None:
        import dlib

        self.dlib = dlib
        self.size, self.padding, self.detect_side, self.upsample = size, padding, detect_side, upsample
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model_file(PREDICTOR_5, predictor_path)))

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        import cv2

        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        scale = min(1.0, self.detect_side / max(rgb.shape[:2]))
        small = rgb if scale == 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        chips = []
        for box in self.detector(small, self.upsample):
            rect = self.dlib.rectangle(
                int(box.left() / scale), int(box.top() / scale), int(box.right() / scale), int(box.bottom() / scale)
            )
            shape = self.predictor(rgb, rect)
            chips.append(self.dlib.get_face_chip(rgb, shape, size=self.size, padding=self.padding))
        return chips

    def many(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Every face of every frame, stacked (N, size, size, 3)."""
        chips = [chip for frame in frames for chip in self(frame)]
        return np.stack(chips) if chips else np.zeros((0, self.size, self.size, 3), np.uint8)
