"""The ``ema`` callback (Lightning's EMAWeightAveraging): checkpoints hold the average, the raw weights beside it,
and the average is what the end of fit and ``emoframe test`` use; real FER2013 subset through the builder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emoframe.builder import build
from emoframe.callbacks import warmed_up_ema
from emoframe.cli import main
from emoframe.config import load_recipe

REPO = Path(__file__).resolve().parents[2]


def fit(fer2013_zip: Path, runs: Path, decay: float, warmup: bool = True) -> tuple[dict, torch.nn.Module]:
    cfg = load_recipe(
        REPO / "recipes" / "fer2013_small_cnn.yaml",
        [
            f"data.root={fer2013_zip}",
            f"run.dir={runs}",
            "data.subset=128",
            "data.loader={batch_size: 32, num_workers: 0}",
            "model.backbone.widths=[8,16]",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
            f"callbacks.ema={{name: ema, decay: {decay}, warmup: {str(warmup).lower()}}}",
        ],
    )
    built = build(cfg, "fit")
    built.trainer.fit(built.task, datamodule=built.datamodule)
    ckpt = torch.load(built.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt, built.task


@pytest.mark.slow
def test_checkpoints_hold_the_average_and_fit_ends_on_it(fer2013_zip: Path, tmp_path: Path) -> None:
    ckpt, task = fit(fer2013_zip, tmp_path / "ema", decay=0.9)
    average, current = ckpt["state_dict"], ckpt["current_model_state"]
    weights = [k for k in average if k.endswith(".weight")]
    assert any(not torch.equal(average[k], current[k]) for k in weights), "the average differs from the weights"
    final = task.state_dict()
    assert all(torch.equal(final[k], average[k]) for k in weights), "fit ends with the averaged weights"
    assert (
        main(
            [
                "test",
                "--ckpt",
                str(tmp_path / "ema" / "fer2013_small_cnn" / "version_0" / "checkpoints" / "last.ckpt"),
                f"data.root={fer2013_zip}",
                "data.subset=128",
                "trainer.enable_progress_bar=false",
            ]
        )
        == 0
    )


@pytest.mark.slow
def test_decay_zero_is_the_weights_themselves(fer2013_zip: Path, tmp_path: Path) -> None:
    ckpt, _ = fit(fer2013_zip, tmp_path / "none", decay=0.0)
    average, current = ckpt["state_dict"], ckpt["current_model_state"]
    assert all(torch.equal(average[k], current[k]) for k in average if k.endswith(".weight"))


def test_warmup_decay_is_timms_schedule() -> None:
    """After n updates the average moves by (1 - d) towards the weights, d = min(decay, (1 + n) / (10 + n))."""
    net = torch.nn.Linear(3, 2)
    average = torch.optim.swa_utils.AveragedModel(net, avg_fn=warmed_up_ema(0.9), use_buffers=True)
    expected = net.weight.detach().clone()
    torch.manual_seed(0)
    for n in range(40):
        with torch.no_grad():
            net.weight.add_(torch.randn_like(net.weight))
        average.update_parameters(net)
        d = 0.0 if n == 0 else min(0.9, (1 + n) / (10 + n))  # the first update copies the weights
        expected = d * expected + (1 - d) * net.weight.detach()
        assert torch.allclose(average.module.weight, expected, atol=1e-6), n


@pytest.mark.slow
def test_warmup_forgets_the_initial_weights_sooner(fer2013_zip: Path, tmp_path: Path) -> None:
    """decay 0.999 over 8 steps: without warm-up the average is still about the initial weights; with it, it
    is much nearer the trained ones (same seed, same steps)."""

    def gap(ckpt: dict) -> float:
        average, current = ckpt["state_dict"], ckpt["current_model_state"]
        return sum(float((average[k] - current[k]).norm()) for k in average if k.endswith(".weight"))

    warm, _ = fit(fer2013_zip, tmp_path / "warm", decay=0.999)
    plain, _ = fit(fer2013_zip, tmp_path / "plain", decay=0.999, warmup=False)
    assert gap(warm) < 0.6 * gap(plain)
