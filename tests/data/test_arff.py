"""RECOLA gold-standard ARFF: the exact AVEC 2016 format, header variants, missing values, errors, alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoframe.data.arff import align_labels_to_frames, read_arff, read_recola_labels, recola_recordings, write_arff
from emoframe.errors import DataError

AVEC_HEADER = """@relation GoldStandard

@attribute Instance_name string
@attribute frameTime numeric
@attribute GoldStandard numeric

@data

"""


def test_reads_the_exact_avec_format(tmp_path: Path) -> None:
    path = tmp_path / "train_1.arff"
    path.write_text(AVEC_HEADER + "'train_1',0.000000,0.123\n'train_1',0.040000,-0.219000\n'train_1',0.080000,?\n")
    times, values = read_arff(path)
    assert times.dtype == np.float64 and values.dtype == np.float32
    assert times.tolist() == [0.0, 0.04, 0.08]
    assert values[:2].tolist() == pytest.approx([0.123, -0.219])
    assert np.isnan(values[2])


def test_header_variants_comments_quotes_and_extra_attributes(tmp_path: Path) -> None:
    path = tmp_path / "dev_3.arff"
    path.write_text(
        "% written by hand\n@RELATION 'GOLDSTANDARD_arousal'\n\n"
        "@ATTRIBUTE 'Instance_name' STRING\n@Attribute frametime NUMERIC\n"
        '@attribute "GoldStandard" real\n@attribute label numeric\n%comment in the header\n@DATA\n'
        "% comment in the data\n"
        '"dev_3", 0.0 , 0.5,1\n'
        "'dev\\'3',0.04,?,1\n"
        "\n"
        "'dev,3',0.08,-0.25,0\n"
    )
    times, values = read_arff(path)
    assert times.tolist() == [0.0, 0.04, 0.08]
    assert values[0] == 0.5 and np.isnan(values[1]) and values[2] == -0.25


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("'train_1',0.040000", "expected 3 comma-separated values, got 2 values"),
        ("'train_1,0.040000,0.1", "broken quoting"),
        ("'train_1',0.040000,high", r"expected numeric frameTime and GoldStandard \('\?' if missing\)"),
        ("'train_1',?,0.1", "expected numeric frameTime"),
        ("'train_1',0.000000,0.1", "expected frameTime increasing"),
        ("{0 'train_1', 1 0.04}", "expected 3 comma-separated values"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "train_2.arff"
    path.write_text(AVEC_HEADER + "'train_1',0.000000,0.1\n" + row + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_arff(path)
    assert f"{path}:10:" in str(info.value)  # line 10: the second data row


def test_bad_header_and_missing_file(tmp_path: Path) -> None:
    no_value = tmp_path / "a.arff"
    no_value.write_text("@relation x\n@attribute Instance_name string\n@attribute frameTime numeric\n@data\n'a',0,1\n")
    with pytest.raises(DataError, match=r"a\.arff:4: expected an attribute 'GoldStandard' before @data"):
        read_arff(no_value)
    no_data = tmp_path / "b.arff"
    no_data.write_text("@relation x\n@attribute frameTime numeric\n")
    with pytest.raises(DataError, match=r"b\.arff: expected an ARFF header ending in @data"):
        read_arff(no_data)
    junk = tmp_path / "c.arff"
    junk.write_text("time,value\n0,1\n")
    with pytest.raises(DataError, match=r"c\.arff:1: expected @relation, @attribute or @data"):
        read_arff(junk)
    with pytest.raises(DataError, match="cannot read ARFF gold standard"):
        read_arff(tmp_path / "missing.arff")


def test_write_read_round_trip_and_exact_text(tmp_path: Path) -> None:
    times = np.arange(7501) * 0.04  # one 5-minute RECOLA recording
    values = np.sin(times / 7).astype(np.float32)
    values[10] = np.nan
    path = write_arff(tmp_path / "train_1.arff", "train_1", times, values)
    lines = path.read_text().splitlines()
    assert lines[:8] == AVEC_HEADER.splitlines()
    assert lines[8] == "'train_1',0.000000,0.000000" and lines[9] == "'train_1',0.040000,0.005714"
    assert lines[18] == "'train_1',0.400000,?"
    t, v = read_arff(path)
    assert np.allclose(t, times, atol=1e-9)
    assert np.array_equal(np.isnan(v), np.isnan(values))
    assert np.allclose(v[~np.isnan(v)], values[~np.isnan(values)], atol=1e-6)


def test_align_nearest_within_half_period_and_count_unmatched() -> None:
    times = np.arange(10) * 0.04
    values = np.arange(10, dtype=np.float32)
    same = align_labels_to_frames(times, values, times)  # 25 fps video on the label grid: exact values
    assert np.array_equal(same.values, values) and same.unmatched == 0
    frames = np.array([-0.05, -0.02, 0.019, 0.021, 0.09, 0.359, 0.38, 0.381, 1.0])  # 30 fps-like offsets, out of span
    aligned, unmatched = align_labels_to_frames(times, values, frames)
    assert aligned[1:7].tolist() == [0, 0, 1, 2, 9, 9]  # +-half a period (20 ms) included
    assert np.isnan(aligned[[0, 7, 8]]).all() and unmatched == 3
    one, missed = align_labels_to_frames(np.array([1.0]), np.array([5.0]), np.array([0.99, 1.5]), period=0.04)
    assert one[0] == 5.0 and np.isnan(one[1]) and missed == 1
    with pytest.raises(DataError, match="one label time gives no period"):
        align_labels_to_frames(np.array([1.0]), np.array([5.0]), np.array([1.0]))
    with pytest.raises(DataError, match="strictly increasing label times"):
        align_labels_to_frames(np.array([0.0, 0.0]), np.array([1.0, 2.0]), np.array([0.0]))


def test_recola_layout(tmp_path: Path) -> None:
    times = np.arange(50) * 0.04
    for n in (1, 2, 10):
        for dim, scale in (("arousal", 1.0), ("valence", -1.0)):
            write_arff(tmp_path / "ratings_gold_standard" / dim / f"train_{n}.arff", f"train_{n}", times, scale * times)
    write_arff(tmp_path / "ratings_gold_standard" / "arousal" / "dev_1.arff", "dev_1", times, times)
    assert recola_recordings(tmp_path, "train") == ["train_1", "train_2", "train_10"]
    t, v = read_recola_labels(tmp_path, "train_2")
    assert v.shape == (50, 2) and v.dtype == np.float32 and np.allclose(v[:, 1], -t, atol=1e-6)
    with pytest.raises(DataError, match=r"valence[/\\]dev_1\.arff: expected the valence gold standard of dev_1"):
        read_recola_labels(tmp_path, "dev_1")
    with pytest.raises(DataError, match="expected test_<n>.arff files"):
        recola_recordings(tmp_path, "test")
    write_arff(tmp_path / "ratings_gold_standard" / "valence" / "train_1.arff", "train_1", times[:40], times[:40])
    with pytest.raises(DataError, match=r"expected the same frameTime rows as arousal \(50\), got 40"):
        read_recola_labels(tmp_path, "train_1")
