"""Where the clip datamodule used to live: its names, re-exported from ``emoframe.data.video.clips``."""

from emoframe.data.video.clips import (
    SAMPLINGS,
    UNLABELLED,
    ClipDataModule,
    ClipDataset,
    ClipTransform,
    FrameShuffle,
    Sampling,
    expand_clips,
    read_frames,
    sample_frames,
)

ClipClassificationDataModule = ClipDataModule
"""The base of the clip datamodules (``afew``, ``video_folder``), by its former name."""

__all__ = [
    "SAMPLINGS",
    "UNLABELLED",
    "ClipClassificationDataModule",
    "ClipDataModule",
    "ClipDataset",
    "ClipTransform",
    "FrameShuffle",
    "Sampling",
    "expand_clips",
    "read_frames",
    "sample_frames",
]
