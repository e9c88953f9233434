"""emoframe's data layer: FER2013 and image-folder datamodules, their readers, cache and transforms; video
datamodules over face-track recordings (``emoframe.data.video``); what all share (``emoframe.data.common``).

Importing this package registers the datamodules (``fer2013``, ``image_folder``, ``recola``, ``afew_va``,
``afew``, ``video_folder``, ``multilabel_video``) in ``emoframe.registry.DATAMODULES``.
"""

from emoframe.data.afew import AfewDataModule, VideoFolderDataModule
from emoframe.data.afew_va import AfewVaDataModule
from emoframe.data.base import ImageClassificationDataModule
from emoframe.data.datasets import ImageArrayDataset, stratified_subset
from emoframe.data.fer2013 import Fer2013DataModule
from emoframe.data.fer2013_sources import USAGES, Fer2013Arrays, load_fer2013
from emoframe.data.image_folder import ImageFolderDataModule
from emoframe.data.multilabel_video import MultilabelVideoDataModule
from emoframe.data.recola import RecolaDataModule
from emoframe.data.transforms import ImageTransform, build_augment, build_transform
from emoframe.errors import DataError
from emoframe.files.cache import ArrayCache, default_cache_dir

__all__ = [
    "USAGES",
    "AfewDataModule",
    "AfewVaDataModule",
    "ArrayCache",
    "DataError",
    "Fer2013Arrays",
    "Fer2013DataModule",
    "ImageArrayDataset",
    "ImageClassificationDataModule",
    "ImageFolderDataModule",
    "ImageTransform",
    "MultilabelVideoDataModule",
    "RecolaDataModule",
    "VideoFolderDataModule",
    "build_augment",
    "build_transform",
    "default_cache_dir",
    "load_fer2013",
    "stratified_subset",
]
