"""Hand-crafted face features (Kumari's HOG and dlib landmarks), extracted once and cached on disk.

Importing this package registers the extractors in ``emoframe.registry.FEATURES``.
"""

from emoframe.features import hog, landmarks  # noqa: F401  (registration)
from emoframe.features.base import FeatureExtractor, check_images, resize_batch
from emoframe.features.extract import Extracted, extract_features, images_fingerprint
from emoframe.features.hog import HogFeatures
from emoframe.features.landmarks import LandmarkFeatures
from emoframe.registry import FEATURES, RecipeError

__all__ = [
    "Extracted",
    "FeatureExtractor",
    "HogFeatures",
    "LandmarkFeatures",
    "build_extractors",
    "check_images",
    "extract_features",
    "images_fingerprint",
    "resize_batch",
]


def build_extractors(specs: list[dict] | None, where: str = "data.features") -> list[FeatureExtractor]:
    """Extractors from recipe mappings (``[{name: hog}, {name: landmarks68}]``), checked before any data is read."""
    if specs is None:
        return []
    if not isinstance(specs, (list, tuple)) or not specs:
        raise RecipeError(f"{where}: expected a non-empty list of extractors such as [{{name: hog}}], got {specs!r}")
    extractors = [FEATURES.build(spec, f"{where}[{i}]") for i, spec in enumerate(specs)]
    for i, extractor in enumerate(extractors):
        if not isinstance(extractor, FeatureExtractor):
            raise RecipeError(f"{where}[{i}]: {type(extractor).__name__} is not a FeatureExtractor subclass")
    names = [e.name for e in extractors]
    if len(set(names)) != len(names):
        raise RecipeError(f"{where}: each extractor may appear once, got {', '.join(names)}")
    return extractors
