"""Issue 15's cascade table, the frozen rows: dlib's face-recognition ResNet as a fixed extractor on FER2013.

python benchmarks/fer2013_frozen_fr.py [--size 112] [--data ../shared/data] [--limit N] [--no-write]

One pass of `dlib_resnet` (frozen, dlib's shipped weights) over every FER2013 image at the cascade recipes'
input size (recipes/_base/cascade_fr_fer2013.yaml: gray, 112 px, no augmentation) gives the pooled features
of stages 2, 3 and 4 and the 128-d descriptor at once (forward hooks). On each: a linear head fitted to
convergence (scikit-learn's multinomial logistic regression) and Knyazev's route, linear SVMs (LinearSVC,
one-vs-rest), each on standardised features with C chosen on PublicTest; scored on PrivateTest. The features
are cached per split under benchmarks/runs/fer2013_frozen_fr/ (written whole, then renamed), so a rerun
only refits. ``--limit`` takes the first N images of each split (a smoke run; writes nothing to the docs).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from harness import DATA, REPO, fer2013_zip, publish

from emoframe.files.atomic import atomic_write

SPLITS = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
LAYERS = ("stage2", "stage3", "stage4", "embedding")


def extract(datamodule, size: int, split: str, cache: Path, limit: int | None) -> tuple[dict, np.ndarray, float]:
    """Every layer's pooled features and the labels of ``split``, and the seconds the pass took (0: cached)."""
    import torch

    from emoframe.backbones.dlib_resnet import DlibResNet

    path = cache / f"{split}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in LAYERS}, z["labels"], 0.0
    source = datamodule.frame_source(split)
    net = DlibResNet("embedding", freeze=True, in_chans=1, input_mean=0.5, input_std=0.5).eval()
    net = net.to(memory_format=torch.channels_last)
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in LAYERS}
    for index, name in ((1, "stage2"), (2, "stage3"), (3, "stage4")):
        net.stages[index].register_forward_hook(
            lambda _m, _i, out, name=name: pooled[name].append(out.mean((2, 3)).float().numpy())
        )
    n = len(source.labels) if limit is None else min(limit, len(source.labels))
    batches = source.batches(64)
    if limit is not None:
        batches = itertools.islice(batches, (n + 63) // 64)
    t0 = time.perf_counter()
    done = 0
    with torch.inference_mode():
        for x in batches:
            x = x[: n - done]
            assert x.shape[-1] == size, f"expected {size} px inputs, got {tuple(x.shape)}"
            pooled["embedding"].append(net(x.contiguous(memory_format=torch.channels_last)).float().numpy())
            done += len(x)
            if done % 3200 < 64:
                print(f"  {split}: {done}/{n} images, {done / (time.perf_counter() - t0):.0f}/s", flush=True)
    seconds = time.perf_counter() - t0
    feats = {k: np.concatenate(v)[:n] for k, v in pooled.items()}
    labels = source.labels[:n]
    if limit is None:  # a smoke run's subset is not cached
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            np.savez(f, labels=labels, **feats)
    return feats, labels, seconds


def fit_linear(kind: str, grid: list[float], x: dict, y: dict) -> dict:
    """The C of ``grid`` best on validation, refit-free (each C is fitted on train once), scored on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    best: dict = {}
    t0 = time.perf_counter()
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=2000) if kind == "logreg" else LinearSVC(C=c, dual=False)
        model = make_pipeline(StandardScaler(), clf).fit(x["train"], y["train"])
        val = accuracy_score(y["val"], model.predict(x["val"]))
        if not best or val > best["val_acc"]:
            pred = model.predict(x["test"])
            best = {
                "C": c,
                "val_acc": val,
                "test_acc": accuracy_score(y["test"], pred),
                "test_f1": f1_score(y["test"], pred, average="macro"),
            }
    best["seconds"] = time.perf_counter() - t0
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=112, help="input side in px (the cascade recipes': 112)")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--runs", default=str(REPO / "benchmarks" / "runs" / "fer2013_frozen_fr"))
    p.add_argument("--limit", type=int, help="the first N images of each split (a smoke run)")
    p.add_argument("--no-write", action="store_true")
    ns = p.parse_args()
    import torch

    from emoframe.builder import build_datamodule
    from emoframe.config import load_recipe

    zip_path = fer2013_zip(ns.data)
    cfg = load_recipe(
        REPO / "recipes" / "cascade_ng_1_fer2013.yaml",
        [f"data.root={zip_path}", f"data.image.size={ns.size}", "data.loader.num_workers=1"],
    )
    datamodule = build_datamodule(cfg)
    cache = Path(ns.runs) / f"{ns.size}px"
    x: dict = {k: {} for k in LAYERS}
    y: dict = {}
    pass_s = {}
    for split in SPLITS:
        feats, labels, pass_s[split] = extract(datamodule, ns.size, split, cache, ns.limit)
        for k in LAYERS:
            x[k][split] = feats[k]
        y[split] = labels
    images = sum(len(v) for v in y.values())
    extracted = sum(pass_s.values())
    rows = []
    for layer in LAYERS:
        for kind, grid in (("logreg", [0.01, 0.1, 1.0, 10.0]), ("svm", [0.001, 0.01, 0.1, 1.0])):
            r = fit_linear(kind, grid, x[layer], y)
            rows.append((layer, kind, x[layer]["train"].shape[1], r))
            print(layer, kind, r, flush=True)
    name = {"logreg": "linear head (logistic regression)", "svm": "linear SVMs (Knyazev's route)"}
    lines = [
        f"## FER2013: dlib_resnet frozen (face-recognition weights), linear head and SVMs, {ns.size} px",
        "",
        f"One pass of the frozen network over all {images:,} images ("
        + (
            f"{extracted / 60:.1f} min, {images / extracted:.0f} images/s, torch threads {torch.get_num_threads()}"
            if extracted
            else "features read from the cache"
        )
        + "), un-augmented, gray replicated to RGB. Each classifier on standardised features; C from the grid "
        "by PublicTest accuracy; PrivateTest with that C. The fit time is of the whole grid.",
        "",
        "| features | width | classifier | C | PublicTest acc % | PrivateTest acc % | macro F1 % | fit time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for layer, kind, width, r in rows:
        lines.append(
            f"| {layer} | {width} | {name[kind]} | {r['C']:g} | {100 * r['val_acc']:.2f} | "
            f"{100 * r['test_acc']:.2f} | {100 * r['test_f1']:.2f} | {r['seconds']:.0f} s |"
        )
    publish(f"fer2013-frozen-fr-{ns.size}", lines, write=not ns.no_write and ns.limit is None)


if __name__ == "__main__":
    main()
