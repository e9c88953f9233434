"""How FER2013's faces sit in their 48x48 pictures, as dlib's detector sees them: the margin of the FER2013-style
crop that ``emoframe predict`` cuts around detected faces for models trained on FER2013 (emoframe.inference.faces).

Each test picture is upscaled 4x (dlib finds faces of about 80 px and more) and put on a grey canvas, so the
detector may place its box anywhere; the ratio of the picture's side to the box's side, and the offset of the
box's centre, say how much larger than dlib's box, and where, a crop must be to frame a face as FER2013 does.

python benchmarks/fer_crop_margin.py [--data ../shared/data] [--count 300]
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import cv2
import numpy as np
from harness import REPO, publish

from emoframe.faces import FaceDetector
from emoframe.inference.faces import FER_SCALE, FER_SHIFT


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    with zipfile.ZipFile(Path(args.data) / "fer2013" / "fer2013.zip") as z:
        names = sorted(n for n in z.namelist() if n.startswith("test/") and n.endswith(".jpg"))
        picked = names[:: max(1, len(names) // args.count)][: args.count]
        images = [cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in picked]
    detector = FaceDetector(threshold=-0.5, max_side=None)
    ratio, dx, dy = [], [], []
    for image in images:
        big = cv2.resize(image, (192, 192), interpolation=cv2.INTER_CUBIC)
        canvas = np.full((384, 384), 128, np.uint8)
        canvas[96:288, 96:288] = big
        found = detector.detect(canvas)
        if not found:
            continue
        left, top, right, bottom = found[0].box
        side = right - left
        ratio.append(192 / side)
        dx.append(((left + right) / 2 - 192) / side)
        dy.append(((top + bottom) / 2 - 192) / side)
    q = np.percentile(ratio, [25, 50, 75])
    body = (
        "## FER2013-style crops: how large a crop around dlib's box frames a face as FER2013 does\n\n"
        f"dlib (threshold -0.5) found a face in {len(ratio)} of {len(images)} FER2013 test pictures (upscaled 4x "
        "onto a grey canvas).\n\n"
        "| measure | median | 25th-75th percentile |\n|---|---|---|\n"
        f"| picture side / box side | {q[1]:.3f} | {q[0]:.3f}-{q[2]:.3f} |\n"
        f"| box centre right of the picture's centre (box sides) | {np.median(dx):+.3f} | "
        f"{np.percentile(dx, 25):+.3f}-{np.percentile(dx, 75):+.3f} |\n"
        f"| box centre below the picture's centre (box sides) | {np.median(dy):+.3f} | "
        f"{np.percentile(dy, 25):+.3f}-{np.percentile(dy, 75):+.3f} |\n\n"
        f"`emoframe predict` crops FER2013-trained models' faces at {FER_SCALE} x the box side, centred "
        f"{FER_SHIFT} box sides above the box's centre (emoframe/inference/faces.py)."
    )
    print(body)
    publish("fer_crop_margin", body)


if __name__ == "__main__":
    main()
