"""FER2013 readers: the Kaggle zip, its extracted folder and fer2013.csv give identical arrays with the
published counts, and the fer28/fer32 protocols give the published split sizes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emoframe.data import Fer2013Arrays, Fer2013DataModule, load_fer2013
from emoframe.data.fer2013_sources import USAGES, find_source
from emoframe.labels import EMOTIONS

# From the data README: Training / PublicTest / PrivateTest images per class.
README_COUNTS = {
    "angry": (3995, 467, 491),
    "disgust": (436, 56, 55),
    "fear": (4097, 496, 528),
    "happy": (7215, 895, 879),
    "neutral": (4965, 607, 626),
    "sad": (4830, 653, 594),
    "surprise": (3171, 415, 416),
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fer-cache")


@pytest.fixture(scope="module")
def from_zip(fer2013_zip: Path, cache_dir: Path) -> Fer2013Arrays:
    return load_fer2013(fer2013_zip, cache_dir, progress=False)


@pytest.fixture(scope="module")
def extracted(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("extracted")
    with zipfile.ZipFile(fer2013_zip) as z:
        z.extractall(root)
    return root


@pytest.fixture(scope="module")
def csv_file(from_zip: Fer2013Arrays, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fer2013.csv made from the JPEGs, rows in the (usage, file name) order the image readers use."""
    path = tmp_path_factory.mktemp("csv") / "fer2013.csv"
    tokens = [str(v) for v in range(256)]
    with path.open("w", newline="") as f:
        f.write("emotion,pixels,Usage\n")
        for image, label, usage in zip(from_zip.images, from_zip.labels, from_zip.usage):
            pixels = " ".join([tokens[v] for v in image.ravel().tolist()])
            f.write(f"{label},{pixels},{USAGES[usage]}\n")
    return path


def assert_same(a: Fer2013Arrays, b: Fer2013Arrays, names: bool = True) -> None:
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.usage, b.usage)
    if names:
        np.testing.assert_array_equal(a.names, b.names)


def test_zip_has_the_published_counts(from_zip: Fer2013Arrays) -> None:
    assert from_zip.images.shape == (35887, 48, 48) and from_zip.images.dtype == np.uint8
    assert from_zip.labels.dtype == np.int64 and from_zip.usage.dtype == np.uint8
    assert from_zip.skipped == []
    assert np.bincount(from_zip.usage).tolist() == [28709, 3589, 3589]
    expected = np.array([README_COUNTS[e] for e in EMOTIONS]).T  # (usage, class)
    np.testing.assert_array_equal(from_zip.counts(), expected)


def test_rows_are_ordered_and_labelled_from_the_paths(from_zip: Fer2013Arrays) -> None:
    names = [str(n) for n in from_zip.names]
    keys = [(int(u), n.rsplit("/", 1)[1], n) for u, n in zip(from_zip.usage, names)]
    assert keys == sorted(keys)
    assert len(set(names)) == len(names)  # two Training file names occur in two class folders
    for name, label, usage in zip(names, from_zip.labels, from_zip.usage):
        _split, emotion, file = name.split("/")
        assert emotion == EMOTIONS[label] and file.startswith(USAGES[usage] + "_")


def test_pixels_are_the_jpeg_pixels(from_zip: Fer2013Arrays, fer2013_zip: Path) -> None:
    with zipfile.ZipFile(fer2013_zip) as z:
        for i in np.random.default_rng(0).choice(len(from_zip), 20, replace=False):
            expected = np.asarray(Image.open(io.BytesIO(z.read(str(from_zip.names[i])))))
            np.testing.assert_array_equal(from_zip.images[i], expected)


@pytest.mark.slow
def test_extracted_folder_gives_identical_arrays(from_zip: Fer2013Arrays, extracted: Path, cache_dir: Path) -> None:
    assert find_source(extracted).kind == "folder"
    assert_same(load_fer2013(extracted, cache_dir, progress=False), from_zip)


@pytest.mark.slow
def test_csv_gives_identical_arrays(from_zip: Fer2013Arrays, csv_file: Path, cache_dir: Path) -> None:
    from_csv = load_fer2013(csv_file, cache_dir, progress=False)
    assert_same(from_csv, from_zip, names=False)
    assert from_csv.names[0] == "row_0" and from_csv.names[-1] == f"row_{len(from_zip) - 1}"
    # a folder holding fer2013.csv is the CSV form too
    assert find_source(csv_file.parent).kind == "csv"


def test_csv_rows_are_ordered_by_usage_then_row(tmp_path: Path) -> None:
    pixels = " ".join(["7"] * 2304)
    rows = [(3, "PrivateTest"), (0, "Training"), (6, "PublicTest"), (2, "Training")]
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{pixels},{u}\n" for e, u in rows))
    arrays = load_fer2013(path, tmp_path / "cache", progress=False)
    assert arrays.names.tolist() == ["row_1", "row_3", "row_2", "row_0"]
    assert arrays.labels.tolist() == [0, 2, 6, 3] and arrays.usage.tolist() == [0, 0, 1, 2]
    assert (arrays.images == 7).all()


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_one_top_level_folder_is_accepted(kind: str, write_fer, tmp_path: Path) -> None:
    plain = load_fer2013(write_fer("zip"), tmp_path / "c1", progress=False)
    nested = write_fer(kind, prefix="fer2013/")
    assert_same(load_fer2013(nested, tmp_path / "c2", progress=False), plain)
    assert len(plain) == 42 and np.bincount(plain.usage).tolist() == [14, 14, 14]


@pytest.mark.parametrize(("variant", "sizes"), [("fer28", (28709, 3589, 3589)), ("fer32", (32298, 3589, 3589))])
def test_protocol_split_sizes(variant: str, sizes: tuple[int, int, int], from_zip, fer2013_zip, cache_dir) -> None:
    dm = Fer2013DataModule(root=str(fer2013_zip), variant=variant, cache_dir=str(cache_dir), loader={"num_workers": 0})
    dm.setup("fit")
    assert tuple(len(dm.dataset(s)) for s in ("train", "val", "test")) == sizes
    counts = from_zip.counts()
    train_counts = counts[0] if variant == "fer28" else counts[0] + counts[1]
    np.testing.assert_array_equal(dm.train_label_counts, train_counts)
    if variant == "fer32":
        assert dm.dataset("val") is dm.dataset("test")
        np.testing.assert_array_equal(dm.dataset("test").labels, from_zip.labels[from_zip.usage == 2])
