"""`emoframe predict --ckpt X INPUT...` and `emoframe.load_model(...).predict(x)` on real pictures, videos and a live
MJPEG stream: every task, the whole-picture path of a trained classifier, rendering, bounded memory, bad input."""

from __future__ import annotations

import csv
import http.server
import json
import socketserver
import threading
import time
import zipfile
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

import emoframe
from emoframe.cli import main
from emoframe.labels import EMOTIONS
from tests.inference.conftest import paste_faces

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def predict(*args: str) -> int:
    return main(["predict", "--no-progress", *args])


@pytest.mark.parametrize(
    "task", ["frame_classifier", "fusion_classifier", "sequence_classifier", "va_regressor", "multilabel_classifier"]
)
def test_every_task_predicts_on_a_real_video(task: str, task_checkpoints, videos, tmp_path: Path) -> None:
    out = tmp_path / "angry.csv"
    assert (
        predict("--ckpt", str(task_checkpoints[task]), str(videos["angry"]), "--every", "6", "--output", str(out)) == 0
    )
    rows = rows_of(out)
    faces = [r for r in rows if r["status"] == "face"]
    assert faces, "the man's face is found in angry.mp4"
    if task == "sequence_classifier":  # one row per window of 4 faces of a track, and one per clip (track)
        clips = [r for r in rows if r["level"] == "clip"]
        windows = [r for r in rows if r["level"] == "window"]
        assert clips and windows and sum(int(r["frames"]) for r in windows) == sum(int(r["frames"]) for r in clips)
    else:  # one row per sampled frame (no face) or per face in it: frames 0, 6, ..., 66
        assert sorted({int(r["frame"]) for r in rows}) == list(range(0, 68, 6))
        assert all(r["prediction"] == "" and r["box_left"] == "" for r in rows if r["status"] == "no_face")
    for track in {r["track_id"] for r in faces}:
        times = [float(r["time_s"]) for r in rows if r["track_id"] == track and r.get("level", "window") != "clip"]
        assert times == sorted(times) and len(set(times)) == len(times), "times increase along a track"
    for r in faces:
        left, top, right, bottom = (float(r[k]) for k in ("box_left", "box_top", "box_right", "box_bottom"))
        assert 0 <= left < right <= 1920 + 200 and 0 <= top < bottom <= 1080 + 200, "boxes in the video's pixels"
        if task == "va_regressor":
            assert np.isfinite([float(r["arousal"]), float(r["valence"])]).all()
        elif task == "multilabel_classifier":
            p = [float(r[f"p_{c}"]) for c in ("neutral", "happy", "surprise", "sad")]
            assert all(0 <= v <= 1 for v in p)
        else:
            assert sum(float(r[f"p_{c}"]) for c in EMOTIONS) == pytest.approx(1.0, abs=1e-4)
            assert r["prediction"] in EMOTIONS
    assert (tmp_path / "angry.angry.timeline.png").stat().st_size > 5_000


@pytest.fixture(scope="module")
def private_test(fer2013_zip: Path) -> tuple[np.ndarray, np.ndarray]:
    """84 held-out FER2013 faces (PrivateTest, 12 per class) and their labels."""
    with zipfile.ZipFile(fer2013_zip) as z:
        names = sorted(n for n in z.namelist() if n.startswith("test/") and "PrivateTest_" in n)
        picked = [n for e in EMOTIONS for n in [m for m in names if m.startswith(f"test/{e}/")][:12]]
        faces = [cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in picked]
    return np.stack(faces), np.array([EMOTIONS.index(n.split("/")[1]) for n in picked])


@pytest.mark.slow  # the session's FER2013 fit (conftest.fer2013_trained): a minute or more
def test_a_trained_classifier_gets_held_out_whole_pictures_right(
    fer2013_trained: Path, private_test: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Faces detected in whole pictures and cropped as FER2013's were, not given: accuracy well above chance, and
    the crops given as crops (--faces none) score exactly as the task scores the datamodule's tensors."""
    faces, labels = private_test
    ckpt = fer2013_trained / "checkpoints" / "best.ckpt"
    paste_faces(faces, tmp_path / "pictures")
    out = tmp_path / "pictures.csv"
    assert predict("--ckpt", str(ckpt), str(tmp_path / "pictures"), "--output", str(out), "--faces", "largest") == 0
    rows = {Path(r["source"]).stem: r for r in rows_of(out)}
    assert len(rows) == len(faces)
    found = [int(stem) for stem, r in rows.items() if r["status"] == "face"]
    assert len(found) >= 0.8 * len(faces), f"faces found in {len(found)} of {len(faces)} pictures"
    right = np.mean([rows[f"{i:03d}"]["prediction"] == EMOTIONS[labels[i]] for i in found])
    print(f"whole-picture accuracy {right:.3f} on {len(found)} held-out faces found (chance 1/7)")
    assert right > 0.25, f"accuracy {right:.3f} on held-out pictures; chance is 0.14"

    model = emoframe.load_model(ckpt)
    table = model.predict(list(faces[:16]), faces="none")
    import torch

    with torch.no_grad():
        x = (torch.from_numpy(faces[:16]).float()[:, None] / 255.0 - 0.5) / 0.5
        direct = model(x).softmax(-1).numpy()
    np.testing.assert_allclose(table[[f"p_{c}" for c in EMOTIONS]].to_numpy(), direct, atol=1e-5)
    assert list(table["status"]) == ["whole"] * 16 and list(table["source"])[:2] == ["array[0]", "array[1]"]


def test_api_predict_takes_paths_pil_images_arrays_and_videos(task_checkpoints, fer_faces, videos, tmp_path) -> None:
    from PIL import Image

    model = emoframe.load_model(task_checkpoints["frame_classifier"])
    assert not model.training and model.class_names == list(EMOTIONS) and model.preprocessing["image_size"] == 48
    (path,) = paste_faces(fer_faces[:1], tmp_path)
    picture = np.asarray(Image.open(path))
    table = model.predict([path, Image.open(path), picture, np.repeat(picture[:, :, None], 3, axis=2)])
    assert list(table.columns[:11]) == [
        "source", "frame", "time_s", "track_id", "status", "box_left", "box_top", "box_right", "box_bottom",
        "det_score", "prediction",
    ]  # fmt: skip
    assert len(table) == 4 and table["source"].iloc[0] == str(path) and table["source"].iloc[1] == "array[1]"
    probs = table[[f"p_{c}" for c in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(probs, np.repeat(probs[:1], 4, axis=0), atol=1e-5)  # the same picture four ways
    video = model.predict(str(videos["laughing"]), every=40)
    assert sorted(set(video["frame"])) == list(range(0, 194, 40))


def test_render_decodes_back_with_the_inputs_frames_and_size(task_checkpoints, videos, tmp_path: Path) -> None:
    import decord

    out = tmp_path / "rendered.mp4"
    ckpt = str(task_checkpoints["frame_classifier"])
    assert (
        predict(
            "--ckpt",
            ckpt,
            str(videos["angry"]),
            "--every",
            "4",
            "--render",
            str(out),
            "--output",
            str(tmp_path / "p.csv"),
        )
        == 0
    )
    reader = decord.VideoReader(str(out))
    assert len(reader) == 68 and reader[0].shape == (1080, 1920, 3)
    assert not list(tmp_path.glob(".*partial*")), "no temporary file left behind"


class MJPEG(http.server.BaseHTTPRequestHandler):
    frames: ClassVar[list[bytes]] = []

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for jpeg in self.frames:
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            self.wfile.write(head + jpeg + b"\r\n")
            time.sleep(0.01)

    def log_message(self, *args: object) -> None:
        pass


def test_a_live_mjpeg_stream_is_read_until_it_ends(
    task_checkpoints, videos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import decord

    reader = decord.VideoReader(str(videos["angry"]), width=640, height=360)
    frames = reader.get_batch(list(range(24))).asnumpy()
    MJPEG.frames = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), MJPEG)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
        out = tmp_path / "live.csv"
        assert predict("--ckpt", str(task_checkpoints["frame_classifier"]), url, "--output", str(out)) == 0
    finally:
        server.shutdown()
        server.server_close()
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    rows = rows_of(out)
    assert len(lines) == len(rows) >= 20, "(almost) every frame of the stream, as JSON lines and in the CSV"
    assert [r["frame"] for r in lines] == sorted(r["frame"] for r in lines)
    assert any(r["status"] == "face" and r["p_angry"] is not None for r in lines)
    assert "ended after" in captured.err


def write_video(path: Path, frames: int, face: np.ndarray, size: int = 96) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (size, size))
    picture = cv2.cvtColor(cv2.resize(face, (size, size)), cv2.COLOR_GRAY2BGR)
    for i in range(frames):
        writer.write(np.roll(picture, i % 7, axis=1))
    writer.release()
    return path


def peak_rss_kb() -> int:
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_memory_stays_bounded_on_a_long_input(task_checkpoints, fer_faces, tmp_path: Path) -> None:
    """Peak RSS of the process scoring 2,000 frames against 200 (the high-water mark reset in between): rows,
    timelines and frames move in chunks, none of them grows with the video."""
    from emoframe.inference import Options

    model = emoframe.load_model(task_checkpoints["frame_classifier"])
    peaks = {}
    for name, frames in (("warm-up", 50), ("short", 200), ("long", 2000)):
        video = write_video(tmp_path / f"{name}.avi", frames, fer_faces[0])
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        before = peak_rss_kb()
        out = tmp_path / f"{name}.csv"
        summary = model.run([video], Options(faces="none", output=out, progress=False))
        peaks[name] = peak_rss_kb() - before
        assert summary.frames == frames and len(rows_of(out)) == frames
    print(f"peak RSS growth while predicting, kB: {peaks}")
    assert peaks["long"] < 1.5 * peaks["short"] + 20_000, peaks


def test_bad_inputs_are_counted_named_or_one_line(
    task_checkpoints, fer_faces, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame_ckpt = str(task_checkpoints["frame_classifier"])
    folder = tmp_path / "mixed"
    good = paste_faces(fer_faces[:2], folder)
    (folder / "truncated.jpg").write_bytes(good[0].read_bytes()[:600])
    (folder / "notes.jpg").write_text("not a picture")
    (folder / "broken.mp4").write_bytes(b"\x00" * 2000)
    blank = tmp_path / "blank.avi"
    write_video(blank, 10, np.full((48, 48), 90, np.uint8), size=160)
    out = tmp_path / "mixed.csv"
    capsys.readouterr()
    assert predict("--ckpt", frame_ckpt, str(folder), str(blank), "--output", str(out)) == 0
    err = capsys.readouterr().err
    summary = [line for line in err.splitlines() if line.startswith("Predicted")]
    assert len(summary) == 1 and "skipped 3 unreadable" in summary[0] and "broken.mp4" in summary[0], err
    rows = rows_of(out)
    by_source = {Path(r["source"]).name: r for r in rows}
    assert by_source["truncated.jpg"]["status"] == by_source["notes.jpg"]["status"] == "unreadable"
    assert by_source["000.jpg"]["status"] in ("face", "no_face") and len(rows) == 5 + 10  # broken.mp4: one row
    assert [r["status"] for r in rows if r["source"] == str(blank)] == ["no_face"] * 10, "a face-less video says so"

    one_line = [
        ([frame_ckpt, "97"], "Cannot open camera 97"),
        ([frame_ckpt, "http://127.0.0.1:9/none.mjpg"], "Cannot open stream http://127.0.0.1:9/none.mjpg"),
        ([str(task_checkpoints["sequence_classifier"]), str(good[0])], "scores sequences of frames"),
        ([frame_ckpt, str(tmp_path / "nothing.jpg")], "Input not found"),
        ([frame_ckpt, str(tmp_path / "*.png")], "matches no images or videos"),
        ([frame_ckpt, str(good[0]), "--render", str(tmp_path / "r.mp4")], "--render: give exactly one video"),
        ([frame_ckpt, str(good[0]), "--every", "0"], "--every: expected an integer >= 1"),
        ([str(tmp_path / "missing.ckpt"), str(good[0])], "Checkpoint not found"),
    ]
    for args, message in one_line:
        assert predict("--ckpt", *args, "--output", str(tmp_path / "x.csv")) == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, lines)
        assert not (tmp_path / "x.csv").exists(), "a run stopped before its first row leaves no empty table"


def test_ctrl_c_keeps_well_formed_files(task_checkpoints, videos, tmp_path: Path, monkeypatch) -> None:
    from emoframe.inference import run

    chunk = run.Assembler.chunk
    calls = []

    def interrupted(self, looked):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return chunk(self, looked)

    monkeypatch.setattr(run.Assembler, "chunk", interrupted)
    for out in (tmp_path / "cut.csv", tmp_path / "cut.parquet"):
        calls.clear()
        with pytest.raises(SystemExit) as stop:
            ckpt = str(task_checkpoints["frame_classifier"])
            predict("--ckpt", ckpt, str(videos["angry"]), "--faces", "none", "--output", str(out))
        assert stop.value.code == 130
        if out.suffix == ".csv":
            rows = rows_of(out)
        else:
            import pandas as pd

            rows = pd.read_parquet(out).to_dict("records")
        assert len(rows) == 32 and [int(r["frame"]) for r in rows] == list(range(32)), "the first chunk, whole"
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_exported_model_gives_the_checkpoints_csv(fmt: str, task_checkpoints, videos, tmp_path: Path) -> None:
    """``predict --ckpt model.onnx|.ts`` runs the same pipeline on the exported graph: the same rows, and
    probabilities within the export's parity tolerance; a file that is not an exported model is one line."""
    import emoframe

    ckpt = task_checkpoints["frame_classifier"]
    exported = tmp_path / ("model.onnx" if fmt == "onnx" else "model.ts")
    emoframe.export_model(ckpt, fmt, exported, parity="random")
    runs = {}
    for name, model in (("ckpt", ckpt), ("exported", exported)):
        out = tmp_path / f"{name}.csv"
        args = ("--ckpt", str(model), str(videos["angry"]), "--every", "17", "--output", str(out), "--no-timeline")
        assert predict(*args) == 0
        runs[name] = rows_of(out)
    assert len(runs["ckpt"]) == len(runs["exported"]) > 0
    for a, b in zip(runs["ckpt"], runs["exported"], strict=True):
        assert (a["frame"], a["status"], a["box_left"], a["prediction"]) == (
            b["frame"],
            b["status"],
            b["box_left"],
            b["prediction"],
        )
        for c in EMOTIONS:
            if a[f"p_{c}"]:
                assert float(a[f"p_{c}"]) == pytest.approx(float(b[f"p_{c}"]), abs=1e-4)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"onnx")
    assert predict("--ckpt", str(fake), str(videos["angry"])) == 2


def test_tta_on_pictures_averages_views_and_flip_tta_is_mirror_symmetric(
    task_checkpoints, fer_faces, tmp_path: Path
) -> None:
    """``predict --tta flip`` on ready crops: probabilities still sum to 1, and a mirrored picture gets the
    same flip-averaged probabilities as the original (its two views are the original's two, swapped)."""
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, face in enumerate(fer_faces[:4]):
        cv2.imwrite(str(folder / f"{i}.png"), face)
        cv2.imwrite(str(folder / f"{i}_mirror.png"), face[:, ::-1])
    out = tmp_path / "tta.csv"
    ckpt = str(task_checkpoints["frame_classifier"])
    assert predict("--ckpt", ckpt, str(folder), "--faces", "none", "--tta", "flip", "--output", str(out)) == 0
    rows = {Path(r["source"]).stem: r for r in rows_of(out)}
    assert len(rows) == 8
    for i in range(4):
        p = np.array([float(rows[str(i)][f"p_{c}"]) for c in EMOTIONS])
        q = np.array([float(rows[f"{i}_mirror"][f"p_{c}"]) for c in EMOTIONS])
        assert p.sum() == pytest.approx(1.0, abs=1e-4) and rows[str(i)]["prediction"] in EMOTIONS
        np.testing.assert_allclose(p, q, atol=1e-5)


def test_a_va_model_s_fitted_post_processing_runs_on_each_track(task_checkpoints, videos, tmp_path: Path) -> None:
    """The checkpoint's post-processing (as va_postprocess fits it) applies to each face track of the video:
    values equal PostProcessor.apply on the track's raw values, which are kept beside them."""
    import torch

    from emoframe.eval.va_postprocessing import PostProcessor
    from emoframe.tasks.va_regressor import POSTPROCESS_KEY

    fitted = {
        "arousal": PostProcessor(fps=25.0, median_window=15, bias=0.2, scale=2.0, shift=5),
        "valence": PostProcessor(fps=25.0, median_window=5, bias=-0.1, scale_centre=0.1, scale=0.5),
    }
    payload = torch.load(task_checkpoints["va_regressor"], map_location="cpu", weights_only=False)
    payload[POSTPROCESS_KEY] = {"targets": {n: p.to_dict() for n, p in fitted.items()}, "best_val_ccc": 0.0}
    ckpt = tmp_path / "va_post.ckpt"
    torch.save(payload, ckpt)
    out = tmp_path / "va.csv"
    assert predict("--ckpt", str(ckpt), str(videos["angry"]), "--every", "2", "--output", str(out)) == 0
    rows = [r for r in rows_of(out) if r["status"] == "face"]
    assert rows
    rate = 23.976 / 2  # angry.mp4's frame rate, one frame in 2 looked at: windows of 0.48 times the frames
    for track in {r["track_id"] for r in rows}:
        mine = sorted((r for r in rows if r["track_id"] == track), key=lambda r: int(r["frame"]))
        for name, p in fitted.items():
            scaled = PostProcessor(
                fps=rate,
                median_window=7 if name == "arousal" else 3,
                bias=p.bias,
                scale_centre=p.scale_centre,
                scale=p.scale,
                shift=2 if name == "arousal" else 0,
            )  # 15 -> 7.2 -> 7 frames (odd), 5 -> 2.4 -> 3 (odd); shift 5 -> 2.4 -> 2
            raw = np.array([float(r[f"raw_{name}"]) for r in mine])
            np.testing.assert_allclose(
                [float(r[name]) for r in mine], scaled.apply([raw])[0], atol=2e-5
            )  # the CSV keeps 6 digits


@pytest.mark.slow
def test_detect_every_n_reuses_the_detector_s_boxes_between_detections(
    task_checkpoints, videos, tmp_path: Path
) -> None:
    """--detect-every 3: frames 0, 3, 6... of those looked at have the boxes of a full run; the two after each
    reuse them (their crops, and so their predictions, come from their own pixels)."""
    every, held = tmp_path / "every.csv", tmp_path / "held.csv"
    ckpt, video = str(task_checkpoints["frame_classifier"]), str(videos["angry"])
    assert predict("--ckpt", ckpt, video, "--every", "2", "--faces", "largest", "--output", str(every)) == 0
    args = ("--every", "2", "--faces", "largest", "--detect-every", "3", "--output", str(held))
    assert predict("--ckpt", ckpt, video, *args) == 0
    box = ("box_left", "box_top", "box_right", "box_bottom")
    full = {int(r["frame"]): tuple(r[k] for k in box) for r in rows_of(every)}
    reused = {int(r["frame"]): tuple(r[k] for k in box) for r in rows_of(held)}
    assert sorted(full) == sorted(reused) == list(range(0, 68, 2))
    for k, frame in enumerate(sorted(reused)):
        detected = sorted(reused)[k - k % 3]
        assert reused[frame] == full[detected], frame
    assert predict("--ckpt", ckpt, video, "--detect-every", "0") == 2
