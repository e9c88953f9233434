"""Generate a small AFEW-layout (EmotiW) clip set from real FER2013 faces, for tests and trying the recipes.

    python -m tests.data.make_afew OUT [--fer ../shared/data/fer2013/fer2013.zip]     (from the repository root)

    OUT/Train_AFEW/<Emotion>/<clip>.avi     e.g. Train_AFEW/Happy/000100003.avi
    OUT/Val_AFEW/<Emotion>/<clip>.avi
    OUT/Heldout_AFEW/<Emotion>/<clip>.avi    labelled clips for data.folders.test (AFEW's own test labels are private)

Each clip is an MJPG AVI (160x120, 25 fps, 10 to 17 frames, so clips differ in length) of one real
FER2013 training face of the clip's class, upscaled to 96 px and pasted on a textured background,
drifting and changing brightness (make_recola.py's frames, which dlib's detector finds). All clips of a
class draw from one small pool of faces (``faces_per_class``): validation clips show the same faces in
new places, motion and lighting, so a tiny model learns the classes in seconds; this tests the pipeline,
not expression recognition on unseen people.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from tests.data.make_recola import FPS, SIZE, background, compose, face_pool

CLASSES = ("happy", "sad", "surprise")  # FER2013 names; folders are AFEW's capitalised ones
SPLITS = {"Train_AFEW": 5, "Val_AFEW": 3, "Heldout_AFEW": 3}  # clips per class
LENGTHS = (10, 18)  # frames per clip: [low, high)


def write_clip(path: Path, face: np.ndarray, frames: int, rng: np.random.Generator) -> None:
    """One clip of ``face`` moving over a random background, as an MJPG AVI."""
    back = background(rng)
    phase = rng.uniform(0, 2 * np.pi, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for i in range(frames):
        t = i / FPS
        dx = round(10 * float(np.sin(2 * np.pi * 0.8 * t + phase[0])))
        dy = round(4 * float(np.sin(2 * np.pi * 1.1 * t + phase[1])))
        gain = 1.0 + 0.15 * np.sin(2 * np.pi * 0.7 * t + phase[2])
        writer.write(compose(face, back, dx, dy, gain)[:, :, ::-1])
    writer.release()


def make_afew(
    root: Path,
    fer_zip: Path,
    classes: tuple[str, ...] = CLASSES,
    splits: dict[str, int] | None = None,
    faces_per_class: int = 3,
    seed: int = 0,
) -> Path:
    """Write ``root/<split>/<Emotion>/<clip>.avi``; clip ids are nine digits, as AFEW's."""
    pool = face_pool(fer_zip, faces_per_class, seed, classes)
    rng = np.random.default_rng(seed)
    n = 0
    for split, per_class in (splits or SPLITS).items():
        for emotion in classes:
            for k in range(per_class):
                face = pool[emotion][k % len(pool[emotion])]
                frames = int(rng.integers(*LENGTHS))
                write_clip(root / split / emotion.capitalize() / f"{100000 + n:09d}.avi", face, frames, rng)
                n += 1
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--fer", type=Path, default=Path("../shared/data/fer2013/fer2013.zip"))
    args = parser.parse_args()
    make_afew(args.out, args.fer)
    print(f"AFEW-layout set written to {args.out}")


if __name__ == "__main__":
    main()
