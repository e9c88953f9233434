"""Faces: dlib detection, 68 landmarks, eye alignment with Ng et al.'s crop box, one pipeline object."""

from emoframe.faces.align import align_face, alignment_matrix, stretch_intensity
from emoframe.faces.detect import Detection, FaceDetector, iou, pick
from emoframe.faces.image import BadFrame, to_gray_uint8
from emoframe.faces.landmarks import LandmarkPredictor, eye_centres, interocular_distance, landmark_error
from emoframe.faces.models import model_file
from emoframe.faces.pipeline import FacePipeline, FaceResult

__all__ = [
    "BadFrame",
    "Detection",
    "FaceDetector",
    "FacePipeline",
    "FaceResult",
    "LandmarkPredictor",
    "align_face",
    "alignment_matrix",
    "eye_centres",
    "interocular_distance",
    "iou",
    "landmark_error",
    "model_file",
    "pick",
    "stretch_intensity",
    "to_gray_uint8",
]
