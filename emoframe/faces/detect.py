"""dlib's HOG frontal face detector, run on a downscaled copy for speed, boxes mapped back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from emoframe.faces.image import MIN_SIDE, to_gray_uint8

Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels of the original frame
Keep = Literal["largest", "best"]


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return max(0.0, right - left) * max(0.0, bottom - top)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceDetector:
    """Frontal faces with dlib's HOG + linear SVM detector.

    ``threshold`` is dlib's ``adjust_threshold``: detections scoring below it are dropped. dlib's own
    default is 0; Knyazev et al. lower it to miss fewer faces in films (we measured -0.5 finds the face
    in 62 of 68 frames of videos/angry.mp4, against 58 at 0: docs/faces.md). ``max_side`` downscales
    the frame so its longer side is at most that many pixels before detecting (dlib's smallest face is
    about 80 px, so 640 still finds faces a tenth of the frame high) and maps boxes back;
    ``upsample`` doubles the image that many times first, to find smaller faces.
    """

    def __init__(self, threshold: float = -0.5, upsample: int = 0, max_side: int | None = 640) -> None:
        if upsample < 0 or upsample > 3:
            raise ValueError(f"upsample: expected 0..3, got {upsample}")
        if max_side is not None and max_side < 80:
            raise ValueError(f"max_side: expected None or >= 80 px (dlib finds faces of ~80 px), got {max_side}")
        self.threshold = float(threshold)
        self.upsample = int(upsample)
        self.max_side = max_side
        self._dlib_detector = None  # created lazily: dlib objects do not pickle into worker processes

    def _detector(self):
        if self._dlib_detector is None:
            import dlib

            self._dlib_detector = dlib.get_frontal_face_detector()
        return self._dlib_detector

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dlib_detector": None}

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces scoring at least ``threshold``, best first, in the original frame's pixels."""
        gray = to_gray_uint8(image)
        if min(gray.shape) < MIN_SIDE:
            return []
        scale = 1.0
        if self.max_side is not None and max(gray.shape) > self.max_side:
            scale = self.max_side / max(gray.shape)
            size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        rects, scores, _ = self._detector().run(gray, self.upsample, self.threshold)
        found = [
            Detection((r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(found, key=lambda d: -d.score)


def pick(detections: list[Detection], keep: Keep | Literal["tracked"], previous: Box | None = None) -> Detection:
    """One face among several: the largest, the best scoring, or the one overlapping the previous frame's most.

    ``tracked`` falls back to the largest when there is no previous box or nothing overlaps it.
    """
    if keep == "best":
        return max(detections, key=lambda d: d.score)
    if keep == "tracked" and previous is not None:
        overlaps = [iou(d.box, previous) for d in detections]
        if max(overlaps) > 0:
            return detections[int(np.argmax(overlaps))]
    return max(detections, key=lambda d: d.area)
