"""A datamodule for any ``root/<split>/<class>/*.jpg`` tree of face images, mapped onto the 7 emotions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar, Literal, Unpack

import numpy as np

from emoframe.data.base import ImageClassificationDataModule, ImageOptions, SplitArrays
from emoframe.data.common import check_choice, check_class_map, class_index
from emoframe.errors import DataError
from emoframe.files.cache import ArrayCache, folder_fingerprint, walk_files
from emoframe.files.decode import DECODER, decode_files, is_image_name, report_skipped, report_tiny
from emoframe.labels import EMOTIONS
from emoframe.registry import DATAMODULES, TRANSFORMS

READER_VERSION = 2  # 2: the cache holds the empty class folders and tiny pictures it reports


@DATAMODULES.register("image_folder")
class ImageFolderDataModule(ImageClassificationDataModule):
    """Face images in root/<split>/<class>/*.{jpg,png,...}, any size or mode, mapped onto the 7 emotions.

    Every image is converted to 8-bit grayscale (ITU-R 601 luma) and resized to ``image.size`` squared
    without keeping the aspect ratio (the images are expected to be face crops), then cached on disk.
    Class folders named like ``EMOTIONS`` (any case) need no mapping; others need ``class_map``, e.g.
    ``{happiness: happy, contempt: null}`` (``null`` drops a folder). Images may sit in sub-folders of
    a class folder. ``folders: {train: train, val: val, test: test}`` name the split folders (val and test
    may name the same one).

    ``faces:`` (settings of the ``face_crop`` pipeline, e.g. ``{threshold: -0.5, fallback: drop}``)
    detects, aligns and crops the face of each full-size image instead of resizing it; the crops are
    cached under the pipeline's settings and the face counts are reported once per split.
    """

    source_size = None  # arrays are stored at image_size

    moved_keys: ClassVar[dict[str, str]] = {
        **ImageClassificationDataModule.moved_keys,
        "train_split": "folders.train",
        "val_split": "folders.val",
        "test_split": "folders.test",
    }

    def __init__(
        self,
        root: str,
        folders: dict[str, str] | None = None,
        class_map: dict[str, str | None] | None = None,
        cache_dir: str | None = None,
        on_bad_image: Literal["error", "skip"] = "error",
        faces: dict[str, Any] | None = None,
        **options: Unpack[ImageOptions],
    ) -> None:
        check_choice(on_bad_image, "on_bad_image", ("error", "skip"))
        self.root = Path(root).expanduser()
        unknown = sorted(set(folders or {}) - {"train", "val", "test"})
        if unknown:
            raise DataError(f"data.folders.{unknown[0]}: unknown split; expected train, val and test")
        self.split_dirs = {"train": "train", "val": "val", "test": "test", **(folders or {})}
        expected = f"expected {self.root}/<split>/<class>/*.jpg with splits {', '.join(self.split_dirs.values())}"
        if not self.root.is_dir():
            raise DataError(f"Image folder not found at {self.root}: {expected}")
        missing = [s for s in dict.fromkeys(self.split_dirs.values()) if not (self.root / s).is_dir()]
        if missing:
            found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
            raise DataError(
                f"No '{missing[0]}' folder in {self.root}: {expected}; found folders {', '.join(found) or 'none'}"
            )
        self.class_map = check_class_map(class_map)
        super().__init__(**options)
        image_size = self.image.size
        self.cache_dir = cache_dir
        self.on_bad_image = on_bad_image
        self.faces = None
        if faces is not None:  # built now so a typo in data.faces fails before any image is read
            spec = {"name": "face_crop", **faces}
            self.faces = TRANSFORMS.build(spec, "data.faces", **({} if "size" in faces else {"size": image_size}))
            if not self.faces.grayscale:
                raise DataError("data.faces.grayscale: image_folder stores gray images; leave grayscale true")
            if self.faces.size != image_size:
                raise DataError(f"data.faces.size: {self.faces.size} differs from data.image.size {image_size}")

    def prepare_data(self) -> None:
        """Decode once and fill the on-disk cache (Lightning runs this on one process per node)."""
        for split_dir in dict.fromkeys(self.split_dirs.values()):
            self._load_folder(split_dir)

    def load_splits(self) -> dict[str, SplitArrays]:
        loaded = {d: self._load_folder(d) for d in dict.fromkeys(self.split_dirs.values())}
        return {split: loaded[d] for split, d in self.split_dirs.items()}

    def label_of(self, folder: str, where: Path) -> int | None:
        """The EMOTIONS index for a class folder, ``None`` if mapped to null, else a one-line error."""
        try:
            return class_index(folder, self.class_map)
        except KeyError:
            raise DataError(
                f"Class folder '{folder}' in {where} is not an emotion name: add it to class_map "
                f"(e.g. class_map: {{{folder}: <name>}} or null to drop it); "
                f"accepted names: {', '.join(EMOTIONS)}"
            ) from None

    def _report_counts(self, hit: dict[str, Any], base: Path, used: int, cached: bool) -> None:
        """Empty class folders and tiny upscaled pictures: counted in one line each, never silently."""
        where = f"{base} (cached)" if cached else str(base)
        report_empty([str(f) for f in hit["empty"]], used, where)
        total = len(hit["names"]) + len(hit["skipped"])
        report_tiny([str(t) for t in hit["tiny"]], total, where, self.image.size)

    def _load_folder(self, split_dir: str) -> SplitArrays:
        """Decode (or read from cache) the mapped class folders of one split folder."""
        base = self.root / split_dir
        folders = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not folders:
            raise DataError(f"No class folders in {base}: expected {base}/<class>/*.jpg")
        labels_of = {f: self.label_of(f, base) for f in folders}
        used = [f for f in folders if labels_of[f] is not None]
        fingerprint = folder_fingerprint(base, keep=lambda rel: rel.split("/", 1)[0] in used)
        faces = self.faces.settings() if self.faces is not None else None
        parts = (READER_VERSION, "image_folder", fingerprint, used, DECODER, self.image.size, faces)
        cache = ArrayCache(self.cache_dir)
        hit = cache.get("image-folder", parts)
        cached = hit is not None
        if hit is None:
            files = {f: _image_files(base, f) for f in used}
            rels = sorted(r for f in used for r in files[f])
            tiny: list[str] = []
            images, kept, skipped = decode_files(
                rels,
                lambda rel: (base / rel).read_bytes(),
                size=self.image.size,
                resize=True,
                on_bad_image=self.on_bad_image,
                where=str(base),
                desc=f"Decoding {split_dir}" + (" (faces)" if self.faces is not None else ""),
                prepare=self.faces,
                tiny=tiny,
            )
            names = np.array(rels, dtype=str)[kept]
            hit = {"images": images, "names": names, "skipped": np.asarray(skipped, dtype=str)}
            hit["empty"] = np.asarray([f for f in used if not files[f]], dtype=str)
            hit["tiny"] = np.asarray(sorted(tiny), dtype=str)
            if self.faces is not None:
                hit["face_report"] = np.asarray(self.faces.report(str(base)))
                self.faces.stats.clear()
            cache.put("image-folder", parts, hit)
        elif len(hit["skipped"]):
            if self.on_bad_image == "error":
                raise DataError(
                    f"Bad image {hit['skipped'][0]} in {base} (found by an earlier run with "
                    "on_bad_image: skip); fix it or set on_bad_image: skip"
                )
            report_skipped(list(hit["skipped"]), len(hit["names"]) + len(hit["skipped"]), f"{base} (cached)")
        if "face_report" in hit:
            print(f"{hit['face_report']} (cached)", file=sys.stderr, flush=True)
        self._report_counts(hit, base, len(used), cached)
        names = hit["names"]
        labels = np.array([labels_of[str(n).split("/", 1)[0]] for n in names], dtype=np.int64)
        prefixed = np.char.add(f"{split_dir}/", names.astype(str)) if len(names) else names
        return hit["images"], labels, prefixed


def report_empty(empty: list[str], used: int, where: str) -> None:
    """The one line for class folders without a single image: their classes have no example in this split."""
    if empty:
        print(
            f"{len(empty)} of {used} class folders in {where} hold no images: {', '.join(empty)} "
            "(those classes have no examples in this split)",
            file=sys.stderr,
            flush=True,
        )


def _image_files(base: Path, folder: str) -> list[str]:
    """Image paths (relative to ``base``, POSIX) under one class folder, sub-folders included."""
    return [f"{folder}/{rel}" for rel in walk_files(base / folder) if is_image_name(rel)]
