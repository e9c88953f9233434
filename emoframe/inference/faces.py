"""The training preprocessing, replayed on whole pictures and frames: faces found, cropped as in training, tracked.

A model's ``DataSpec.faces`` says how its training faces were made:

- **face_crop settings** (video datamodules, ``image_folder`` with ``faces:``): the same ``FacePipeline``
  (detector threshold, upsampling and working size, 68 landmarks, Ng et al.'s eye-aligned box, gray or RGB,
  intensity stretch, crop size), applied to *every* face found rather than the one training kept.
- **None** (FER2013 and other sets of ready-cropped faces): dlib's detector, then a *FER2013-style* crop: a
  square ``FER_SCALE`` (1.25) times the detector's box side, centred ``FER_SHIFT`` (0.07) box sides above the
  box's centre, gray (or RGB for 3-channel models), resized to the model's size. The numbers are measured, not
  guessed: dlib run on 300 FER2013 test faces (upscaled 4x, on a grey canvas) finds 273, and the FER2013 image
  is a median 1.28 times its box, centred 0.07 box sides above it (``benchmarks/fer_crop_margin.py``); 1.25 is
  that median rounded to the nearer quarter, so a detected face fills the crop as FER2013's faces fill theirs.
- ``faces="none"`` treats every input as a crop already (resized to the model's size).

``faces="all"`` reports every face; ``"largest"`` the largest one per frame. Faces keep an id from frame to
frame (``Tracker``: greedy matching of boxes by overlap). ``detect_every=N`` runs the detector on one looked-at
frame in N and crops the frames between with its boxes (the aligned pipeline still finds each frame's landmarks
in the held box, so its crops follow the face): the detector is most of a frame's cost, and at 25 frames/s a
face moves little in N-1 frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from emoframe.errors import DataError
from emoframe.faces.detect import Box, Detection, FaceDetector, iou
from emoframe.faces.image import to_gray_uint8
from emoframe.faces.models import PREDICTOR_68
from emoframe.faces.pipeline import FacePipeline

FaceMode = Literal["all", "largest", "none"]
FACE_MODES = ("all", "largest", "none")
FER_SCALE = 1.25
"""Side of a FER2013-style crop over the side of dlib's box (measured median 1.28; see the module docstring)."""
FER_SHIFT = 0.07
"""How far above dlib's box centre a FER2013-style crop is centred, in box sides (measured median 0.073)."""


@dataclass
class Face:
    """One face of a frame: ``box`` in the frame's pixels, its detector ``score``, the model-ready ``crop``."""

    box: Box
    score: float
    crop: np.ndarray
    track_id: int = -1


class FaceCropper:
    """Frames -> the faces a model trained with ``faces`` settings (``DataSpec.faces``) would have seen."""

    def __init__(
        self, size: int, channels: int, faces: dict[str, Any] | None, mode: FaceMode = "all", detect_every: int = 1
    ) -> None:
        if mode not in FACE_MODES:
            raise DataError(f"--faces: expected one of {', '.join(FACE_MODES)}, got {mode!r}")
        if not isinstance(detect_every, int) or isinstance(detect_every, bool) or detect_every < 1:
            raise DataError(f"--detect-every: expected an integer >= 1, got {detect_every!r}")
        self.size, self.channels, self.mode, self.detect_every = int(size), int(channels), mode, detect_every
        self._held: list[Detection] = []  # the last detection's faces, for the frames until the next one
        self._looked = 0
        self.pipeline: FacePipeline | None = None
        if faces:
            settings = dict(faces)
            predictor = settings.pop("predictor", PREDICTOR_68)
            if predictor != PREDICTOR_68:
                raise DataError(
                    f"the model's faces were landmarked with {predictor}; predict finds only dlib's {PREDICTOR_68}"
                )
            settings["size"] = int(settings.get("size") or size)
            self.pipeline = FacePipeline(**settings)
            self.detector = self.pipeline.detector
            self.style = "aligned"
        else:
            self.detector = FaceDetector()
            self.style = "fer"
        self.gray = self.channels == 1 or (self.pipeline is not None and self.pipeline.grayscale)

    def describe(self) -> str:
        if self.mode == "none":
            return "inputs taken as face crops (--faces none)"
        if self.style == "aligned":
            return f"faces aligned as in training ({self.size} px, {'gray' if self.gray else 'RGB'})"
        return f"faces cropped as FER2013's ({FER_SCALE} x the detector box, {self.size} px)"

    def reset(self) -> None:
        """A new source: its first frame is searched whatever ``detect_every`` says."""
        self._held, self._looked = [], 0

    def __call__(self, image: np.ndarray) -> list[Face]:
        """Every face of an RGB (or gray) frame, largest first (only the largest with ``mode="largest"``)."""
        if self.mode == "none":
            return [Face((0.0, 0.0, float(image.shape[1]), float(image.shape[0])), float("nan"), self._whole(image))]
        gray = to_gray_uint8(image)
        if self._looked % self.detect_every == 0:
            found = self.detector.detect(gray)
            found.sort(key=lambda d: -d.area)
            self._held = found[:1] if self.mode == "largest" else found
        self._looked += 1
        return [self._crop(image, gray, d) for d in self._held]

    def _whole(self, image: np.ndarray) -> np.ndarray:
        source = to_gray_uint8(image) if self.gray else _rgb(image)
        shrink = max(source.shape[:2]) > self.size
        return cv2.resize(source, (self.size, self.size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def _crop(self, image: np.ndarray, gray: np.ndarray, detection: Detection) -> Face:
        if self.pipeline is not None:
            result = self.pipeline.crop_face(image, gray, detection.box, detection.score)
            assert result.crop is not None
            return Face(detection.box, detection.score, result.crop)
        return Face(detection.box, detection.score, self.fer_crop(gray if self.gray else _rgb(image), detection.box))

    def fer_crop(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The FER2013-style square around ``box``: ``FER_SCALE`` times its side, ``FER_SHIFT`` above its centre,
        resized to the model's size; pixels outside the frame repeat its border (as the aligned crops do)."""
        left, top, right, bottom = box
        side = max(1, round(FER_SCALE * max(right - left, bottom - top)))
        cx, cy = (left + right) / 2, (top + bottom) / 2 - FER_SHIFT * (bottom - top)
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        height, width = image.shape[:2]
        pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            x0, y0 = x0 + pad, y0 + pad
        region = image[y0 : y0 + side, x0 : x0 + side]
        shrink = side > self.size
        return cv2.resize(region, (self.size, self.size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


_CROPPERS: dict[str, FaceCropper] = {}


def face_cropper(
    size: int, channels: int, faces: dict[str, Any] | None, mode: FaceMode = "all", detect_every: int = 1
) -> FaceCropper:
    """A ``FaceCropper`` with its dlib models loaded, kept for the process: loading the detector and the 68-point
    predictor takes a second or more, and a worker process forked afterwards inherits them for free."""
    key = json.dumps([size, channels, faces, mode, detect_every], sort_keys=True, default=str)
    if key not in _CROPPERS:
        cropper = FaceCropper(size, channels, faces, mode, detect_every)
        if mode != "none":
            cropper.detector._detector()
            if cropper.pipeline is not None:
                cropper.pipeline.predictor.predict(np.zeros((32, 32), np.uint8), (0.0, 0.0, 32.0, 32.0))
        _CROPPERS[key] = cropper
    return _CROPPERS[key]


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[:, :, :3])


class Tracker:
    """Ids for the faces of consecutive frames of one source: each face takes the id of the unclaimed track whose
    last box overlaps it most (IoU >= ``min_iou``); a track unseen for more than ``max_gap_s`` seconds ends."""

    def __init__(self, min_iou: float = 0.3, max_gap_s: float = 1.0) -> None:
        self.min_iou, self.max_gap_s = min_iou, max_gap_s
        self.tracks: dict[int, tuple[Box, float]] = {}  # id -> (last box, last time)
        self.next_id = 0

    def assign(self, faces: list[Face], time_s: float) -> None:
        self.tracks = {k: v for k, v in self.tracks.items() if time_s - v[1] <= self.max_gap_s}
        pairs = sorted(
            ((iou(f.box, box), i, k) for i, f in enumerate(faces) for k, (box, _) in self.tracks.items()),
            reverse=True,
        )
        taken_faces: set[int] = set()
        taken_tracks: set[int] = set()
        for overlap, i, k in pairs:
            if overlap < self.min_iou:
                break
            if i in taken_faces or k in taken_tracks:
                continue
            faces[i].track_id = k
            taken_faces.add(i)
            taken_tracks.add(k)
        for i, face in enumerate(faces):
            if i not in taken_faces:
                face.track_id = self.next_id
                self.next_id += 1
            self.tracks[face.track_id] = (face.box, time_s)
