"""The face-track cache on real footage: parallel, reported, resumable after a kill, bad videos handled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoframe.errors import DataError
from emoframe.faces import FacePipeline
from emoframe.faces.tracks import FaceTrackCache
from emoframe.files.video import iter_frames, video_info

SETTINGS = {"size": 48, "keep": "tracked"}


@pytest.fixture(scope="module")
def clips(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five short real clips: consecutive 10-frame pieces of videos/angry.mp4 at 960x540, re-encoded."""
    out = tmp_path_factory.mktemp("clips")
    frames = [f for _, f in iter_frames(data_dir / "videos" / "angry.mp4", indices=range(50))]
    paths = []
    for k in range(5):
        path = out / f"clip{k}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24.0, (960, 540))
        for frame in frames[10 * k : 10 * k + 10]:
            writer.write(cv2.resize(frame, (960, 540), interpolation=cv2.INTER_AREA)[:, :, ::-1])
        writer.release()
        paths.append(path)
    return paths


@pytest.mark.slow
def test_tracks_of_real_video_keep_every_frame(clips: list[Path], tmp_path: Path, capfd) -> None:
    cache = FaceTrackCache(FacePipeline(**SETTINGS), tmp_path, workers=2, progress=False)
    tracks = cache.build(clips)
    assert list(tracks) == [str(c) for c in clips]
    for track in tracks.values():
        assert track.crops.shape == (10, 48, 48) and track.status.shape == (10,)
        assert track.fps == pytest.approx(24.0)
        found = track.status == 0
        assert np.isfinite(track.boxes[found]).all() and np.isnan(track.boxes[~found]).all()
    rate = np.mean([t.face_rate for t in tracks.values()])
    assert rate > 0.8  # the first 50 frames of angry.mp4: the face is visible in most of them
    assert "Face tracks: 5 of 5 videos" in capfd.readouterr().err
    again = FaceTrackCache(FacePipeline(**SETTINGS), tmp_path, progress=False).build(clips)
    for key, track in tracks.items():
        assert np.array_equal(again[key].crops, track.crops)
    assert "extracted" not in capfd.readouterr().err  # all read back from the cache


_KILLABLE = """
import sys
from emoframe.faces import FacePipeline
from emoframe.faces.tracks import FaceTrackCache
FaceTrackCache(FacePipeline(size=48, keep="tracked"), sys.argv[1], workers=1, progress=False).build(sys.argv[2:])
"""


@pytest.mark.slow
def test_killed_extraction_resumes_to_the_same_cache(clips: list[Path], tmp_path: Path) -> None:
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, str(killed_dir), *map(str, clips)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600  # generous: the machine may be loaded; no timing is asserted
    while time.monotonic() < deadline and proc.poll() is None and not list(killed_dir.glob("face-track-*.npz")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(killed_dir.glob("face-track-*.npz")))
    assert 1 <= done < len(clips), "the kill should land midway"
    resumed = FaceTrackCache(FacePipeline(**SETTINGS), killed_dir, progress=False)
    assert sum(resumed.get(c) is not None for c in clips) == done  # finished entries are complete and kept
    tracks = resumed.build(clips)
    clean = FaceTrackCache(FacePipeline(**SETTINGS), clean_dir, progress=False).build(clips)
    for key in clean:
        for name, value in clean[key].arrays().items():
            if name != "seconds":
                np.testing.assert_array_equal(tracks[key].arrays()[name], value, err_msg=f"{key}: {name}")
    assert len(list(killed_dir.glob("face-track-*.npz"))) == len(clips)


@pytest.mark.slow
def test_bad_videos_error_in_one_line_or_are_counted(clips: list[Path], tmp_path: Path, capfd) -> None:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(Path(clips[0]).read_bytes()[:2000])
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    black = tmp_path / "black.avi"  # a real video with no face in any frame
    writer = cv2.VideoWriter(str(black), cv2.VideoWriter_fourcc(*"MJPG"), 24.0, (320, 240))
    for _ in range(6):
        writer.write(np.zeros((240, 320, 3), np.uint8))
    writer.release()
    videos = [clips[0], truncated, not_video, empty, black]
    with pytest.raises(DataError, match=r"Cannot read video .*truncated\.mp4.*set on_bad_video: skip"):
        FaceTrackCache(FacePipeline(**SETTINGS), tmp_path / "c1", progress=False).build(videos)
    cache = FaceTrackCache(
        FacePipeline(**SETTINGS, fallback="drop"), tmp_path / "c2", on_bad_video="skip", progress=False
    )
    tracks = cache.build(videos)
    assert list(tracks) == [str(clips[0]), str(black)]
    assert sorted(Path(v).name for v in cache.skipped) == ["empty.avi", "notes.mp4", "truncated.mp4"]
    assert (tracks[str(black)].status == 2).all() and not tracks[str(black)].valid.any()  # all dropped, counted
    assert "skipped 3 unreadable" in capfd.readouterr().err
    assert video_info(black).frames == 6
