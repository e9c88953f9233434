"""dlib's 68 landmarks as features (136 values), normalised to the face box, for Kumari's fusion model.

FER2013 faces are 48x48 crops, below the ~80 px faces dlib's detector finds, so each image is first
upscaled (x4 with cubic interpolation by default). Where the detector still finds no face, the whole
image is used as the face box (the images are face crops) and the image is counted as a fallback: the
count is reported (stderr, ``stats["fallbacks"]``) because those landmarks are fitted without a
detected box and are less reliable.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np

from emoframe.faces import FaceDetector, LandmarkPredictor, pick
from emoframe.features.base import FeatureExtractor, Stats
from emoframe.files.cache import file_fingerprint
from emoframe.registry import FEATURES, RecipeError

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
POINTS = 68
_MODELS: dict[tuple[float, int, str], tuple[FaceDetector, LandmarkPredictor]] = {}
"""dlib models per process and settings: loading the 100 MB predictor once per chunk would cost seconds."""


@FEATURES.register("landmarks68")
class LandmarkFeatures(FeatureExtractor):
    """dlib's 68 (x, y) landmarks normalised to the face box (136 values); whole image as the box if no face."""

    name = "landmarks68"
    version = 1

    def __init__(
        self,
        upscale: int = 4,
        interpolation: Literal["nearest", "linear", "cubic", "area", "lanczos"] = "cubic",
        threshold: float = 0.0,
        upsample: int = 0,
        keep: Literal["largest", "best"] = "largest",
        predictor_path: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(upscale, int) or not 1 <= upscale <= 16:
            raise RecipeError(f"features.landmarks68.upscale: expected an integer in 1..16, got {upscale!r}")
        if interpolation not in INTERPOLATIONS:
            raise RecipeError(
                f"features.landmarks68.interpolation: expected one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}"
            )
        if not isinstance(upsample, int) or not 0 <= upsample <= 3:
            raise RecipeError(f"features.landmarks68.upsample: expected an integer in 0..3, got {upsample!r}")
        if keep not in ("largest", "best"):
            raise RecipeError(f"features.landmarks68.keep: expected 'largest' or 'best', got {keep!r}")
        self.upscale = upscale
        self.interpolation = interpolation
        self.threshold = float(threshold)
        self.upsample = upsample
        self.keep = keep
        self.predictor_path = predictor_path
        self.predictor_file = LandmarkPredictor(predictor_path).path  # checked now; dlib loads it lazily

    def _models(self) -> tuple[FaceDetector, LandmarkPredictor]:
        """This process's detector and predictor (dlib objects do not pickle: made in each worker)."""
        key = (self.threshold, self.upsample, str(self.predictor_file))
        if key not in _MODELS:
            detector = FaceDetector(threshold=self.threshold, upsample=self.upsample, max_side=None)
            _MODELS[key] = (detector, LandmarkPredictor(str(self.predictor_file)))
        return _MODELS[key]

    @property
    def dim(self) -> int:
        return 2 * POINTS

    def settings(self) -> dict[str, Any]:
        return {
            "upscale": self.upscale,
            "interpolation": self.interpolation,
            "threshold": self.threshold,
            "upsample": self.upsample,
            "keep": self.keep,
            "predictor": file_fingerprint(self.predictor_file),  # sha256, memoised per process
        }

    def compute(self, images: np.ndarray) -> tuple[np.ndarray, Stats]:
        out = np.empty((len(images), self.dim), dtype=np.float32)
        fallbacks = 0
        flag = INTERPOLATIONS[self.interpolation]
        detector, predictor = self._models()
        for i, image in enumerate(images):  # dlib takes one image at a time
            height, width = image.shape
            big = cv2.resize(image, (width * self.upscale, height * self.upscale), interpolation=flag)
            found = detector.detect(big)
            if found:
                box = pick(found, self.keep).box
            else:
                box = (0.0, 0.0, float(big.shape[1]), float(big.shape[0]))
                fallbacks += 1
            points = predictor.predict(big, box)
            left, top, right, bottom = box
            out[i] = ((points - (left, top)) / (right - left, bottom - top)).ravel()
        return out, {"fallbacks": fallbacks}

    def report(self, stats: Stats, n: int, where: str) -> str | None:
        k = stats.get("fallbacks", 0)
        return (
            f"{self.name} ({where}): dlib found no face in {k:,} of {n:,} images ({100 * k / max(n, 1):.1f}%) "
            f"after x{self.upscale} {self.interpolation} upscaling; their landmarks use the whole image as the face box"
        )
