"""Face tracks of image-sequence folders (AFEW-VA's ``<clip>/<frame>.png``), cached like video tracks.

A folder of frames is a video whose frames are files: the same pipeline runs over them in name
order, following one face, and the result is a ``FaceTrack`` stored in the same atomic cache. The key
is the folder's fingerprint (names, sizes, mtimes of its images), so adding or editing a frame
re-extracts the clip.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from emoframe.errors import DataError
from emoframe.faces.pipeline import FacePipeline
from emoframe.faces.tracks import TRACK_VERSION, FaceTrack, FaceTrackCache, collect_track
from emoframe.files.cache import folder_fingerprint
from emoframe.files.decode import is_image_name
from emoframe.files.pictures import PictureTooLarge, header_check, too_large

FOLDER_TRACK_VERSION = 1


def frame_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, in name order (frame order for zero-padded names)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Frame folder not found: {folder} (expected a folder of images such as 00000.png)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p.name) and not p.name.startswith("."))
    if not files:
        raise DataError(f"No images in {folder}: expected frames such as {folder}/00000.png")
    return files


def read_rgb(path: Path) -> np.ndarray | None:
    """An RGB uint8 frame, or None when the file is not a decodable image or is over the one picture-size
    limit (``emoframe.files.pictures``; the pipeline counts it as bad)."""
    try:
        data = path.read_bytes()
        header_check(data)
    except (OSError, PictureTooLarge):
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or too_large(image.shape[1], image.shape[0]):
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def extract_folder_track(folder: str, pipeline: FacePipeline) -> FaceTrack:
    """Run the pipeline over a folder's frames in name order; ``fps`` is 0 (a folder has no frame rate)."""
    t0 = time.perf_counter()
    files = frame_files(folder)
    return collect_track(pipeline, (read_rgb(f) for f in files), len(files), 0.0, t0)


class FolderTrackCache(FaceTrackCache):
    """``FaceTrackCache`` over image-sequence folders instead of video files (same policies and report)."""

    label = "face-folder"
    extract = staticmethod(extract_folder_track)

    def parts(self, video: str | Path) -> list:
        fingerprint = folder_fingerprint(video, keep=lambda rel: "/" not in rel and is_image_name(rel))
        return [TRACK_VERSION, FOLDER_TRACK_VERSION, fingerprint, self.pipeline.settings()]
