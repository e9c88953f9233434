"""CCC loss: against independent references, gradient check, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.regression import ConcordanceCorrCoef

from emoframe.functional import concordance
from emoframe.losses import CCCLoss
from emoframe.registry import LOSSES, RecipeError


def avec_reference(pred: np.ndarray, gold: np.ndarray) -> float:
    """The AVEC 2016 script's formula, written from its definition: cov over N, variances with N-1."""
    keep = ~np.isnan(gold)
    x, y = pred[keep].astype(np.float64), gold[keep].astype(np.float64)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (np.var(x, ddof=1) + np.var(y, ddof=1) + (x.mean() - y.mean()) ** 2)


@pytest.fixture()
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.randn(500, 2, generator=g, dtype=torch.float64)
    pred = 0.7 * target + 0.4 * torch.randn(500, 2, generator=g, dtype=torch.float64) + 0.2
    return pred, target


def test_avec_estimator_matches_reference(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = data
    target[::7, 0] = float("nan")  # missing labels are left out, per dimension
    got = concordance(pred, target, "avec")
    for d in range(2):
        assert got[d].item() == pytest.approx(avec_reference(pred[:, d].numpy(), target[:, d].numpy()), abs=1e-6)


def test_unbiased_estimator_matches_torchmetrics(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = data
    ref = ConcordanceCorrCoef(num_outputs=2).double()(pred, target)
    assert torch.allclose(concordance(pred, target, "unbiased"), ref, atol=1e-6)


def test_loss_is_one_minus_weighted_mean(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = data
    ccc = concordance(pred, target)
    assert LOSSES.build({"name": "ccc"})(pred, target).item() == pytest.approx(1 - ccc.mean().item(), abs=1e-12)
    weighted = CCCLoss(weights=[1.0, 3.0])(pred, target)
    assert weighted.item() == pytest.approx(1 - (ccc[0] + 3 * ccc[1]).item() / 4, abs=1e-12)


def test_gradcheck(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = data
    pred = pred[:40].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: CCCLoss()(p, target[:40]), (pred,))


def test_degenerate_inputs_are_defined_or_clear() -> None:
    t = torch.tensor([[1.0], [2.0], [3.0]])
    assert concordance(torch.zeros_like(t), t).item() == 0.0  # constant prediction: no concordance
    assert concordance(torch.ones(3, 1), torch.ones(3, 1)).item() == 1.0  # both constant and equal
    loss = CCCLoss()(torch.full((3, 1), 2.0, requires_grad=True), torch.full((3, 1), 5.0))
    assert torch.isfinite(loss)
    with pytest.raises(RecipeError, match="at least 2 labelled frames"):
        concordance(torch.ones(1, 2), torch.ones(1, 2))
    with pytest.raises(RecipeError, match="at least 2 labelled frames"):
        concordance(torch.ones(4, 1), torch.full((4, 1), float("nan")))
    with pytest.raises(RecipeError, match="differ in shape"):
        concordance(torch.ones(4, 2), torch.ones(4, 1))
