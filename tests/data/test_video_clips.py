"""Video clip classification end to end: AFEW-layout clips, CNN + LSTM with and without frame shuffle.

Runs on the generated AFEW-layout set (tests/fixtures/make_afew.py: MJPG clips of real FER2013 faces, three
classes, a held-out labelled folder for data.folders.test), with a tiny CNN on 48x48 gray crops and 8 frames
per clip, so the module takes well under a minute on two CPU cores.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emoframe.builder import build
from emoframe.cli import main
from emoframe.config import load_recipe, save_recipe
from emoframe.data.afew import AfewDataModule, VideoFolderDataModule
from emoframe.data.video.clips import FrameShuffle, sample_frames
from emoframe.errors import DataError
from emoframe.files.video import iter_frames
from emoframe.heads import LinearHead
from emoframe.labels import EMOTIONS
from emoframe.losses import CrossEntropy
from emoframe.registry import TEMPORAL, RecipeError
from emoframe.tasks.sequence_classifier import SequenceClassifier
from tests.fixtures.make_recola import background

REPO = Path(__file__).resolve().parents[2]
RECIPES = {name: REPO / "recipes" / f"{name}.yaml" for name in ("afew_cnn_lstm", "afew_cnn_lstm_shuffle")}
FACES = {"keep": "tracked", "fallback": "frame", "threshold": -0.5}  # the recipes': one face-track cache for all
SMALL = {"image": {"size": 48, "channels": 1}, "workers": 1, "faces": FACES}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_recipe(name: str, root: Path, out: Path) -> Path:
    """A recipes/afew_cnn_lstm*.yaml shrunk for a CPU test: random tiny CNN trained end to end, 8 frames, Adam."""
    cfg = load_recipe(
        RECIPES[name],
        [
            f"data.root={root}",
            "data.folders.test=Heldout_AFEW",
            "data.clip.frames=8",
            "data.loader.batch_size=4",
            "data.loader.num_workers=0",
            "data.workers=1",
            "model.freeze_backbone=false",
            "model.backbone.widths=[8,16,32]",
            "model.temporal.hidden_size=32",
            "trainer.max_epochs=15",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "loggers.wandb=null",
            f"run.dir={out / 'runs'}",
        ],
    )
    cfg["optimizer"] = {"name": "adam", "lr": 3.0e-3}
    cfg.pop("scheduler")
    path = out / f"{name}.yaml"
    save_recipe(cfg, path)
    return path


@pytest.fixture(scope="module", params=list(RECIPES))
def fitted(request: pytest.FixtureRequest, afew_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`emoframe fit` of one recipe (15 epochs of 15 training clips); returns the run directory."""
    out = tmp_path_factory.mktemp(request.param)
    assert main(["fit", str(tiny_recipe(request.param, afew_set, out))]) == 0
    return out / "runs" / request.param / "version_0"


def clip_labels(folder: Path) -> dict[str, str]:
    """``<Emotion>/<clip>`` -> emotion for the clips of a split folder."""
    return {f"{p.parent.name}/{p.stem}": p.parent.name.lower() for p in sorted(folder.glob("*/*.avi"))}


@pytest.mark.slow  # the module's video-clip fits (fitted)
def test_fit_then_test_beats_the_majority_class_on_held_out_clips(fitted: Path, afew_set: Path, capsys) -> None:
    best = fitted / "checkpoints" / "best.ckpt"
    assert best.is_file() and (fitted / "checkpoints" / "last.ckpt").is_file()
    recipe = torch.load(best, map_location="cpu", weights_only=False)["emoframe_recipe"]
    shuffled = recipe["run"]["name"].endswith("_shuffle")
    assert recipe["data"]["clip"].get("transforms") == ([{"name": "frame_shuffle", "p": 1.0}] if shuffled else None)
    capsys.readouterr()
    assert main(["test", "--ckpt", str(best)]) == 0
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if "\t" in line)
    truth = clip_labels(afew_set / "Heldout_AFEW")
    majority = max(Counter(truth.values()).values()) / len(truth)
    assert float(printed["test/acc"]) > majority, (printed["test/acc"], majority)
    capsys.readouterr()
    assert main(["validate", "--ckpt", str(best)]) == 0  # the clips best.ckpt was chosen on
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if "\t" in line)
    val = clip_labels(afew_set / "Val_AFEW")
    assert float(printed["val/acc"]) > max(Counter(val.values()).values()) / len(val), printed["val/acc"]
    rows = list(csv.reader((fitted / "test" / "test_confusion.csv").open()))
    assert rows[0] == ["true\\pred", *EMOTIONS] and sum(int(v) for r in rows[1:] for v in r[1:]) == len(truth)
    assert (fitted / "test" / "test_confusion.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # the module's video-clip fits (fitted)
def test_predict_writes_per_clip_probabilities(fitted: Path, afew_set: Path, tmp_path: Path) -> None:
    best = str(fitted / "checkpoints" / "best.ckpt")
    out = tmp_path / "heldout.csv"
    assert main(["predict", "--ckpt", best, "--output", str(out)]) == 0  # no clips given: the test split
    rows = list(csv.DictReader(out.open()))
    truth = clip_labels(afew_set / "Heldout_AFEW")
    assert [r["clip"] for r in rows] == list(truth) and [r["target"] for r in rows] == list(truth.values())
    probs = np.array([[float(r[f"p_{c}"]) for c in EMOTIONS] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert [r["pred"] for r in rows] == [EMOTIONS[i] for i in probs.argmax(axis=1)]
    assert all(int(r["frames"]) == 8 for r in rows)  # every clip has >= 10 frames with a crop
    flat = tmp_path / "Test_AFEW"  # EmotiW's unlabelled test folder: clips without class folders
    flat.mkdir()
    for clip in sorted((afew_set / "Val_AFEW").glob("*/*.avi"))[:3]:
        shutil.copy(clip, flat / clip.name)
    out = tmp_path / "unlabelled.csv"
    assert main(["predict", "--ckpt", best, f"data.predict_videos=[{flat}]", "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["video"] for r in rows] == [str(p) for p in sorted(flat.glob("*.avi"))]
    assert all(r["target"] == "" and r["pred"] in EMOTIONS for r in rows)


def test_missing_afew_fails_in_one_line(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "AFEW"
    recipe = str(RECIPES["afew_cnn_lstm"])
    assert main(["fit", recipe, f"data.root={missing}", f"run.dir={tmp_path}", "loggers.wandb=null"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"AFEW not found at {missing}: expected {missing}/Train_AFEW/<Emotion>/<clip>.avi" in err
    assert f"{missing}/Val_AFEW/<Emotion>/<clip>.avi" in err and "AFEW_ROOT" in err


def afew(root: Path, batch_size: int = 8, **clip: object) -> AfewDataModule:
    """AFEW from ``root`` at 48 px gray, ``clip`` settings over 8 frames (``on_bad_video``, ``folders``, ``faces``: the
    datamodule's own)."""
    own = {key: clip.pop(key) for key in ("on_bad_video", "folders", "faces") if key in clip}
    loader = {"batch_size": batch_size, "num_workers": 0}
    return AfewDataModule(str(root), **{**SMALL, "clip": {"frames": 8, **clip}, "loader": loader, **own})  # type: ignore[arg-type]


def small_copy(afew_set: Path, root: Path) -> Path:
    """Two training and one validation clip of each of two classes (their face tracks are already cached)."""
    for split, count in (("Train_AFEW", 2), ("Val_AFEW", 1)):
        for emotion in ("Happy", "Sad"):
            for clip in sorted((afew_set / split / emotion).glob("*.avi"))[:count]:
                (root / split / emotion).mkdir(parents=True, exist_ok=True)
                shutil.copy(clip, root / split / emotion / clip.name)
    return root


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (160, 120))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.mark.slow
def test_bad_clips_error_in_one_line_or_are_counted(afew_set: Path, tmp_path: Path, capfd) -> None:
    good = next((afew_set / "Train_AFEW" / "Happy").glob("*.avi")).read_bytes()
    rng = np.random.default_rng(0)
    nobody = [cv2.cvtColor(background(rng), cv2.COLOR_GRAY2BGR)] * 6  # a real clip without a face
    bad = {  # path under Train_AFEW -> writer; each must stop a load with one line naming it
        "Happy/truncated.avi": lambda p: p.write_bytes(good[:2000]),
        "Happy/notes.avi": lambda p: p.write_text("not a video"),
        "Sad/zero.avi": lambda p: write_video(p, []),  # a container with no frames
        "Sad/readme.txt": lambda p: p.write_text("clip list"),
        "Contempt/000999999.avi": lambda p: p.write_bytes(good),  # not one of the seven classes
    }
    expected = {"Happy/truncated.avi": "Cannot read video", "Happy/notes.avi": "Cannot read video",
                "Sad/zero.avi": "Cannot read video", "Sad/readme.txt": "not a video",
                "Contempt/000999999.avi": "Class folder 'Contempt'"}  # fmt: skip
    for i, (rel, write) in enumerate(bad.items()):
        root = small_copy(afew_set, tmp_path / f"one_{i}")
        (root / "Train_AFEW" / rel).parent.mkdir(parents=True, exist_ok=True)
        write(root / "Train_AFEW" / rel)
        with pytest.raises(DataError) as err:
            afew(root).setup("fit")
        line = str(err.value)
        assert "\n" not in line and expected[rel] in line and line.endswith("or set data.on_bad_video: skip")
        assert Path(rel).name in line or "Contempt" in line, line
    root = small_copy(afew_set, tmp_path / "all")
    for rel, write in bad.items():
        (root / "Train_AFEW" / rel).parent.mkdir(parents=True, exist_ok=True)
        write(root / "Train_AFEW" / rel)
    write_video(root / "Train_AFEW" / "Sad" / "nobody.avi", nobody)
    (root / "Train_AFEW" / "Happy" / "cut.avi").write_bytes(good[: len(good) // 2])  # cut mid-stream
    capfd.readouterr()
    dm = afew(root, on_bad_video="skip")
    dm.setup("fit")
    skipped = {str(Path(p).relative_to(root / "Train_AFEW")) for p in dm.skipped}
    assert skipped == {"Happy/truncated.avi", "Happy/notes.avi", "Sad/zero.avi", "Sad/readme.txt", "Contempt"}
    assert "Skipped 5 recordings" in capfd.readouterr().err
    train = {r.name: r for r in dm.recordings("train")}
    assert len(train) == 6 and len(dm.recordings("val")) == 2  # 4 good clips, nobody (whole frames) and cut
    assert len(train["Sad/nobody"]) == 6 and train["Sad/nobody"].valid.all()  # fallback: frame passes whole frames
    original = sorted(n for n in train if n.startswith("Happy/0"))[0]
    assert 0 < len(train["Happy/cut"]) < len(train[original])  # an AVI cut mid-stream keeps its intact frames
    frames, mask, *_ = next(iter(dm.train_dataloader()))
    assert frames.shape[1:] == (8, 1, 48, 48) and mask.any(dim=1).all()
    # fallback: drop leaves the faceless clip with no frame: always skipped and counted, never fatal
    root = small_copy(afew_set, tmp_path / "drop")
    write_video(root / "Train_AFEW" / "Sad" / "nobody.avi", nobody)
    dm = afew(root, faces={**FACES, "fallback": "drop"})
    dm.setup("fit")
    assert list(dm.skipped) == [str(root / "Train_AFEW" / "Sad" / "nobody.avi")]
    assert "no face in any of its 6 frames" in dm.skipped[str(root / "Train_AFEW" / "Sad" / "nobody.avi")]
    assert len(dm.recordings("train")) == 4 and "Skipping" in capfd.readouterr().err


def frame_set(frames: torch.Tensor) -> list[bytes]:
    return sorted(f.numpy().tobytes() for f in frames)


def test_frame_shuffle_permutes_training_clips_only(afew_set: Path) -> None:
    """24 frames per clip (more than any clip has, so all are taken, in order, and the rest is padding)."""
    plain = afew(afew_set, frames=24, sampling="all", batch_size=15)
    shuffled = afew(afew_set, frames=24, sampling="all", batch_size=15, transforms=[{"name": "frame_shuffle"}])
    torch.manual_seed(0)
    frames, mask, label, clip = next(iter(shuffled.train_dataloader()))
    reference = plain.dataset("train")
    assert len(clip) == 15
    for i, c in enumerate(clip.tolist()):
        ref_frames, ref_mask, ref_label, _ = reference[c]
        n = int(ref_mask.sum())
        assert 10 <= n < 24 and torch.equal(mask[i], ref_mask) and int(label[i]) == ref_label
        assert mask[i, :n].all() and not mask[i, n:].any() and (frames[i, n:] == 0).all()  # padding stays at the end
        assert frame_set(frames[i, :n]) == frame_set(ref_frames[:n])  # the same frames...
        assert not torch.equal(frames[i, :n], ref_frames[:n])  # ...in another order
    for a, b in zip(shuffled.val_dataloader(), plain.val_dataloader()):  # evaluation keeps the order
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    x, m = torch.arange(6.0).reshape(6, 1), torch.tensor([True] * 4 + [False] * 2)
    assert torch.equal(FrameShuffle(p=0.0)(x, m)[0], x)
    assert sorted(FrameShuffle()(x, m)[0][:4, 0].tolist()) == [0, 1, 2, 3]
    with pytest.raises(RecipeError, match=r"frame_shuffle.p: expected a probability"):
        FrameShuffle(p=1.5)
    with pytest.raises(RecipeError, match=r"data.clip.transforms\[0\]: 'face_crop' is not a clip transform"):
        afew(afew_set, transforms=[{"name": "face_crop"}])


def test_sampling_uniform_all_and_stride(afew_set: Path) -> None:
    ones = np.ones(100, bool)
    assert sample_frames(ones, 4, "uniform").tolist() == [12, 37, 62, 87]  # each quarter's middle frame
    jittered = sample_frames(ones, 4, "uniform", rng=np.random.default_rng(0))
    assert [int(i) // 25 for i in jittered] == [0, 1, 2, 3]  # training: a random frame in each quarter
    assert sample_frames(ones[:3], 4, "uniform").tolist() == [0, 1, 2]  # short clip: every frame, then padding
    holes = np.arange(20) % 2 == 0  # frames without a crop (fallback: drop) are never picked
    assert sample_frames(holes, 4, "uniform").tolist() == [2, 6, 12, 16]
    assert sample_frames(ones, 10, "all").tolist() == list(range(45, 55))  # evaluation: the middle window
    window = sample_frames(ones, 10, "all", rng=np.random.default_rng(1))
    assert np.all(np.diff(window) == 1) and len(window) == 10
    assert sample_frames(ones, 5, "stride", step=4).tolist() == [40, 44, 48, 52, 56]
    assert sample_frames(ones[:10], 5, "stride", step=4).tolist() == [0, 4, 8]
    assert sample_frames(holes, 5, "stride", step=3).tolist() == [2, 8, 14]  # 2, 5, ... 14: dropped frames left out
    dm = afew(afew_set, frames=4, sampling="stride", stride_s=0.08)  # 2 frames apart at the clips' 25 fps
    val = dm.dataset("val")
    rec = dm.recordings("val")[0]
    start = (len(rec) - 8) // 2  # 4 frames 2 apart span 8 frames, centred in evaluation
    assert rec.fps == 25.0 and len(rec) > 8 and val.indices(0).tolist() == list(range(start, start + 8, 2))
    with pytest.raises(DataError, match=r"data.clip.stride_s: expected seconds > 0 with sampling: stride"):
        afew(afew_set, sampling="stride")
    with pytest.raises(RecipeError, match=r"Out of range data.clip.frames: expected >= 1 and <= 100000, got 0"):
        afew(afew_set, frames=0)


def test_batches_labels_and_the_default_test_split(afew_set: Path) -> None:
    dm = afew(afew_set, batch_size=6)
    assert [r.name for r in dm.recordings("test")] == [r.name for r in dm.recordings("val")]  # Val_AFEW
    assert dm.train_label_counts.tolist() == [0, 0, 0, 5, 5, 5, 0]  # happy, sad, surprise in EMOTIONS order
    frames, mask, label, clip = next(iter(dm.val_dataloader()))
    assert frames.shape == (6, 8, 1, 48, 48) and frames.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.all() and label.dtype == clip.dtype == torch.int64
    recs = dm.recordings("val")
    assert [EMOTIONS[int(y)] for y in label] == [recs[int(c)].name.split("/")[0].lower() for c in clip]
    held = afew(afew_set, folders={"test": "Heldout_AFEW"})
    assert {r.name for r in held.recordings("test")} == set(clip_labels(afew_set / "Heldout_AFEW"))


def test_video_folder_on_a_user_layout(afew_set: Path, tmp_path: Path) -> None:
    """root/<split>/<class>/<clip>: class folders named by the user, mapped by class_map; a frame-folder clip."""
    root = tmp_path / "mine"
    for split, source, count in (("train", "Train_AFEW", 2), ("val", "Val_AFEW", 1)):
        for folder, emotion in (("joy", "Happy"), ("glum", "Sad"), ("other", "Surprise")):
            for clip in sorted((afew_set / source / emotion).glob("*.avi"))[:count]:
                (root / split / folder).mkdir(parents=True, exist_ok=True)
                shutil.copy(clip, root / split / folder / clip.name)
    frames_dir = root / "train" / "joy" / "frames_clip"  # a clip given as a folder of frame images
    frames_dir.mkdir()
    video = sorted((afew_set / "Val_AFEW" / "Happy").glob("*.avi"))[-1]
    for i, frame in iter_frames(video):
        cv2.imwrite(str(frames_dir / f"{i:05d}.png"), frame[:, :, ::-1])
    kwargs = {**SMALL, "clip": {"frames": 8}, "loader": {"num_workers": 0}}
    folders = {"test": "val"}
    with pytest.raises(DataError, match=r"Class folder 'glum' in .*train is not an emotion.*data.class_map"):
        VideoFolderDataModule(str(root), folders=folders, **kwargs).setup("fit")  # type: ignore[arg-type]
    class_map = {"joy": "happy", "glum": "sad", "other": None}
    dm = VideoFolderDataModule(str(root), folders=folders, class_map=class_map, **kwargs)  # type: ignore[arg-type]
    train = {r.name: r for r in dm.recordings("train")}
    assert sorted(train) == sorted([*(f"joy/{p.stem}" for p in (root / "train" / "joy").glob("*.avi")),
                                    *(f"glum/{p.stem}" for p in (root / "train" / "glum").glob("*.avi")),
                                    "joy/frames_clip"])  # fmt: skip
    assert {EMOTIONS[r.extra["label"]] for n, r in train.items() if n.startswith("joy/")} == {"happy"}
    folder_clip = train["joy/frames_clip"]
    assert (
        folder_clip.fps == 25.0 and len(folder_clip) == len(list(frames_dir.glob("*.png"))) and folder_clip.valid.all()
    )
    assert len(dm.recordings("test")) == 2 and dm.train_label_counts.tolist() == [0, 0, 0, 3, 2, 0, 0]
    frames, mask, label, clip = next(iter(dm.train_dataloader()))
    assert frames.shape[1:] == (8, 1, 48, 48) and mask.any(dim=1).all()
    recs = dm.recordings("train")
    assert label.tolist() == [recs[c].extra["label"] for c in clip.tolist()] and set(label.tolist()) <= {3, 4}
    with pytest.raises(DataError, match=r"No train folder 'training' in .*mine: expected .*<split>/<class>/<clip>"):
        VideoFolderDataModule(str(root), folders={**folders, "train": "training"}, class_map=class_map, **kwargs)  # type: ignore


def test_sequence_classifier_ignores_padding_freezes_and_loads_fer_weights(afew_set: Path, tmp_path: Path) -> None:
    from emoframe.backbones.small_cnn import SmallCNN

    torch.manual_seed(0)
    x = torch.randn(2, 6, 1, 48, 48)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False  # the second clip has 4 frames
    garbage = x.clone()
    garbage[1, 4:] = 100.0
    for name, bidirectional in (("lstm", False), ("lstm", True), ("gru", False), ("mean", False)):
        args = {"hidden_size": 8, "num_layers": 1, "bidirectional": bidirectional} if name != "mean" else {}
        width = TEMPORAL.get(name).output_width(16, **args)
        backbone, head = SmallCNN(1, [8, 16]), LinearHead(width, 7)
        temporal = TEMPORAL.build({"name": name, **args}, in_features=16)
        parts = {"backbone": backbone, "temporal": temporal, "head": head, "loss": CrossEntropy()}
        model = SequenceClassifier(**parts, class_names=list(EMOTIONS)).eval()
        a, b = model(x, mask), model(garbage, mask)
        assert a.shape == (2, 7)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(model(x[1:, :4]), a[1:])  # padding changes nothing: same as the 4-frame clip
    lstm = TEMPORAL.build({"name": "lstm", "hidden_size": 8, "num_layers": 1}, in_features=16)
    parts = {"backbone": SmallCNN(1, [8, 16]), "temporal": lstm, "head": LinearHead(8, 7), "loss": CrossEntropy()}
    frozen = SequenceClassifier(**parts, class_names=list(EMOTIONS), freeze_backbone=True).train()
    assert not frozen.backbone.training and frozen.temporal.training
    frozen.loss(frozen(x, mask), torch.tensor([3, 4])).backward()
    assert all(p.grad is None for p in frozen.backbone.parameters())
    assert all(p.grad is not None for p in frozen.temporal.parameters())
    # a FER2013 frame-classifier checkpoint initialises the backbone through model.backbone.weights
    fer = SmallCNN(1, [8, 16, 32])
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in fer.state_dict().items()}}, tmp_path / "fer.ckpt")
    cfg = load_recipe(
        RECIPES["afew_cnn_lstm"],
        [f"data.root={afew_set}", "model.backbone.widths=[8,16,32]", f"model.backbone.weights={tmp_path / 'fer.ckpt'}",
         f"run.dir={tmp_path}", "loggers.wandb=null"],
    )  # fmt: skip
    task = build(cfg, "fit").task
    for name, value in fer.state_dict().items():
        torch.testing.assert_close(task.backbone.state_dict()[name], value)
    assert not any(p.requires_grad for p in task.backbone.parameters())  # the recipe keeps it frozen


@pytest.mark.slow
def test_a_read_only_face_track_cache_degrades_to_memory(
    afew_set: Path, tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unwritable cache folder is one warning line, and the tracks stay in memory (not four extracted videos,
    then "no usable recordings"). Tests run as root, where chmod stops no write: the folder is a
    tmpfs mounted read-only; where mounting is not allowed, the cache's writes fail with EROFS instead."""
    import errno
    import subprocess

    import emoframe.files.cache as cache_mod

    read_only = tmp_path / "ro"
    read_only.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)], capture_output=True)
    if mounted.returncode != 0:

        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(cache_mod.tempfile, "mkstemp", refuse)  # forked workers inherit the patch
    try:
        root = tmp_path / "afew"  # three clips: one training clip of each of two classes, one validation clip
        for split, emotions in (("Train_AFEW", ("Happy", "Sad")), ("Val_AFEW", ("Happy",))):
            for emotion in emotions:
                (root / split / emotion).mkdir(parents=True)
                clip = sorted((afew_set / split / emotion).glob("*.avi"))[0]
                shutil.copy(clip, root / split / emotion / clip.name)
        dm = AfewDataModule(
            str(root), **{**SMALL, "workers": 2, "cache_dir": str(read_only / "cache"), "clip": {"frames": 8}}
        )
        assert len(dm.recordings("train")) == 2 and len(dm.recordings("val")) == 1
        frames, mask, _, _ = next(iter(dm.train_dataloader()))
        assert frames.shape[1:] == (8, 1, 48, 48) and mask.any()
        err = capfd.readouterr().err
        warnings = [line for line in err.splitlines() if "not writable" in line]
        assert len(warnings) == 1 and "continuing without cache" in warnings[0], err
        assert "no usable recordings" not in err and not list(read_only.iterdir())
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(read_only)], check=True)
