"""Video data by composition: ``recordings`` (sources -> face-track cache -> ``Recording`` objects, with the
bad-input policy), owned by the two sibling datamodule bases ``windows`` (per-frame targets: recola, afew_va,
multilabel_video) and ``clips`` (one label per clip: afew, video_folder); ``base`` holds what both share."""

from emoframe.data.video.base import VideoDataModule, VideoOptions
from emoframe.data.video.clips import UNLABELLED, ClipDataModule, ClipDataset, FrameShuffle, read_frames, sample_frames
from emoframe.data.video.recordings import Recording, Recordings, Source
from emoframe.data.video.windows import WindowDataModule, WindowDataset, WindowOptions, split_by_ratio, window_starts

__all__ = [
    "UNLABELLED",
    "ClipDataModule",
    "ClipDataset",
    "FrameShuffle",
    "Recording",
    "Recordings",
    "Source",
    "VideoDataModule",
    "VideoOptions",
    "WindowDataModule",
    "WindowDataset",
    "WindowOptions",
    "read_frames",
    "sample_frames",
    "split_by_ratio",
    "window_starts",
]
