"""The face step as one configurable object: detect -> pick one face -> 68 landmarks -> aligned crop.

Used on single images (``image_folder`` with ``faces:``), on video frames (``process_frames`` keeps
the face tracked across frames) and by the face benchmarks. Every frame is counted in ``stats``:
a face found, the whole frame passed instead (``fallback: frame``, Knyazev et al.), the frame
dropped (``fallback: drop``), or a frame that was not an image at all.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from emoframe.faces.align import SidesFrom, align_face, alignment_matrix, stretch_intensity, transform_points
from emoframe.faces.detect import Box, FaceDetector, pick
from emoframe.faces.image import BadFrame, to_gray_uint8
from emoframe.faces.landmarks import LandmarkPredictor
from emoframe.registry import TRANSFORMS

Status = Literal["face", "fallback", "dropped", "bad"]


@dataclass
class FaceResult:
    """What the pipeline made of one frame. ``crop`` is None when the frame was dropped or bad."""

    status: Status
    crop: np.ndarray | None = None
    box: Box | None = None
    score: float | None = None
    landmarks: np.ndarray | None = None  # (68, 2) in frame pixels
    crop_landmarks: np.ndarray | None = None  # (68, 2) in crop pixels
    reason: str = ""


@TRANSFORMS.register("face_crop")
class FacePipeline:
    """Detect, pick, landmark and align a face; the crop is ``size`` x ``size`` uint8.

    ``keep`` chooses among several faces: ``largest`` (default), ``best`` (highest detector score) or
    ``tracked`` (in ``process_frames``: the face overlapping the previous frame's most). ``fallback``
    says what a frame without a face becomes: ``frame`` (the whole frame, resized) or ``drop``.
    ``grayscale`` and ``stretch`` (min-max intensity) follow Ng et al.; colour crops are RGB.
    """

    def __init__(
        self,
        size: int = 48,
        threshold: float = -0.5,
        upsample: int = 0,
        max_side: int | None = 640,
        keep: Literal["largest", "best", "tracked"] = "largest",
        fallback: Literal["frame", "drop"] = "frame",
        grayscale: bool = True,
        stretch: bool = False,
        sides: float = 0.62,
        top: float = 0.9,
        bottom: float = 1.35,
        sides_from: SidesFrom = "eye_centres",
        predictor_path: str | None = None,
    ) -> None:
        for key, value, choices in (
            ("keep", keep, ("largest", "best", "tracked")),
            ("fallback", fallback, ("frame", "drop")),
            ("sides_from", sides_from, ("eye_centres", "outer_corners")),
        ):
            if value not in choices:
                raise ValueError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
        if size < 8:
            raise ValueError(f"size: expected >= 8 px, got {size}")
        self.size = size
        self.detector = FaceDetector(threshold=threshold, upsample=upsample, max_side=max_side)
        self.predictor = LandmarkPredictor(predictor_path)
        self.keep = keep
        self.fallback = fallback
        self.grayscale = grayscale
        self.stretch = stretch
        self.box = {"sides": sides, "top": top, "bottom": bottom, "sides_from": sides_from}
        self.stats: Counter[str] = Counter()

    def settings(self) -> dict[str, object]:
        """Everything that changes the output, for cache keys."""
        d = self.detector
        return {
            "size": self.size,
            "threshold": d.threshold,
            "upsample": d.upsample,
            "max_side": d.max_side,
            "keep": self.keep,
            "fallback": self.fallback,
            "grayscale": self.grayscale,
            "stretch": self.stretch,
            "predictor": self.predictor.path.name,
            **self.box,
        }

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """The crop for one image, or None when it is dropped (counted in ``stats``)."""
        return self.process(image).crop

    def process(self, image: np.ndarray | None, previous: Box | None = None) -> FaceResult:
        """One frame; ``previous`` is the tracked face's box in the frame before (for ``keep: tracked``)."""
        result = self._process(image, previous)
        self.stats["frames"] += 1
        self.stats[result.status] += 1
        return result

    def process_frames(self, frames: Iterable[np.ndarray | None]) -> Iterator[FaceResult]:
        """Frames of one video in order, following one face from frame to frame."""
        previous: Box | None = None
        for frame in frames:
            result = self.process(frame, previous)
            if result.box is not None:
                previous = result.box
            yield result

    def report(self, where: str) -> str:
        """One summary line (also printed to stderr) of what happened to the frames so far."""
        s = self.stats
        line = (
            f"Faces in {where}: {s['face']} of {s['frames']} frames"
            f" ({100.0 * s['face'] / max(1, s['frames']):.1f}%); no face: {s['fallback']} whole frame passed, "
            f"{s['dropped']} dropped; {s['bad']} unreadable"
        )
        print(line, file=sys.stderr, flush=True)
        return line

    # -- internals -----------------------------------------------------------------------------------
    def _process(self, image: np.ndarray | None, previous: Box | None) -> FaceResult:
        try:
            gray = to_gray_uint8(image)
        except BadFrame as err:
            return FaceResult("bad", reason=str(err))
        detections = self.detector.detect(gray)
        if not detections:
            if self.fallback == "drop":
                return FaceResult("dropped", reason="no face")
            whole = self._finish(self._colour(image, gray))
            crop = cv2.resize(whole, (self.size, self.size), interpolation=_interpolation(whole, self.size))
            return FaceResult("fallback", crop=crop, reason="no face")
        face = pick(detections, self.keep, previous)
        return self.crop_face(image, gray, face.box, face.score)

    def crop_face(self, image: np.ndarray | None, gray: np.ndarray, box: Box, score: float) -> FaceResult:
        """The aligned crop of the face in ``box`` (a detection of ``gray``, the frame ``image`` in gray): what
        ``process`` makes of the face it picks, for callers that keep every face (``emoframe predict``)."""
        landmarks = self.predictor.predict(gray, box)
        matrix = alignment_matrix(landmarks, self.size, **self.box)  # type: ignore[arg-type]
        crop = self._finish(align_face(self._colour(image, gray), landmarks, self.size, **self.box))
        return FaceResult(
            "face",
            crop=crop,
            box=box,
            score=score,
            landmarks=landmarks,
            crop_landmarks=transform_points(landmarks, matrix),
        )

    def _colour(self, image: np.ndarray | None, gray: np.ndarray) -> np.ndarray:
        """The frame the crop is cut from: gray, or RGB (alpha dropped, gray repeated) for colour crops."""
        if self.grayscale:
            return gray
        rgb = np.asarray(image)
        if rgb.ndim == 3 and rgb.shape[2] in (3, 4) and rgb.dtype == np.uint8:
            return np.ascontiguousarray(rgb[:, :, :3])
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)

    def _finish(self, crop: np.ndarray) -> np.ndarray:
        return stretch_intensity(crop) if self.stretch else crop


def _interpolation(image: np.ndarray, size: int) -> int:
    return cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_LINEAR
