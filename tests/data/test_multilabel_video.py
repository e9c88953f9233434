"""Multi-label video end to end: the documented table format on generated videos of real FER2013 faces.

The set (tests/fixtures/make_multilabel.py): 12 participants (8 train, 2 validation, 2 test) x 2 videos x 80 frames, 7-rater votes for
neutral (most frames), happy, surprise and sad (rare), some frames with two labels. A tiny CNN + LSTM on
48x48 gray crops trains in about 20 s on two CPU cores; its checkpoint then initialises the RECOLA
valence/arousal model (Tzirakis et al.'s transfer).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emoframe.builder import build_datamodule, build_task
from emoframe.cli import main
from emoframe.config import load_recipe, save_recipe
from emoframe.data.multilabel_video import MultilabelVideoDataModule
from emoframe.errors import DataError
from tests.data.test_valence_arousal import tiny_recipe as tiny_recola_recipe
from tests.fixtures.make_multilabel import LABELS

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "multilabel_video_bce.yaml"
SMALL_DATA = {
    "windows": {"size": 8},
    "image": {"size": 48, "channels": 1, "mean": 0.5, "std": 0.5},
    "loader": {"num_workers": 0},
    "workers": 1,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One face-track cache for the module: the videos are decoded and detected once."""
    return tmp_path_factory.mktemp("multilabel_cache")


def tiny_recipe(root: Path, out: Path, cache: Path, *overrides: str) -> Path:
    """recipes/multilabel_video_bce.yaml shrunk for a CPU test (small CNN, 48 px gray crops, 8-frame windows)."""
    cfg = load_recipe(
        RECIPE,
        [
            f"data.videos={root / 'videos'}",
            f"data.annotations={root / 'annotations.csv'}",
            f"data.cache_dir={cache}",
            "data.split.ratios=[0.7,0.15,0.15]",
            "data.loader.batch_size=4",
            "model.temporal.hidden_size=32",
            "optimizer.lr=3.0e-3",
            "trainer.max_epochs=8",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "loggers.wandb=null",
            f"run.dir={out / 'runs'}",
            *overrides,
        ],
    )
    cfg["run"]["name"] = "multilabel_tiny"
    cfg["data"].update({**SMALL_DATA, "loader": {**cfg["data"]["loader"], **SMALL_DATA["loader"]}})
    cfg["model"]["backbone"] = {"name": "small_cnn", "widths": [8, 16, 32]}
    path = out / "multilabel_tiny.yaml"
    save_recipe(cfg, path)
    return path


def datamodule(root: Path, cache: Path, **kwargs: object) -> MultilabelVideoDataModule:
    args = {
        "videos": str(root / "videos"),
        "annotations": str(root / "annotations.csv"),
        "table": {"votes": "majority", "raters": 7},
        "split": {"seed": 0, "ratios": [0.7, 0.15, 0.15]},
        "cache_dir": str(cache),
        **SMALL_DATA,
        **kwargs,
    }
    return MultilabelVideoDataModule(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fitted(multilabel_set: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`emoframe fit` on the generated set: 8 epochs; returns the run directory."""
    out = tmp_path_factory.mktemp("multilabel_fit")
    assert main(["fit", str(tiny_recipe(multilabel_set, out, cache))]) == 0
    return out / "runs" / "multilabel_tiny" / "version_0"


@pytest.mark.slow  # the module's face-track cache of the generated set (cache)
def test_splits_share_no_participant(multilabel_set: Path, cache: Path) -> None:
    dm = datamodule(multilabel_set, cache)
    people = {}
    for split in ("train", "val", "test"):
        names = [r.name for r in dm.recordings(split)]
        people[split] = {name.split("_")[0] for name in names}  # videos are <participant>_<n>
        assert {dm.table.participants[n] for n in names} == people[split]
    assert [len(people[s]) for s in ("train", "val", "test")] == [8, 2, 2]
    assert not (people["train"] & people["val"] or people["train"] & people["test"] or people["val"] & people["test"])


def served(dm: MultilabelVideoDataModule) -> tuple[np.ndarray, int]:
    """Frames per label, and labelled frames, that one epoch of the training loader really serves."""
    counts, total = np.zeros(len(LABELS), np.int64), 0
    for _, targets, _, _, _ in dm.train_dataloader():
        labelled = torch.isfinite(targets).all(dim=-1)
        counts += (targets[labelled] >= 0.5).sum(dim=0).numpy()
        total += int(labelled.sum())
    return counts, total


@pytest.mark.slow  # the module's face-track cache of the generated set (cache)
def test_resampling_raises_rare_shares_by_the_reported_amount(multilabel_set: Path, cache: Path, capfd) -> None:
    plain = datamodule(multilabel_set, cache)
    before, before_total = served(plain)
    boosted = datamodule(multilabel_set, cache, resample={"factor": 3, "frequent_share": 0.5})
    after, after_total = served(boosted)
    rows = {r["label"]: r for r in boosted.count_rows}
    # the report is what the loader serves, before and after
    assert [rows[n]["served_before"] for n in LABELS] == before.tolist()
    assert [rows[n]["served_after"] for n in LABELS] == after.tolist()
    assert rows["labelled frames"]["served_after"] == after_total and before_total == plain.train_label_total
    np.testing.assert_array_equal(boosted.train_label_counts, after)  # what the weighted loss is given
    assert rows["neutral"]["role"] == "frequent" and before[0] / before_total > 0.5  # skewed, like the paper
    for name in ("happy", "surprise", "sad"):
        i = LABELS.index(name)
        assert rows[name]["role"] == "rare"
        assert rows[name]["share_after"] == pytest.approx(after[i] / after_total)
        assert after[i] / after_total > before[i] / before_total + 0.03, (name, before, after)
    assert after[0] == before[0]  # windows with neutral are never repeated
    err = capfd.readouterr().err
    assert "before and after re-sampling" in err and "neutral" in err


@pytest.mark.slow  # the module's 8-epoch fit (fitted)
def test_short_fit_beats_the_all_frequent_baseline_on_rare_labels(fitted: Path, capsys) -> None:
    rows = list(csv.DictReader((fitted / "csv" / "version_0" / "metrics.csv").open()))
    val = [r for r in rows if r.get("val/auroc_rare")]
    last = float(val[-1]["val/auroc_rare"])
    # predicting neutral for every frame scores every frame alike: AUROC 0.5 on each rare label
    assert last > 0.75, f"rare-label validation AUROC {last} (constant baseline: 0.5)"
    counts = list(csv.DictReader((fitted / "label_counts.csv").open()))
    assert [r["label"] for r in counts] == [*LABELS, "labelled frames"]
    # thresholds tuned on validation live in the checkpoint
    best = fitted / "checkpoints" / "best.ckpt"
    state = torch.load(best, map_location="cpu", weights_only=False)
    thresholds = state["state_dict"]["thresholds"]
    assert thresholds.shape == (len(LABELS),) and not torch.all(thresholds == 0.5)
    # test: per-label scores on held-out participants, at the tuned thresholds
    assert main(["test", "--ckpt", str(best)]) == 0
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if "\t" in line)
    assert {"test/auroc", "test/ap", "test/f1", "test/f1_default", "test/auroc/sad"} <= set(printed)
    report = {r["label"]: r for r in csv.DictReader((fitted / "test" / "test_labels.csv").open())}
    assert list(report) == list(LABELS)
    assert float(report["happy"]["threshold"]) == pytest.approx(float(thresholds[1]), abs=1e-6)
    assert float(printed["test/auroc"]) > 0.75


@pytest.mark.slow  # the module's 8-epoch fit (fitted)
def test_predict_writes_per_frame_probabilities_and_decisions(fitted: Path, multilabel_set: Path, tmp_path: Path):
    video = multilabel_set / "videos" / "p00_0.mp4"
    out = tmp_path / "predictions.csv"
    ckpt = fitted / "checkpoints" / "best.ckpt"
    assert main(["predict", "--ckpt", str(ckpt), f"data.predict_videos=[{video}]", "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 80 and [int(r["frame"]) for r in rows] == list(range(80))
    assert {f"p_{n}" for n in LABELS} | set(LABELS) <= set(rows[0])
    probs = np.array([[float(r[f"p_{n}"]) for n in LABELS] for r in rows if r["face"] == "1"])
    assert len(probs) > 70 and ((probs >= 0) & (probs <= 1)).all()


@pytest.mark.slow  # the module's 8-epoch fit (fitted)
def test_a_multilabel_checkpoint_initialises_the_valence_arousal_model(
    fitted: Path, recola_set: Path, tmp_path: Path
) -> None:
    """One recipe key (``model.init_from``): the regressor starts from the multi-label backbone and LSTM."""
    best = fitted / "checkpoints" / "best.ckpt"
    recipe = tiny_recola_recipe(recola_set, tmp_path, model__init_from=str(best), trainer__max_epochs=1)
    cfg = load_recipe(recipe)
    model = build_task(cfg, build_datamodule(cfg))
    source = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    own = model.state_dict()
    moved = [k for k in source if k.startswith(("backbone.", "temporal."))]
    assert len(moved) > 10
    for key in moved:
        assert torch.equal(own[key], source[key]), key
    assert own["head.net.1.weight"].shape[0] == 2 != source["head.net.1.weight"].shape[0]  # a new head: 2 targets
    assert main(["fit", str(recipe)]) == 0  # and training runs from there


@pytest.mark.slow  # the module's face-track cache of the generated set (cache)
def test_a_video_missing_from_the_folder_is_named(multilabel_set: Path, cache: Path, tmp_path: Path) -> None:
    root = tmp_path / "set"
    shutil.copytree(multilabel_set, root)
    (root / "videos" / "p03_1.mp4").unlink()
    with pytest.raises(DataError, match=r"annotations.csv: video 'p03_1' has annotation rows but no file .*p03_1.mp4"):
        datamodule(root, cache).setup("fit")
    skipping = datamodule(root, cache, on_bad_recording="skip")
    skipping.setup("fit")
    assert "p03_1" in skipping.skipped


def test_bad_tables_stop_the_run_in_one_line(multilabel_set: Path, tmp_path: Path, capsys) -> None:
    table = tmp_path / "annotations.csv"
    lines = (multilabel_set / "annotations.csv").read_text().splitlines()
    lines[5] = lines[5].replace(",p00,", ",,")
    table.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    recipe = tiny_recipe(multilabel_set, out, tmp_path / "cache", f"data.annotations={table}")
    assert main(["fit", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emoframe: error: ") and f"{table}:6: no participant" in err[-1]
    recipe = tiny_recipe(multilabel_set, out, tmp_path / "cache", "data.labels=[neutral,happy,sad]")
    assert main(["fit", str(recipe)]) == 2
    assert "column 'surprise' is a label in the table but not in data.labels" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_processes_score_every_validation_frame_once(
    multilabel_set: Path, cache: Path, tmp_path: Path, capsys
) -> None:
    """Two CPU processes (gloo): the logged validation metrics equal one process validating the same weights."""
    import os
    import subprocess
    import sys

    recipe = tiny_recipe(
        multilabel_set,
        tmp_path,
        cache,
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "ddp.log"
    with log.open("w") as out:
        cmd = [sys.executable, "-m", "emoframe", "fit", str(recipe)]
        proc = subprocess.run(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=600)
    assert proc.returncode == 0, log.read_text()[-3000:]
    run = tmp_path / "runs" / "multilabel_tiny" / "version_0"
    assert not (run.parent / "version_1").exists()
    assert log.read_text().count("before and after re-sampling") == 1  # reported once, by rank 0
    rows = [r for r in csv.DictReader((run / "csv" / "version_0" / "metrics.csv").open()) if r.get("val/auroc")]
    logged = rows[-1]
    single = ["trainer.devices=1", "trainer.strategy=auto"]
    assert main(["validate", "--ckpt", str(run / "checkpoints" / "last.ckpt"), *single]) == 0
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if line.startswith("val/"))
    for key in ("val/auroc", "val/ap", "val/f1", "val/auroc/neutral", "val/ap/sad"):
        assert float(printed[key]) == pytest.approx(float(logged[key]), abs=1e-4), key  # printed to 4 places
