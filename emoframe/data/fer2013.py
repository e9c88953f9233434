"""The FER2013 datamodule (official fer28 protocol, or the fer32 split of Ng et al.)."""

from __future__ import annotations

from typing import Literal, Unpack

from emoframe.data.base import ImageClassificationDataModule, ImageOptions, SplitArrays
from emoframe.data.common import check_choice
from emoframe.data.fer2013_sources import Fer2013Arrays, find_source, load_fer2013
from emoframe.registry import DATAMODULES


@DATAMODULES.register("fer2013")
class Fer2013DataModule(ImageClassificationDataModule):
    """FER2013: 35,887 48x48 grayscale faces, 7 emotions; Kaggle zip, extracted folder or fer2013.csv.

    ``variant="fer28"`` is the official protocol: train on Training (28,709), validate on PublicTest
    (3,589), report PrivateTest (3,589). ``"fer32"`` (Ng et al., 2015) trains on Training+PublicTest
    (32,298) and validates and tests on PrivateTest. Decoded arrays are cached (see ``cache_dir``), so
    only the first run decodes JPEGs. Construction only checks that ``root`` exists; data is read in
    ``prepare_data``/``setup``. ``features`` (e.g. ``[{name: hog}, {name: landmarks68}]``) adds Kumari's
    hand-crafted feature vector to every item: ``(image, features, label)``.
    """

    def __init__(
        self,
        root: str,
        variant: Literal["fer28", "fer32"] = "fer28",
        cache_dir: str | None = None,
        on_bad_image: Literal["error", "skip"] = "error",
        **options: Unpack[ImageOptions],
    ) -> None:
        check_choice(variant, "variant", ("fer28", "fer32"))
        check_choice(on_bad_image, "on_bad_image", ("error", "skip"))
        find_source(root)  # one-line error now if root is missing or of another layout (no data read)
        super().__init__(**options)
        self.root = root
        self.variant = variant
        self.cache_dir = cache_dir
        self.on_bad_image = on_bad_image
        self._prepared: Fer2013Arrays | None = None

    def prepare_data(self) -> None:
        """Decode once and fill the on-disk cache (Lightning runs this on one process per node)."""
        self._prepared = self._load()

    def load_splits(self) -> dict[str, SplitArrays]:
        arrays, self._prepared = self._prepared or self._load(), None
        if self.variant == "fer28":
            return {
                "train": arrays.select("Training"),
                "val": arrays.select("PublicTest"),
                "test": arrays.select("PrivateTest"),
            }
        private = arrays.select("PrivateTest")
        return {"train": arrays.select("Training", "PublicTest"), "val": private, "test": private}

    def _load(self) -> Fer2013Arrays:
        return load_fer2013(self.root, self.cache_dir, self.on_bad_image)
