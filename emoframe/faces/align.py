"""Eye-aligned face crops with the box of Ng et al. (EmotiW 2015), and intensity stretching.

The face is rotated and scaled so the eye centres lie on a horizontal line, then cropped: the sides
``sides`` x e2e out from the eyes, the top ``top`` x e2e above the eye line and the bottom ``bottom``
x e2e below it (e2e = eye-centre distance; Ng: 0.62, 0.9, 1.35). Measured from the eye centres the
box is 2.24 x 2.25 e2e, the "approximately square" box Ng describe; measured from the outer eye
corners (``sides_from: outer_corners``) it is about 2.7 x 2.25 e2e and is stretched to a square.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from emoframe.faces.landmarks import eye_centres

SidesFrom = Literal["eye_centres", "outer_corners"]


def alignment_matrix(
    landmarks: np.ndarray,
    size: int,
    sides: float = 0.62,
    top: float = 0.9,
    bottom: float = 1.35,
    sides_from: SidesFrom = "eye_centres",
) -> np.ndarray:
    """The 2x3 affine map from frame pixels to the ``size`` x ``size`` aligned crop."""
    left_eye, right_eye = eye_centres(landmarks)
    dx, dy = right_eye - left_eye
    e2e = math.hypot(dx, dy)
    if e2e < 1e-3:
        raise ValueError("eye centres coincide: cannot align")
    mid = (left_eye + right_eye) / 2
    rotate = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), math.degrees(math.atan2(dy, dx)), 1.0)
    if sides_from == "outer_corners":
        corners = np.c_[landmarks[[36, 45]], np.ones(2)] @ rotate.T
        x0, x1 = corners[0, 0] - sides * e2e, corners[1, 0] + sides * e2e
    else:
        x0, x1 = mid[0] - (0.5 + sides) * e2e, mid[0] + (0.5 + sides) * e2e
    y0, y1 = mid[1] - top * e2e, mid[1] + bottom * e2e
    scale_crop = np.array(
        [[size / (x1 - x0), 0, -x0 * size / (x1 - x0)], [0, size / (y1 - y0), -y0 * size / (y1 - y0)]]
    )
    return scale_crop @ np.vstack([rotate, [0, 0, 1]])


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, **box: float | str) -> np.ndarray:
    """The aligned crop (same channels as ``image``); pixels outside the frame replicate its border."""
    matrix = alignment_matrix(landmarks, size, **box)  # type: ignore[arg-type]
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine map to (N, 2) points (e.g. landmarks into the crop)."""
    return (np.c_[points, np.ones(len(points))] @ matrix.T).astype(np.float32)


def stretch_intensity(image: np.ndarray) -> np.ndarray:
    """Min-max stretch to [0, 255] (Ng et al.); a flat image is returned unchanged."""
    low, high = int(image.min()), int(image.max())
    if high <= low:
        return image
    return ((image.astype(np.float32) - low) * (255.0 / (high - low)) + 0.5).astype(np.uint8)
