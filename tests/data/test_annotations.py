"""Multi-label annotation tables: format, vote handling and every kind of bad row (no data files needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoframe.data.annotations import frame_targets, read_annotations
from emoframe.data.multilabel_video import check_subject_independent, split_videos
from emoframe.errors import DataError

HEADER = "video,frame,participant,neutral,happy,sad"


def write(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_labels_come_from_the_header_and_rows_are_grouped_per_video(tmp_path: Path) -> None:
    path = write(tmp_path, "v2,1,p2,0,1,0", "v1,3,p1,1,0,0", "v1,0,p1,0,1,1", "v2,0,p2,1,0,0")
    table = read_annotations(path)
    assert table.labels == ["neutral", "happy", "sad"]
    assert sorted(table.videos) == ["v1", "v2"]
    v1 = table.videos["v1"]
    assert v1.participant == "p1"
    np.testing.assert_array_equal(v1.index, [0, 3])  # sorted by frame
    np.testing.assert_array_equal(v1.values, [[0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(v1.lines, [4, 3])  # table lines, header = 1
    assert not table.issues


def test_numeric_ids_stay_strings(tmp_path: Path) -> None:
    """Video '007' must not become 7: ids are read as text."""
    table = read_annotations(write(tmp_path, "007,0,0012,1,0,0"))
    assert list(table.videos) == ["007"]
    assert table.videos["007"].participant == "0012"


def test_parquet_reads_the_same_as_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = ["a,0,p1,5,2,0", "a,1,p1,1,6,4", "b,0,p2,0,0,7"]
    from_csv = read_annotations(write(tmp_path, *rows), votes="majority", raters=7)
    cells = [r.split(",") for r in rows]
    table = pa.table(
        {
            "video": [c[0] for c in cells],
            "frame": [int(c[1]) for c in cells],
            "participant": [c[2] for c in cells],
            **{name: [int(c[3 + i]) for c in cells] for i, name in enumerate(["neutral", "happy", "sad"])},
        }
    )
    pq.write_table(table, tmp_path / "labels.parquet")
    from_parquet = read_annotations(tmp_path / "labels.parquet", votes="majority", raters=7)
    assert from_parquet.labels == from_csv.labels
    for video in ("a", "b"):
        np.testing.assert_array_equal(from_parquet.videos[video].values, from_csv.videos[video].values)
        np.testing.assert_array_equal(from_parquet.videos[video].index, from_csv.videos[video].index)


@pytest.mark.parametrize(
    ("mode", "options", "expected"),
    [
        ("majority", {"raters": 7}, [[1, 0, 0], [0, 1, 0], [0, 1, 1]]),  # more than 3.5 of 7 votes
        ("threshold", {"vote_threshold": 3}, [[1, 0, 1], [1, 1, 0], [0, 1, 1]]),
        ("soft", {"raters": 7}, [[5 / 7, 0, 3 / 7], [3 / 7, 4 / 7, 0], [0, 7 / 7, 4 / 7]]),
    ],
)
def test_votes_become_targets(tmp_path: Path, mode: str, options: dict, expected: list) -> None:
    path = write(tmp_path, "v,0,p,5,0,3", "v,1,p,3,4,0", "v,2,p,0,7,4")
    table = read_annotations(path, votes=mode, **options)
    np.testing.assert_allclose(table.videos["v"].values, expected, rtol=1e-6)


def test_vote_options_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0,p,5,0,3")
    with pytest.raises(DataError, match=r"data.table.raters: votes: majority needs the number of raters"):
        read_annotations(path, votes="majority")
    with pytest.raises(DataError, match=r"data.table.votes: expected binary, majority, threshold or soft"):
        read_annotations(path, votes="mean")


def test_a_label_in_the_table_but_not_in_the_list_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0,p,1,0,0")
    with pytest.raises(
        DataError, match=r"column 'sad' is a label in the table but not in data.labels \[neutral, happy\]"
    ):
        read_annotations(path, labels=["neutral", "happy"])
    table = read_annotations(path, labels=["neutral", "happy"], ignore_columns=["sad"])
    assert table.labels == ["neutral", "happy"]
    with pytest.raises(DataError, match=r"data.labels names 'anger', which is not a column"):
        read_annotations(path, labels=["neutral", "happy", "sad", "anger"])


def test_a_missing_participant_is_reported_with_its_line_or_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0,p,1,0,0", "v,1,,0,1,0", "w,0,,0,1,0", "w,1,q,0,0,1")
    with pytest.raises(DataError, match=r"labels.csv:3: no participant\. .*data.table.on_bad_rows: skip"):
        read_annotations(path)
    table = read_annotations(path, on_bad_rows="skip")
    assert table.issues["rows with no participant"] == 2
    assert table.first["rows with no participant"].endswith("labels.csv:3")
    assert len(table.videos["v"].index) == 1 and len(table.videos["w"].index) == 1
    assert "2 rows with no participant (first:" in table.report()


def test_no_participant_column_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0,1,0,0", header="video,frame,neutral,happy,sad")
    with pytest.raises(DataError, match=r"no 'participant' column; header is video, frame, neutral, happy, sad"):
        read_annotations(path)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("v,x,p,1,0,0", "a frame that is not an index >= 0"),
        ("v,-1,p,1,0,0", "a frame that is not an index >= 0"),
        ("v,1,p,1,,0", "a label cell that is empty or not a number"),
        ("v,1,p,1,yes,0", "a label cell that is empty or not a number"),
        ("v,1,p,2,0,0", r"a label value other than 0 or 1 \(votes: binary\)"),
        ("v,0,p,0,1,0", r"a repeated \(video, frame\)"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: str, reason: str) -> None:
    path = write(tmp_path, "v,0,p,1,0,0", row)
    with pytest.raises(DataError, match=rf"labels.csv:3: {reason}"):
        read_annotations(path)
    table = read_annotations(path, on_bad_rows="skip")
    assert sum(table.issues.values()) == 1  # counted, not silently dropped
    assert len(table.videos["v"].index) == 1


def test_more_votes_than_raters_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0,p,8,0,0")
    with pytest.raises(DataError, match=r"labels.csv:2: more votes than data.table.raters \(7\)"):
        read_annotations(path, votes="majority", raters=7)


def test_all_zero_rows_skip_keep_or_error(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0,p,1,0,0", "v,1,p,0,0,0", "v,2,p,0,0,0", "v,3,p,0,1,0")
    skipped = read_annotations(path)  # default: left unlabelled and counted
    key = "rows with no label set, left unlabelled (data.table.empty_rows: skip)"
    assert skipped.issues[key] == 2 and skipped.first[key].endswith("labels.csv:3")
    values = skipped.videos["v"].values
    assert np.isnan(values[1:3]).all() and np.isfinite(values[[0, 3]]).all()
    kept = read_annotations(path, empty_rows="keep")
    np.testing.assert_array_equal(kept.videos["v"].values[1:3], 0.0)
    assert not kept.issues
    with pytest.raises(DataError, match=r"labels.csv:3: no label set in this row \(data.table.empty_rows: error\)"):
        read_annotations(path, empty_rows="error")


def test_a_majority_below_threshold_row_is_an_empty_row(tmp_path: Path) -> None:
    """Votes split 3/3/1 give no majority: such a frame has no label, and is counted as such."""
    table = read_annotations(write(tmp_path, "v,0,p,3,3,1"), votes="majority", raters=7, empty_rows="skip")
    assert sum(table.issues.values()) == 1
    assert np.isnan(table.videos["v"].values).all()


def test_frames_beyond_the_video_are_an_error_or_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0,p,1,0,0", "v,9,p,0,1,0", "v,12,p,0,1,0")
    table = read_annotations(path)
    with pytest.raises(DataError, match=r"labels.csv:3: frame 9 is beyond the end of video 'v' \(5 frames at 25 fps\)"):
        frame_targets(table.videos["v"], 5, 25.0, table, "error")
    targets = frame_targets(table.videos["v"], 5, 25.0, table, "skip")
    assert table.issues["rows beyond their video's last frame"] == 2
    np.testing.assert_array_equal(targets[0], [1, 0, 0])
    assert np.isnan(targets[1:]).all()


def test_time_rows_go_to_the_nearest_frame(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0.0,p,1,0,0", "v,0.41,p,0,1,0", "v,0.38,p,0,0,1", header=HEADER.replace("frame", "time"))
    table = read_annotations(path)
    targets = frame_targets(table.videos["v"], 20, 10.0, table, "error")
    np.testing.assert_array_equal(targets[0], [1, 0, 0])
    np.testing.assert_array_equal(targets[4], [0, 1, 0])  # 0.41 s is nearer frame 4 than 0.38 s
    assert sum(table.issues.values()) == 1  # the farther row on frame 4, counted
    assert np.isnan(targets[[1, 2, 3, 5]]).all()


def test_one_video_one_participant(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0,p1,1,0,0", "v,1,p2,1,0,0")
    with pytest.raises(DataError, match=r"video 'v' has rows of participants p1, p2"):
        read_annotations(path)


def test_ratio_splits_keep_each_participant_in_one_split(tmp_path: Path) -> None:
    rows = [f"p{p}_{v},0,p{p},1,0,0" for p in range(10) for v in range(3)]
    table = read_annotations(write(tmp_path, *rows))
    plan = split_videos(table, {"seed": 3, "ratios": [0.8, 0.2, 0.0]})
    people = {s: {table.participants[v] for v in videos} for s, videos in plan.items()}
    assert len(people["train"]) == 8 and len(people["val"]) == 2 and not people["test"]
    assert not people["train"] & people["val"]
    assert sum(len(v) for v in plan.values()) == 30  # every video placed
    assert split_videos(table, {"seed": 3, "ratios": [0.8, 0.2, 0.0]}) == plan  # the seed fixes it


def test_a_split_column_that_shares_a_participant_is_rejected(tmp_path: Path) -> None:
    header = HEADER + ",split"
    path = write(tmp_path, "a,0,p1,1,0,0,train", "b,0,p1,1,0,0,val", "c,0,p2,1,0,0,val", header=header)
    with pytest.raises(DataError, match=r"participant 'p1' is in both the train and the val split \(video 'b'\)"):
        split_videos(read_annotations(path), "column")
    with pytest.raises(DataError, match=r"participant 'x' is in both"):
        check_subject_independent({"train": ["a"], "val": [], "test": ["b"]}, {"a": "x", "b": "x"})


def test_unreadable_or_missing_tables(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Annotation table not found: .*nope.csv"):
        read_annotations(tmp_path / "nope.csv")
    (tmp_path / "labels.txt").write_text(HEADER + "\n")
    with pytest.raises(DataError, match=r"expected a .csv, .parquet, .pq annotation table, got '.txt'"):
        read_annotations(tmp_path / "labels.txt")
