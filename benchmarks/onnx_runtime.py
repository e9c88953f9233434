"""onnxruntime against PyTorch on the CPU: frames/s of an exported FER2013 classifier at batch 1 and 64.

python benchmarks/onnx_runtime.py [--threads 1,2] [--seconds 1.0] [--rounds 3] [--data ../shared/data]

For recipes/fer2013_small_cnn.yaml and recipes/fer2013_resnet18.yaml (timm ResNet-18, random init: nothing is
downloaded; speed does not depend on the weights), a checkpoint after one training batch (the harness's
``tiny_checkpoint``) is loaded with ``emoframe.load_task`` and exported with ``emoframe.export_model`` (parity checked). Each
runtime then classifies real FER2013 PrivateTest faces (48x48 gray; random ones without the data) at batch 1 and
64: PyTorch as ``emoframe predict`` runs it (eval, ``torch.inference_mode``, channels_last as the recipes set
it), onnxruntime's CPU provider through ``load_exported`` (``ExportedModel.__call__``, tensors in and out), and
TorchScript the same way. Both libraries get the same intra-op threads, for each of ``--threads``. A round runs calls for ``--seconds``;
the median round of ``--rounds`` is reported, as faces/s and as the ratio to PyTorch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from harness import REPO, engine, publish, tiny_checkpoint

import emoframe
from emoframe.export import runtime

MODELS = {"small_cnn": "fer2013_small_cnn.yaml", "resnet18": "fer2013_resnet18.yaml"}
BATCHES = (1, 64)


def faces(data: Path, n: int = 64) -> tuple[torch.Tensor, str]:
    """``n`` PrivateTest faces normalised as the FER2013 recipes do (mean 0.5, std 0.5), and what they are."""
    zip_path = data / "fer2013" / "fer2013.zip"
    if not zip_path.is_file():
        return torch.randn(n, 1, 48, 48), "random 48x48 inputs (FER2013 not found)"
    import cv2

    with zipfile.ZipFile(zip_path) as z:
        names = sorted(m for m in z.namelist() if m.startswith("test/") and "PrivateTest" in m)[:n]
        images = [cv2.imdecode(np.frombuffer(z.read(m), np.uint8), cv2.IMREAD_GRAYSCALE) for m in names]
    x = torch.from_numpy(np.stack(images)).float()[:, None] / 255.0
    return (x - 0.5) / 0.5, f"{n} real FER2013 PrivateTest faces (48x48 gray)"


def throughput(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, seconds: float, rounds: int) -> float:
    """Median over ``rounds`` of items/s, each round calling ``run(x)`` for about ``seconds``."""
    for _ in range(3):
        run(x)
    rates = []
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            run(x)
            calls += 1
        rates.append(calls * len(x) / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()[0]
    x64, what = faces(args.data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, recipe in MODELS.items():
            ckpt = tiny_checkpoint(REPO / "recipes" / recipe, Path(tmp) / "runs", args.data)
            task = emoframe.load_task(ckpt).eval()
            onnx = engine("export_model", ckpt, "onnx", Path(tmp) / f"{name}.onnx")  # parity checked on the recipe's data
            ts = engine("export_model", ckpt, "torchscript", Path(tmp) / f"{name}.ts")
            if task.channels_last:
                task.to(memory_format=torch.channels_last)  # as Task.setup does for fit, test and predict

            def torch_run(x: torch.Tensor, task: torch.nn.Module = task) -> torch.Tensor:
                with torch.inference_mode():
                    return task(x)

            size_mb = onnx.path.stat().st_size / 1e6
            for n in threads:
                torch.set_num_threads(n)
                ort_model = runtime.load_exported(onnx.path, threads=n)
                ts_model = runtime.load_exported(ts.path)
                for batch in BATCHES:
                    x = x64[:batch].contiguous()
                    pt = throughput(torch_run, x, args.seconds, args.rounds)
                    ox = throughput(ort_model, x, args.seconds, args.rounds)
                    tj = throughput(ts_model, x, args.seconds, args.rounds)
                    rows.append((name, n, batch, pt, ox, tj, onnx.parity.max_diff, size_mb))
                    print(f"{name} {n} thr batch {batch}: torch {pt:.0f}/s, onnxruntime {ox:.0f}/s ({ox / pt:.2f}x)")
    load_after = os.getloadavg()[0]
    import onnxruntime

    lines = [
        "## Exported models: onnxruntime against PyTorch on the CPU (FER2013 classifiers, batch 1 and 64)",
        "",
        "Faces/s of one forward pass (preprocessing excluded) of each recipe's model, built as `emoframe.load_model`",
        f"builds it (random weights: nothing downloaded) and exported by `emoframe export`'s code, on {what}.",
        f"PyTorch {torch.__version__} as `emoframe predict` runs it (eval, inference mode, channels_last as the",
        f"recipes set it); onnxruntime {onnxruntime.__version__} CPU provider and TorchScript through",
        "`emoframe.export.runtime.load_exported`, tensors in and out. Median of "
        f"{args.rounds} rounds of {args.seconds:g} s each; both libraries get the same intra-op threads.",
        (
            f"The machine ran nothing else: {os.cpu_count()} cores, 1-minute load average {load_before:.1f} before the "
            f"run and {load_after:.1f} after it (this run's own threads)."
            if load_before < 1.0
            else f"**The machine was shared with other jobs**: {os.cpu_count()} cores, 1-minute load average "
            f"{load_before:.1f} before the run and {load_after:.1f} after it: absolute figures, and the ratios too, "
            "move from run to run (a thread pool waiting for a busy core loses most); rerun on an idle machine "
            "before relying on them."
        ),
        "",
        "| model | threads | batch | PyTorch faces/s | onnxruntime faces/s | onnxruntime / PyTorch | TorchScript faces/s "
        "| parity at export (max abs diff) | ONNX file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, batch, pt, ox, tj, diff, size in rows:
        lines.append(
            f"| {name} | {n} | {batch} | {pt:,.0f} | {ox:,.0f} | **{ox / pt:.2f}x** | {tj:,.0f} | {diff:.1e} | {size:.1f} MB |"
        )
    publish("onnx_runtime", "\n".join(lines))


if __name__ == "__main__":
    main()
