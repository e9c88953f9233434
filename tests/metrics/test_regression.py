"""Epoch CCC metric: AVEC reference over concatenated recordings, NaN masking, batching, real two-process DDP."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from emoframe.errors import DataError
from emoframe.metrics import ConcordanceMetric
from emoframe.registry import RecipeError

NAMES = ["arousal", "valence"]


def avec_ccc(pred: np.ndarray, gold: np.ndarray) -> float:
    """The AVEC 2016 scripts' CCC written from its definition with numpy: cov over N, variances over N-1."""
    keep = ~np.isnan(gold)
    x, y = pred[keep].astype(np.float64), gold[keep].astype(np.float64)
    cov = np.sum((x - x.mean()) * (y - y.mean())) / len(x)
    return 2 * cov / (np.var(x, ddof=1) + np.var(y, ddof=1) + (x.mean() - y.mean()) ** 2)


def recordings(seed: int = 0, lengths: tuple[int, ...] = (750, 1003, 498, 1251)) -> tuple[np.ndarray, np.ndarray]:
    """Several 'recordings' of (T, 2) float32 labels and predictions, concatenated; each has its own offset."""
    rng = np.random.default_rng(seed)
    preds, golds = [], []
    for t in lengths:
        gold = np.cumsum(rng.normal(0, 0.05, (t, 2)), axis=0) + rng.normal(0, 0.3, 2)
        preds.append(0.6 * gold + rng.normal(0, 0.2, (t, 2)) + 0.1)
        golds.append(gold)
    return np.concatenate(preds).astype(np.float32), np.concatenate(golds).astype(np.float32)


def test_matches_numpy_avec_reference_over_concatenated_recordings() -> None:
    pred, gold = recordings()
    metric = ConcordanceMetric(NAMES)
    metric.update(torch.from_numpy(pred), torch.from_numpy(gold))
    out = metric.compute()
    assert set(out) == {"arousal", "valence", "mean"}
    for d, name in enumerate(NAMES):
        assert out[name].item() == pytest.approx(avec_ccc(pred[:, d], gold[:, d]), abs=1e-6)
    assert out["mean"].item() == pytest.approx((out["arousal"] + out["valence"]).item() / 2, abs=1e-12)
    # Not the per-recording average: concatenation is what AVEC scores, and the two differ here.
    bounds = np.cumsum((0, 750, 1003, 498, 1251))
    per_rec = np.mean([avec_ccc(pred[a:b, 0], gold[a:b, 0]) for a, b in itertools.pairwise(bounds)])
    assert abs(per_rec - out["arousal"].item()) > 1e-3


def test_nan_targets_masked_per_dimension() -> None:
    pred, gold = recordings(1)
    gold[::5, 1] = np.nan  # valence missing on every fifth frame, arousal complete
    gold[100:180, 0] = np.nan
    out = ConcordanceMetric(NAMES)(torch.from_numpy(pred), torch.from_numpy(gold))
    assert all(torch.isfinite(v) for v in out.values())
    for d, name in enumerate(NAMES):
        assert out[name].item() == pytest.approx(avec_ccc(pred[:, d], gold[:, d]), abs=1e-6)


def test_batched_updates_equal_one_update_and_reset_clears() -> None:
    pred, gold = recordings(2)
    whole = ConcordanceMetric(NAMES)
    whole.update(torch.from_numpy(pred), torch.from_numpy(gold))
    batched = ConcordanceMetric(NAMES)
    # (B, T, D) sequence batches of varying size, as a CNN+LSTM task would give
    for start, size in ((0, 3), (3, 7), (10, 1)):
        rows = slice(start * 150, (start + size) * 150)
        batched.update(torch.from_numpy(pred[rows]).view(size, 150, 2), torch.from_numpy(gold[rows]).view(size, 150, 2))
    batched.update(torch.from_numpy(pred[1650:]), torch.from_numpy(gold[1650:]))
    a, b = whole.compute(), batched.compute()
    for key in a:
        assert a[key].item() == pytest.approx(b[key].item(), abs=1e-12)
    batched.reset()
    batched.update(torch.from_numpy(pred[:10]), torch.from_numpy(gold[:10]))
    assert batched.compute()["arousal"].item() == pytest.approx(avec_ccc(pred[:10, 0], gold[:10, 0]), abs=1e-6)


def test_bad_inputs_fail_with_one_clear_line() -> None:
    with pytest.raises(RecipeError, match="distinct names other than 'mean'"):
        ConcordanceMetric(["arousal", "arousal"])
    with pytest.raises(RecipeError, match="expected 'avec' or 'unbiased'"):
        ConcordanceMetric(NAMES, estimator="pearson")  # type: ignore[arg-type]
    metric = ConcordanceMetric(NAMES)
    with pytest.raises(RecipeError, match=r"expected predictions of shape \(\.\.\., 2\)"):
        metric.update(torch.zeros(8, 3), torch.zeros(8, 3))
    with pytest.raises(RecipeError, match="differ in shape"):
        metric.update(torch.zeros(8, 2), torch.zeros(4, 2))
    target = torch.randn(8, 2)
    target[1:, 1] = float("nan")
    metric.update(torch.randn(8, 2), target)
    with pytest.raises(DataError, match="target 'valence' has 1 labelled frame"):
        metric.compute()
    single = ConcordanceMetric(["arousal"])
    single.update(torch.arange(5.0), torch.arange(5.0))  # (N,) accepted for one target
    # identical series: AVEC gives (N-1)/N, not 1 (covariance over N, variances over N-1)
    assert single.compute()["arousal"].item() == pytest.approx(4 / 5)


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One gloo process: update with this rank's uneven share of batches (rank 1 of ``idle`` gets none)."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        pred, gold = recordings(3)
        gold[::7, 0] = np.nan
        p, g = torch.from_numpy(pred), torch.from_numpy(gold)
        shared = ConcordanceMetric(NAMES)
        for lo, hi in [(0, 700), (700, 1900), (1900, 2000), (2000, 3502)][rank::world]:  # sizes differ per rank
            shared.update(p[lo:hi], g[lo:hi])
        idle = ConcordanceMetric(NAMES)
        if rank == 0:
            idle.update(p, g)
        result = {f"shared/{k}": v.item() for k, v in shared.compute().items()}
        result.update({f"idle/{k}": v.item() for k, v in idle.compute().items()})
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_ddp_two_processes_equal_one_process(tmp_path: Path) -> None:
    """Two gloo processes, uneven batches per rank, and a rank with no data, give the one-process value."""
    # fork: the children inherit the imported modules instead of re-importing torch (seconds, not half a minute)
    mp.start_processes(
        _ddp_worker, args=(2, str(tmp_path / "pg_init"), str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    pred, gold = recordings(3)
    gold[::7, 0] = np.nan
    single = ConcordanceMetric(NAMES)(torch.from_numpy(pred), torch.from_numpy(gold))
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for key, value in single.items():
            assert got[f"shared/{key}"] == pytest.approx(value.item(), abs=1e-9), (rank, key)
            assert got[f"idle/{key}"] == pytest.approx(value.item(), abs=1e-9), (rank, key)
