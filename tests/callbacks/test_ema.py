"""The ``ema`` callback (Lightning's EMAWeightAveraging): checkpoints hold the average, the raw weights beside it,
and the average is what the end of fit and ``emoframe test`` use; real FER2013 subset through the builder."""

from __future__ import annotations

from pathlib import Path

import torch

from emoframe.builder import build
from emoframe.cli import main
from emoframe.config import load_recipe

REPO = Path(__file__).resolve().parents[2]


def fit(fer2013_zip: Path, runs: Path, decay: float) -> tuple[dict, torch.nn.Module]:
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
            f"callbacks.ema={{name: ema, decay: {decay}}}",
        ],
    )
    built = build(cfg, "fit")
    built.trainer.fit(built.task, datamodule=built.datamodule)
    ckpt = torch.load(built.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt, built.task


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


def test_decay_zero_is_the_weights_themselves(fer2013_zip: Path, tmp_path: Path) -> None:
    ckpt, _ = fit(fer2013_zip, tmp_path / "none", decay=0.0)
    average, current = ckpt["state_dict"], ckpt["current_model_state"]
    assert all(torch.equal(average[k], current[k]) for k in average if k.endswith(".weight"))
