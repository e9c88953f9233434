"""Generate a small RECOLA-layout (AVEC 2016) set from real FER2013 faces, for tests and trying the recipes.

    python tests/data/make_recola.py OUT [--fer ../shared/data/fer2013/fer2013.zip] [--delay 1.0]

Each recording is an MPEG-4 video (160x120, 25 fps) of real FER2013 faces, upscaled to 96 px and pasted
on a textured background, drifting a few pixels and changing brightness: big enough for dlib's
detector (it finds faces of about 80 px). The face changes every second, and the gold standard
(ARFF, one row every 40 ms, the exact AVEC 2016 format) is a function of its expression:

    happy (arousal 0.2, valence 0.8)    sad (-0.2, -0.8)    surprise (0.8, 0)    neutral (-0.8, 0)

``delay`` shifts the labels later than the faces (annotators react late), the case post-processing's
time shift is for. All recordings draw from one small pool of faces (``faces_per_class`` per
expression): held-out recordings show the same faces in new orders, places and lighting, so a tiny
model learns the mapping in seconds; this tests the pipeline, not face-expression generalisation.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import cv2
import numpy as np

from emoframe.data.arff import write_arff
from emoframe.faces import FacePipeline

VA = {"happy": (0.2, 0.8), "sad": (-0.2, -0.8), "surprise": (0.8, 0.0), "neutral": (-0.8, 0.0)}  # (arousal, valence)
FPS = 25.0
SIZE = (160, 120)  # width, height
FACE = 96
SPLITS = {"train": 4, "dev": 2, "test": 2}


def face_pool(
    fer_zip: Path, per_class: int, seed: int = 0, emotions: tuple[str, ...] = tuple(VA)
) -> dict[str, list[np.ndarray]]:
    """``per_class`` FER2013 training faces per expression that dlib finds once pasted into a frame."""
    pipeline = FacePipeline(size=48)
    pool: dict[str, list[np.ndarray]] = {}
    with zipfile.ZipFile(fer_zip) as z:
        names = sorted(n for n in z.namelist() if n.startswith("train/") and n.endswith(".jpg"))
        for emotion in emotions:
            candidates = [n for n in names if n.startswith(f"train/{emotion}/")]
            order = np.random.default_rng(seed).permutation(len(candidates))
            pool[emotion] = []
            for i in order:
                face = cv2.imdecode(np.frombuffer(z.read(candidates[i]), np.uint8), cv2.IMREAD_GRAYSCALE)
                if pipeline.process(compose(face, np.full((SIZE[1], SIZE[0]), 110, np.uint8), 0, 0, 1.0)).box:
                    pool[emotion].append(face)
                if len(pool[emotion]) == per_class:
                    break
    return pool


def background(rng: np.random.Generator) -> np.ndarray:
    """A smooth random texture (a room, not a flat wall), gray uint8 (H, W)."""
    w, h = SIZE
    coarse = rng.uniform(60, 170, (4, 5)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def compose(face: np.ndarray, back: np.ndarray, dx: int, dy: int, gain: float) -> np.ndarray:
    """The face upscaled to FACE px, pasted near the centre of the background, as an RGB frame."""
    frame = back.copy()
    big = cv2.resize(face, (FACE, FACE), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (SIZE[1] - FACE) // 2 + dy, (SIZE[0] - FACE) // 2 + dx
    frame[y0 : y0 + FACE, x0 : x0 + FACE] = big
    frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)


def make_recording(
    path: Path, labels_root: Path, name: str, pool: dict[str, list[np.ndarray]], seconds: int, delay: float, seed: int
) -> list[str]:
    """One video and its two ARFFs; returns the expression shown in each second."""
    rng = np.random.default_rng(seed)
    emotions = list(VA)
    shown: list[str] = []
    for _ in range(seconds):
        choices = [e for e in emotions if not shown or e != shown[-1]]
        shown.append(choices[rng.integers(len(choices))])
    faces = [pool[e][rng.integers(len(pool[e]))] for e in shown]
    back = background(rng)
    n = int(seconds * FPS)
    phase = rng.uniform(0, 2 * np.pi, 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for i in range(n):
        t = i / FPS
        dx = round(8 * float(np.sin(2 * np.pi * 0.3 * t + phase[0])))
        dy = round(4 * float(np.sin(2 * np.pi * 0.4 * t + phase[1])))
        gain = 1.0 + 0.15 * np.sin(2 * np.pi * 0.2 * t + phase[2])
        writer.write(compose(faces[int(t)], back, dx, dy, gain)[:, :, ::-1])
    writer.release()
    times = np.arange(n) / FPS
    second = np.clip(np.floor((times - delay) + 1e-9), 0, seconds - 1).astype(int)  # the face shown `delay` s ago
    for d, dim in enumerate(("arousal", "valence")):
        values = np.array([VA[shown[s]][d] for s in second])
        write_arff(labels_root / dim / f"{name}.arff", name, times, values)
    return shown


def make_recola(
    root: Path,
    fer_zip: Path,
    seconds: int = 5,
    delay: float = 0.0,
    faces_per_class: int = 3,
    splits: dict[str, int] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``root/recordings_video/<split>_<n>.mp4`` and ``root/ratings_gold_standard/{arousal,valence}/``."""
    pool = face_pool(fer_zip, faces_per_class, seed)
    (root / "recordings_video").mkdir(parents=True, exist_ok=True)
    labels = root / "ratings_gold_standard"
    k = 0
    for split, count in (splits or SPLITS).items():
        for i in range(1, count + 1):
            name = f"{split}_{i}"
            make_recording(root / "recordings_video" / f"{name}.mp4", labels, name, pool, seconds, delay, seed + k)
            k += 1
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--fer", type=Path, default=Path("../shared/data/fer2013/fer2013.zip"))
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.0, help="labels later than the faces by this many seconds")
    args = parser.parse_args()
    make_recola(args.out, args.fer, args.seconds, args.delay)
    print(f"RECOLA-layout set written to {args.out}")


if __name__ == "__main__":
    main()
