"""dlib_resnet against dlib itself: parity of the 128-d descriptors and descriptors/s, on the same real chips.

    python benchmarks/dlib_resnet.py [--data ../shared/data] [--repeat 3]

Chips are dlib's own (frontal detector, 5-point landmarks, ``dlib.get_face_chip`` 150x150, padding 0.25) from
every AFEW-VA frame of clip 001 and the shared videos. Parity: the largest absolute difference between the
port's descriptors and ``dlib.face_recognition_model_v1.compute_face_descriptor`` over all chips. Speed: each
side computes descriptors for the same chips one at a time (batch 1) and in batches of 32 (dlib's Python
binding takes a list and runs its network 16 at a time), torch with as many threads as cores and with one
(on a shared machine, threads waiting for busy cores can cost more than they bring), the best of ``--repeat``
passes (the least disturbed one).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import decord
import dlib
import numpy as np
import torch
from harness import REPO, publish

from emoframe.backbones.dlib_resnet import WEIGHTS_FILE, DlibResNet
from emoframe.faces.chips import FaceChipper
from emoframe.faces.models import model_file


def collect_chips(data: Path, video_step: int) -> tuple[np.ndarray, dict[str, int]]:
    chipper = FaceChipper()
    counts: dict[str, int] = {}
    chips = []
    frames = [cv2.imread(str(p))[:, :, ::-1] for p in sorted((data / "afew_va" / "001").glob("*.png"))]
    found = chipper.many(frames)
    counts[f"AFEW-VA 001 ({len(frames)} frames)"] = len(found)
    chips.append(found)
    for video in sorted((data / "videos").glob("*.mp4")):
        reader = decord.VideoReader(str(video))
        index = list(range(0, len(reader), video_step))
        found = chipper.many(reader.get_batch(index).asnumpy())
        counts[f"{video.name} ({len(index)} frames)"] = len(found)
        chips.append(found)
    return np.concatenate(chips), counts


def best_rate(fn, n: int, repeat: int) -> float:
    fn(min(n, 2))  # warm-up
    best = min(_timed(fn, n) for _ in range(repeat))
    return n / best


def _timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--video-step", type=int, default=2, help="every n-th video frame is searched for faces")
    ns = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    chips, counts = collect_chips(Path(ns.data), ns.video_step)
    n = len(chips)
    print(f"{n} chips: {counts}", flush=True)

    weights = model_file(WEIGHTS_FILE)
    reference = dlib.face_recognition_model_v1(str(weights))
    t0 = time.perf_counter()
    model = DlibResNet(input_mean=0.0, input_std=1 / 255).eval()  # raw 0-255 pixels, as dlib takes them
    load_s = time.perf_counter() - t0
    x = torch.from_numpy(chips).permute(0, 3, 1, 2).float()

    expected = np.array([np.array(d) for d in reference.compute_face_descriptor(list(chips))])
    with torch.no_grad():
        ours = model(x).numpy()
    diff = np.abs(ours - expected)
    distances = np.linalg.norm(expected[:, None] - expected[None], axis=2)
    ours_d = np.linalg.norm(ours[:, None] - ours[None], axis=2)
    same = int(((distances < 0.6) == (ours_d < 0.6)).all())
    print(f"max abs diff {diff.max():.2e}, mean {diff.mean():.2e}", flush=True)

    def dlib_batch(size: int):
        def run(count: int) -> None:
            for i in range(0, count, size):
                batch = [chips[j % n] for j in range(i, min(i + size, count))]
                if size == 1:
                    reference.compute_face_descriptor(batch[0])
                else:
                    reference.compute_face_descriptor(batch)

        return run

    def ours_batch(size: int, channels_last: bool = False):
        net = model.to(memory_format=torch.channels_last) if channels_last else model

        def run(count: int) -> None:
            with torch.inference_mode():
                for i in range(0, count, size):
                    idx = [j % n for j in range(i, min(i + size, count))]
                    xb = x[idx]
                    if channels_last:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                    net(xb)

        return run

    count = max(64, n)
    rows = []
    cores = os.cpu_count() or 1
    for size in (1, 32):
        rows.append(("dlib (C++, CPU)", "-", size, best_rate(dlib_batch(size), count, ns.repeat)))
        print(f"{rows[-1]}", flush=True)
        for threads in sorted({cores, 1}, reverse=True):
            torch.set_num_threads(threads)
            for channels_last in (False, True):
                name = "dlib_resnet (PyTorch, CPU" + (", channels_last)" if channels_last else ")")
                rows.append((name, threads, size, best_rate(ours_batch(size, channels_last), count, ns.repeat)))
                model.to(memory_format=torch.contiguous_format)
                print(f"{rows[-1]}", flush=True)
        torch.set_num_threads(cores)

    lines = [
        "## dlib_resnet: the PyTorch port of dlib's face-recognition ResNet against dlib",
        "",
        f"Chips: {n} faces found by dlib's frontal detector ("
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
        + "), aligned by `dlib.get_face_chip` (150x150, padding 0.25).",
        "",
        f"**Parity:** max |ours - dlib| = {diff.max():.2e} over {n} x 128 descriptor values (mean {diff.mean():.2e}; "
        f"descriptor values up to {np.abs(expected).max():.2f}, norms {np.linalg.norm(expected, axis=1).mean():.2f}). "
        f"Same-person decisions at dlib's 0.6 threshold on all {n * (n - 1) // 2} pairs agree: "
        f"{'yes' if same else 'no'}. Loading the weights from the .dat file: {load_s:.2f} s.",
        "",
        f"**Speed** (descriptors/s, best of {ns.repeat} passes over {count} chips; torch threads = the "
        f"{cores} cores, and 1):",
        "",
        "| implementation | torch threads | batch | descriptors/s | vs dlib |",
        "|---|---|---|---|---|",
    ]
    for name, threads, size, rate in rows:
        ref = next(r for nm, _, s, r in rows if s == size and nm.startswith("dlib (C++"))
        lines.append(f"| {name} | {threads} | {size} | {rate:.1f} | {rate / ref:.2f}x |")
    lines += [
        "",
        "The machine is shared by several jobs; figures from one run are comparable with each other, "
        "not with other days. Where other jobs keep the cores busy, torch's threads wait for each other and "
        "one thread is faster than all cores.",
    ]
    publish("dlib_resnet", "\n".join(lines))


if __name__ == "__main__":
    main()
