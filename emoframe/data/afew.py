"""Clip-classification layouts: EmotiW's AFEW (``afew``) and any ``root/<split>/<class>/<clip>`` tree
(``video_folder``). Sampling, batches, faces and bad-input handling are ``emoframe.data.video.clips``'.

AFEW (EmotiW audio-video sub-challenge):

    <root>/Train_AFEW/<Emotion>/<clip>.avi     Emotion: Angry Disgust Fear Happy Neutral Sad Surprise
    <root>/Val_AFEW/<Emotion>/<clip>.avi

A clip may instead be a folder of frame images (``<Emotion>/<clip>/<frame>.png``, such as the face frames
EmotiW distributes); frame folders play at ``fps``. Val_AFEW is the validation split and, unless
``test_dir`` names another labelled folder, the test split too: AFEW's test labels are not public
(``Test_AFEW/`` is a flat folder of unlabelled clips for ``emoframe predict``).
"""

from __future__ import annotations

from typing import ClassVar

from emoframe.data.video.clips import ClipDataModule
from emoframe.registry import DATAMODULES

AFEW_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


@DATAMODULES.register("video_folder")
class VideoFolderDataModule(ClipDataModule):
    """Video clips in root/<split>/<class>/<clip>.<ext> (or <clip>/ frame folders), one emotion per class folder.

    ``folders: {train: train, val: val, test: test}`` name the split folders (val and test may name the same
    one). Class folders named like ``EMOTIONS`` (any case) need no mapping; others need ``class_map``, e.g.
    ``{joy: happy, contempt: null}`` (``null`` drops a folder), as for ``image_folder``.
    """

    @property
    def layout(self) -> str:
        return (
            f"{self.root}/<split>/<class>/<clip>.mp4 (or <clip>/ folders of frame images) with split folders "
            f"{', '.join(dict.fromkeys(self.split_dirs.values()))}"
        )


@DATAMODULES.register("afew")
class AfewDataModule(ClipDataModule):
    """AFEW (EmotiW): Train_AFEW/<Emotion>/<clip>.avi for training, Val_AFEW for validation and testing.

    ``folders: {train: Train_AFEW, val: Val_AFEW, test: null}``: ``test`` names another labelled folder in the
    same layout to test on (AFEW's own test labels are not public; null: the val folder). Clips may also be
    folders of frame images. ``class_map`` is as for ``video_folder``.
    """

    moved_keys: ClassVar[dict[str, str]] = {
        **ClipDataModule.moved_keys,
        "train_dir": "folders.train",
        "val_dir": "folders.val",
        "test_dir": "folders.test",
    }
    default_folders: ClassVar[dict[str, str | None]] = {"train": "Train_AFEW", "val": "Val_AFEW", "test": None}

    @property
    def layout(self) -> str:
        train, val = self.split_dirs["train"], self.split_dirs["val"]
        return (
            f"{self.root}/{train}/<Emotion>/<clip>.avi and {self.root}/{val}/<Emotion>/<clip>.avi (EmotiW layout; "
            f"<Emotion> one of {' '.join(AFEW_CLASSES)}; a clip may also be a folder of frame images); "
            "set AFEW_ROOT or data.root"
        )

    @property
    def dataset_name(self) -> str:
        return "AFEW"


__all__ = ["AFEW_CLASSES", "AfewDataModule", "VideoFolderDataModule"]
