"""Every bad input gives one clear line saying what was expected and where; skip mode keeps the rest."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emoframe.data import DataError, Fer2013DataModule, ImageFolderDataModule, load_fer2013
from emoframe.registry import DATAMODULES, RecipeError

PIXELS = " ".join(["128"] * 2304)


def raises_one_line(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def jpeg(size: tuple[int, int] = (48, 48), mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, "JPEG")
    return buf.getvalue()


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# --- where the data is ---------------------------------------------------------------------------
def test_missing_path(tmp_path: Path) -> None:
    expected = r"FER2013 not found at .*nope\.zip: expected fer2013\.zip \(Kaggle layout train/<class>/\*\.jpg"
    raises_one_line(expected, load_fer2013, tmp_path / "nope.zip")
    raises_one_line(expected, Fer2013DataModule, root=str(tmp_path / "nope.zip"))
    with pytest.raises(RecipeError, match="FER2013 not found"):  # the CLI reports it like any recipe error
        DATAMODULES.build({"name": "fer2013", "root": str(tmp_path / "nope.zip")}, where="data")


def test_other_file_type(tmp_path: Path) -> None:
    (tmp_path / "fer2013.tar").write_bytes(b"x")
    raises_one_line(r"neither a \.zip nor a \.csv", load_fer2013, tmp_path / "fer2013.tar")


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "fer2013.zip").write_bytes(b"not a zip at all")
    raises_one_line(r"fer2013\.zip is not a readable zip", load_fer2013, tmp_path / "fer2013.zip", tmp_path)


def test_zip_of_another_layout(write_fer) -> None:
    path = write_fer("zip", {"images/happy/1.jpg": jpeg(), "labels.txt": b"x"})
    raises_one_line(
        r"is not a FER2013 archive: expected train/<class>/Training_\*\.jpg and "
        r"test/<class>/\{PublicTest,PrivateTest\}_\*\.jpg .*found top-level entries images/, labels\.txt",
        load_fer2013,
        path,
    )


def test_folder_of_another_layout(write_fer) -> None:
    root = write_fer("folder", {"images/happy/1.jpg": jpeg(), "labels.txt": b"x"})
    raises_one_line(
        r"is not a FER2013 folder: expected train/<class>/Training_\*\.jpg .* fer2013\.csv or fer2013\.zip; "
        r"found images, labels\.txt",
        load_fer2013,
        root,
    )


@pytest.mark.parametrize(
    "bad", ["train/contempt/Training_1.jpg", "train/happy/PublicTest_1.jpg", "val/happy/Training_1.jpg"]
)
def test_unexpected_image_in_the_layout(bad: str, write_fer, fer_sample) -> None:
    path = write_fer("zip", {**fer_sample, bad: jpeg()})
    raises_one_line(f"Unexpected image {bad} in .*: expected .* with <class> one of angry, disgust", load_fer2013, path)


# --- the CSV form --------------------------------------------------------------------------------
def test_csv_with_other_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "fer2013.csv", "emotion,image,split", [f"0,{PIXELS},Training"])
    raises_one_line(
        "fer2013.csv has columns emotion,image,split: expected emotion,pixels,Usage",
        load_fer2013,
        path,
        tmp_path,
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "0," + " ".join(["1"] * 2300) + ",Training",
            "line 3: pixels has 2300 values, expected 2304 \\(48x48\\)",
        ),
        (
            "0," + PIXELS.replace("128", "x", 1) + ",Training",
            "line 3: pixels is not space-separated integers",
        ),
        ("0," + PIXELS.replace("128", "256", 1) + ",Training", "line 3: pixels outside 0-255"),
        (f"7,{PIXELS},Training", "line 3: emotion '7', expected an id 0-6"),
        (
            f"0,{PIXELS},Validation",
            "line 3: Usage 'Validation', expected one of Training, PublicTest, PrivateTest",
        ),
        (f"0,{PIXELS}", "line 3: 2 fields, expected 3"),
    ],
)
def test_bad_csv_row(row: str, message: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "fer2013.csv", "emotion,pixels,Usage", [f"3,{PIXELS},Training", row])
    raises_one_line(message, load_fer2013, path, tmp_path)


def test_csv_skip_mode_drops_bad_rows(tmp_path: Path, capsys) -> None:
    short = "0," + " ".join(["1"] * 10) + ",PublicTest"
    path = write_csv(tmp_path / "fer2013.csv", "emotion,pixels,Usage", [f"3,{PIXELS},Training", short])
    arrays = load_fer2013(path, tmp_path, on_bad_image="skip", progress=False)
    assert len(arrays) == 1 and arrays.skipped == ["row_1"]
    assert capsys.readouterr().err.count("Skipped 1 of 2 images") == 1


# --- bad images -----------------------------------------------------------------------------------
BAD_IMAGES = {
    "garbage": (b"definitely not a jpeg", "not a decodable image"),
    "truncated": (jpeg()[:300], "not a decodable image|unreadable"),
    "64x64": (jpeg((64, 64)), "is 64x64, expected 48x48"),
}


@pytest.mark.parametrize("kind", ["zip", "folder"])
@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_is_fatal_by_default(case: str, kind: str, write_fer, fer_sample, tmp_path: Path) -> None:
    data, reason = BAD_IMAGES[case]
    root = write_fer(kind, {**fer_sample, "train/happy/Training_bad.jpg": data})
    raises_one_line(
        rf"Bad image train/happy/Training_bad\.jpg in .*: ({reason}).*on_bad_image: skip",
        load_fer2013,
        root,
        tmp_path / "cache",
        progress=False,
    )
    assert not list((tmp_path / "cache").glob("*.npz"))  # nothing cached from a failed read


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_skip_mode_counts_bad_images_and_keeps_the_rest(kind: str, write_fer, fer_sample, tmp_path, capsys) -> None:
    bad = {f"train/happy/Training_bad{i}.jpg": data for i, (data, _) in enumerate(BAD_IMAGES.values())}
    root = write_fer(kind, {**fer_sample, **bad})
    arrays = load_fer2013(root, tmp_path / "cache", on_bad_image="skip", progress=False)
    assert sorted(arrays.skipped) == sorted(bad) and len(arrays) == len(fer_sample)
    assert not set(arrays.names) & set(bad)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line for line in lines if "Skipped" in line] == [lines[-1]]
    assert f"Skipped 3 of {len(fer_sample) + 3} images" in lines[-1]
    # The cached result remembers the skips: "skip" reports them again, "error" refuses them.
    again = load_fer2013(root, tmp_path / "cache", on_bad_image="skip", progress=False)
    assert again.skipped == arrays.skipped
    raises_one_line("Bad image train/happy/Training_bad", load_fer2013, root, tmp_path / "cache", progress=False)


def test_bad_on_bad_image_value(write_fer) -> None:
    raises_one_line("on_bad_image must be 'error' or 'skip'", load_fer2013, write_fer("zip"), on_bad_image="warn")


# --- datamodule arguments ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": {"channels": 2}}, r"data.image.channels: expected 1 \(gray\) or 3 \(RGB\), got 2"),
        ({"variant": "fer30"}, "data.variant: expected 'fer28' or 'fer32', got 'fer30'"),
        ({"on_bad_image": "warn"}, "data.on_bad_image: expected 'error' or 'skip'"),
        ({"loader": {"batch_size": 0}}, "data.loader.batch_size: expected >= 1 and <= 65536, got 0"),
        ({"subset": 0}, "data.subset: expected None or >= 1, got 0"),
        ({"image": {"std": 0.0}}, "data.image.std: must be > 0"),
        ({"image": {"mean": [0.5, 0.5]}}, r"data.image.mean: expected one number or 1 \(one per channel\)"),
    ],
)
def test_bad_datamodule_arguments(kwargs: dict, message: str, write_fer) -> None:
    with pytest.raises(RecipeError, match=message) as info:
        Fer2013DataModule(root=str(write_fer("zip")), **kwargs)
    assert "\n" not in str(info.value)


def test_construction_reads_no_data(write_fer, monkeypatch: pytest.MonkeyPatch) -> None:
    import emoframe.data.fer2013 as fer_mod

    monkeypatch.setattr(fer_mod, "load_fer2013", lambda *a, **k: pytest.fail("read data in __init__"))
    Fer2013DataModule(root=str(write_fer("zip")))


# --- image folders -------------------------------------------------------------------------------
def image_tree(root: Path, classes: list[str], splits: tuple[str, ...] = ("train", "val", "test")) -> Path:
    for split in splits:
        for c in classes:
            (root / split / c).mkdir(parents=True)
            (root / split / c / "a.jpg").write_bytes(jpeg((64, 64), "RGB"))
    return root


def test_image_folder_missing_root_or_split(tmp_path: Path) -> None:
    raises_one_line(
        r"Image folder not found at .*nope: expected .*/<split>/<class>/\*\.jpg",
        ImageFolderDataModule,
        root=str(tmp_path / "nope"),
    )
    root = image_tree(tmp_path / "faces", ["happy"], splits=("train", "test"))
    raises_one_line(
        "No 'val' folder in .*faces: expected .* found folders test, train",
        ImageFolderDataModule,
        root=str(root),
    )


def test_image_folder_unmapped_class(tmp_path: Path) -> None:
    root = image_tree(tmp_path / "faces", ["happiness", "sad"])
    dm = ImageFolderDataModule(root=str(root), loader={"num_workers": 0})
    raises_one_line(
        r"Class folder 'happiness' in .*train is not an emotion name: add it to class_map .* "
        "accepted names: angry, disgust, fear, happy, sad, surprise, neutral",
        dm.setup,
    )
    raises_one_line(
        "data.class_map.happiness: 'joy' is not an emotion",
        ImageFolderDataModule,
        root=str(root),
        class_map={"happiness": "joy"},
    )
    assert np.array_equal(
        ImageFolderDataModule(
            root=str(root), class_map={"happiness": "happy"}, loader={"num_workers": 0}
        ).train_label_counts,
        [0, 0, 0, 1, 1, 0, 0],
    )
