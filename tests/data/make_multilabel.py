"""Generate a small multi-label annotated video set from real FER2013 faces, in the documented format.

    python -m tests.data.make_multilabel OUT [--fer ../shared/data/fer2013/fer2013.zip]   (from the repository root)

    OUT/videos/<participant>_<n>.mp4       160x120, 25 fps, a real FER2013 face per segment
    OUT/annotations.csv                    video, frame, participant, neutral, happy, surprise, sad
                                           (vote counts of 7 raters per label, as Tzirakis et al.'s data)

Each video is a run of segments (8 to 24 frames) of one expression; ``neutral`` is shown most of the
time (``SHARES``), the others rarely, so the label distribution is skewed like the paper's (78%
neutral). The label shown gets 4 to 7 votes, the others 0 to 2, and the first frames of a segment also
keep the previous expression's label (two labels set: a multi-label row). Faces come from one small
pool per expression shared by all participants (as make_recola.py): held-out participants show the
same faces in new places and lighting, so this tests the pipeline, not generalisation to new people.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from tests.data.make_recola import FPS, SIZE, background, compose, face_pool

LABELS = ("neutral", "happy", "surprise", "sad")
SHARES = (0.75, 0.1, 0.09, 0.06)  # chance of each expression per segment
RATERS = 7
OVERLAP = 3  # first frames of a segment that keep the previous label too


def segments(frames: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(label index, length) runs covering ``frames``; rare expressions last long enough for a window."""
    out: list[tuple[int, int]] = []
    total = 0
    while total < frames:
        label = int(rng.choice(len(LABELS), p=SHARES))
        length = int(rng.integers(8, 25)) if label == 0 else int(rng.integers(14, 25))
        length = min(length, frames - total)
        out.append((label, length))
        total += length
    return out


def write_video(path: Path, faces: list[np.ndarray], rng: np.random.Generator) -> None:
    back = background(rng)
    phase = rng.uniform(0, 2 * np.pi, 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for i, face in enumerate(faces):
        t = i / FPS
        dx = round(8 * float(np.sin(2 * np.pi * 0.3 * t + phase[0])))
        dy = round(4 * float(np.sin(2 * np.pi * 0.4 * t + phase[1])))
        gain = 1.0 + 0.15 * np.sin(2 * np.pi * 0.2 * t + phase[2])
        writer.write(compose(face, back, dx, dy, gain)[:, :, ::-1])
    writer.release()


def make_multilabel(
    root: Path,
    fer_zip: Path,
    participants: int = 10,
    videos_per_participant: int = 2,
    frames: int = 80,
    faces_per_class: int = 3,
    seed: int = 0,
) -> Path:
    """Write ``root/videos/*.mp4`` and ``root/annotations.csv``; returns the table's path."""
    fer_names = {"neutral": "neutral", "happy": "happy", "surprise": "surprise", "sad": "sad"}
    pool = face_pool(fer_zip, faces_per_class, seed, tuple(fer_names.values()))
    rng = np.random.default_rng(seed)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    table = root / "annotations.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "frame", "participant", *LABELS])
        for p in range(participants):
            person = f"p{p:02d}"
            for v in range(videos_per_participant):
                name = f"{person}_{v}"
                faces, rows = [], []
                previous = None
                for label, length in segments(frames, rng):
                    face = pool[fer_names[LABELS[label]]][rng.integers(faces_per_class)]
                    for i in range(length):
                        votes = rng.integers(0, 3, len(LABELS))
                        votes[label] = rng.integers(4, RATERS + 1)
                        if previous is not None and i < OVERLAP:
                            votes[previous] = rng.integers(4, RATERS + 1)
                        faces.append(face)
                        rows.append(votes)
                    previous = label
                write_video(root / "videos" / f"{name}.mp4", faces, rng)
                for i, votes in enumerate(rows):
                    w.writerow([name, i, person, *[int(x) for x in votes]])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--fer", type=Path, default=Path("../shared/data/fer2013/fer2013.zip"))
    parser.add_argument("--participants", type=int, default=10)
    args = parser.parse_args()
    print(f"Annotated set written to {make_multilabel(args.out, args.fer, args.participants)}")


if __name__ == "__main__":
    main()
