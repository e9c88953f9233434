"""The face pipeline on real footage: detection rate, frames per second, landmark error, and the speed
of full-resolution against downscaled detection on 720p and 1080p frames (with their agreement).

python benchmarks/faces.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import decord
import numpy as np
from harness import REPO, publish

from emoframe.faces import FaceDetector, FacePipeline, iou, landmark_error, pick


def video_frames(path: Path) -> np.ndarray:
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def afew(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    info = json.loads((folder / f"{folder.name}.json").read_text())["frames"]
    keys = sorted(info)
    frames = [np.ascontiguousarray(cv2.imread(str(folder / f"{k}.png"))[:, :, ::-1]) for k in keys]
    return frames, [np.asarray(info[k]["landmarks"], np.float32) for k in keys]


def footage_rows(sources: dict[str, list[np.ndarray]], truth: dict[str, list[np.ndarray]]) -> list[str]:
    """Default pipeline (tracked face, threshold -0.5, detection at 640 px) over every frame."""
    rows = []
    for name, frames in sources.items():
        pipeline = FacePipeline(size=96, keep="tracked")
        t0 = time.perf_counter()
        results = list(pipeline.process_frames(frames))
        fps = len(frames) / (time.perf_counter() - t0)
        s = pipeline.stats
        err = ""
        if name in truth:
            errs = [landmark_error(r.landmarks, t) for r, t in zip(results, truth[name]) if r.status == "face"]
            err = f"{np.mean(errs):.3f} (median {np.median(errs):.3f})"
        h, w = frames[0].shape[:2]
        rows.append(
            f"| {name} | {w}x{h} | {len(frames)} | {s['face']} ({100 * s['face'] / len(frames):.1f}%) | {fps:.1f} | {err or 'no annotation'} |"
        )
    return rows


def threshold_rows(sources: dict[str, list[np.ndarray]]) -> list[str]:
    rows = []
    for threshold in (0.0, -0.5, -1.0):
        detector = FaceDetector(threshold=threshold)
        counts = [sum(bool(detector.detect(f)) for f in frames) for frames in sources.values()]
        rows.append(f"| {threshold} | " + " | ".join(f"{c}/{len(f)}" for c, f in zip(counts, sources.values())) + " |")
    return rows


def resolution_rows(frames_1080: np.ndarray) -> list[str]:
    """Full-resolution detection (the plain way) against detection on a 640 px copy, same frames."""
    rows = []
    for label, size in (("1080p", (1920, 1080)), ("720p", (1280, 720))):
        frames = [
            f if f.shape[1] == size[0] else cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames_1080
        ]
        picked, fps = {}, {}
        for mode, max_side in (("full", None), ("640", 640)):
            detector = FaceDetector(max_side=max_side)
            t0 = time.perf_counter()
            found = [detector.detect(f) for f in frames]
            fps[mode] = len(frames) / (time.perf_counter() - t0)
            picked[mode] = [pick(d, "largest").box if d else None for d in found]
        both = [(a, b) for a, b in zip(picked["full"], picked["640"]) if a is not None and b is not None]
        same_presence = sum((a is None) == (b is None) for a, b in zip(picked["full"], picked["640"]))
        agree = sum(iou(a, b) >= 0.5 for a, b in both)
        mean_iou = np.mean([iou(a, b) for a, b in both]) if both else float("nan")
        n_full = sum(p is not None for p in picked["full"])
        n_small = sum(p is not None for p in picked["640"])
        rows.append(
            f"| {label} | {len(frames)} | {fps['full']:.1f} | {fps['640']:.1f} | {fps['640'] / fps['full']:.1f}x | "
            f"{n_full} / {n_small} | {same_presence}/{len(frames)} | {agree}/{len(both)} (mean IoU {mean_iou:.2f}) |"
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    data = Path(p.parse_args().data)
    sources: dict[str, list[np.ndarray]] = {}
    for video in sorted((data / "videos").glob("*.mp4")):
        sources[f"videos/{video.name}"] = list(video_frames(video))
    afew_frames, afew_truth = afew(data / "afew_va" / "001")
    sources["afew_va/001"] = afew_frames
    truth = {"afew_va/001": afew_truth}
    body = [
        "## Faces: dlib detection, 68 landmarks and Ng-aligned crops on real footage",
        "",
        "Default pipeline (`face_crop`: threshold -0.5, detection on a copy at most 640 px wide, largest face",
        "followed from frame to frame, landmarks and a 96x96 aligned crop), every frame of each source.",
        "Frames per second cover detection, landmarks and alignment on one core, not decoding. Landmark error",
        "is the mean point-to-point distance over the 68 annotated points divided by the outer-eye-corner distance.",
        "",
        "| source | size | frames | faces found | frames/s | landmark error |",
        "|---|---|---|---|---|---|",
        *footage_rows(sources, truth),
        "",
        "Frames with a face by detection threshold (dlib's default is 0; lower finds more faces and more false ones):",
        "",
        "| threshold | " + " | ".join(sources) + " |",
        "|---|" + "---|" * len(sources),
        *threshold_rows(sources),
        "",
        "Detection speed on the 68 frames of videos/angry.mp4 (1080p; 720p made by resizing them): full-resolution",
        "detection (the plain way) against detection on a 640 px copy with boxes mapped back. Agreement: frames",
        "where both find a face or both find none, and how often the two boxes overlap with IoU >= 0.5.",
        "",
        "| frames | n | full-res frames/s | 640 px frames/s | speed-up | faces full / 640 | same presence | same box |",
        "|---|---|---|---|---|---|---|---|",
        *resolution_rows(np.asarray(sources["videos/angry.mp4"])),
    ]
    text = "\n".join(body)
    print(text)
    publish("faces", text)


if __name__ == "__main__":
    main()
