"""Clip-classification layouts: EmotiW's AFEW (``afew``) and any ``root/<split>/<class>/<clip>`` tree
(``video_folder``). Sampling, batches, faces and bad-input handling are ``emoframe.data.clips``'.

AFEW (EmotiW audio-video sub-challenge):

    <root>/Train_AFEW/<Emotion>/<clip>.avi     Emotion: Angry Disgust Fear Happy Neutral Sad Surprise
    <root>/Val_AFEW/<Emotion>/<clip>.avi

A clip may instead be a folder of frame images (``<Emotion>/<clip>/<frame>.png``, such as the face frames
EmotiW distributes); frame folders play at ``fps``. Val_AFEW is the validation split and, unless
``test_dir`` names another labelled folder, the test split too: AFEW's test labels are not public
(``Test_AFEW/`` is a flat folder of unlabelled clips for ``emoframe predict``).
"""

from __future__ import annotations

from typing import Any

from emoframe.data.clips import ClipClassificationDataModule, Sampling
from emoframe.data.sequences import OnBad
from emoframe.registry import DATAMODULES

AFEW_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


@DATAMODULES.register("video_folder")
class VideoFolderDataModule(ClipClassificationDataModule):
    """Video clips in root/<split>/<class>/<clip>.<ext> (or <clip>/ frame folders), one emotion per class folder.

    Class folders named like ``EMOTIONS`` (any case) need no mapping; others need ``class_map``, e.g.
    ``{joy: happy, contempt: null}`` (``null`` drops a folder), as for ``image_folder``.
    ``val_split``/``test_split`` may name the same folder.
    """

    def __init__(
        self,
        root: str,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        class_map: dict[str, str | None] | None = None,
        frames: int = 16,
        sampling: Sampling = "uniform",
        stride_s: float | None = None,
        clip_transforms: list[dict[str, Any]] | None = None,
        fps: float = 25.0,
        batch_size: int = 8,
        num_workers: int = 2,
        image_size: int = 48,
        channels: int = 1,
        mean: float | list[float] = 0.5,
        std: float | list[float] = 0.5,
        faces: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        workers: int = 1,
        on_bad_video: OnBad = "error",
        predict_videos: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        splits = {"train": train_split, "val": val_split, "test": test_split}
        self.layout = (
            f"{root}/<split>/<class>/<clip>.mp4 (or <clip>/ folders of frame images) with split folders "
            f"{', '.join(dict.fromkeys(splits.values()))}"
        )
        super().__init__(
            root, splits, class_map, frames, sampling, stride_s, clip_transforms, fps, batch_size, num_workers,
            image_size, channels, mean, std, faces, cache_dir, workers, on_bad_video, predict_videos, seed,
        )  # fmt: skip


@DATAMODULES.register("afew")
class AfewDataModule(ClipClassificationDataModule):
    """AFEW (EmotiW): Train_AFEW/<Emotion>/<clip>.avi for training, Val_AFEW for validation and testing.

    ``test_dir`` names another labelled folder in the same layout to test on (AFEW's own test labels are
    not public). Clips may also be folders of frame images. ``class_map`` is as for ``video_folder``.
    """

    def __init__(
        self,
        root: str,
        train_dir: str = "Train_AFEW",
        val_dir: str = "Val_AFEW",
        test_dir: str | None = None,
        class_map: dict[str, str | None] | None = None,
        frames: int = 16,
        sampling: Sampling = "uniform",
        stride_s: float | None = None,
        clip_transforms: list[dict[str, Any]] | None = None,
        fps: float = 25.0,
        batch_size: int = 8,
        num_workers: int = 2,
        image_size: int = 48,
        channels: int = 1,
        mean: float | list[float] = 0.5,
        std: float | list[float] = 0.5,
        faces: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        workers: int = 1,
        on_bad_video: OnBad = "error",
        predict_videos: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        splits = {"train": train_dir, "val": val_dir, "test": test_dir or val_dir}
        self.layout = (
            f"{root}/{train_dir}/<Emotion>/<clip>.avi and {root}/{val_dir}/<Emotion>/<clip>.avi (EmotiW layout; "
            f"<Emotion> one of {' '.join(AFEW_CLASSES)}; a clip may also be a folder of frame images); "
            "set AFEW_ROOT or data.root"
        )
        super().__init__(
            root, splits, class_map, frames, sampling, stride_s, clip_transforms, fps, batch_size, num_workers,
            image_size, channels, mean, std, faces, cache_dir, workers, on_bad_video, predict_videos, seed,
        )  # fmt: skip

    @property
    def dataset_name(self) -> str:
        return "AFEW"


__all__ = ["AFEW_CLASSES", "AfewDataModule", "VideoFolderDataModule"]
