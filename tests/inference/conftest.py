"""Checkpoints of every task for the inference tests, made from the shipped recipes without training (a small
backbone, the checkpoint's recipe and ModelSpec as `emoframe fit` stores them), and small real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoframe.builder import build_task
from emoframe.config import load_recipe
from emoframe.faces import FacePipeline
from emoframe.labels import EMOTIONS
from emoframe.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
SMALL = "model.backbone={name: small_cnn, widths: [8, 16]}"
VIDEO_FACES = FacePipeline(size=48, keep="tracked", threshold=-0.5, grayscale=True).settings()

# name -> (recipe, overrides, ModelSpec arguments beyond the common ones)
CASES: dict[str, tuple[str, list[str], dict]] = {
    "frame_classifier": ("fer2013_small_cnn.yaml", [], {"faces": None}),
    "fusion_classifier": ("fer2013_fusion.yaml", [], {"faces": None, "feature_dim": 2592 + 136}),
    "sequence_classifier": (
        "afew_cnn_lstm.yaml",
        ["model.temporal.hidden_size=8", "data.clip.frames=4"],
        {"faces": VIDEO_FACES},
    ),
    "va_regressor": (
        "afew_va_ccc.yaml",
        ["model.temporal.hidden_size=8", "data.windows.size=4", "data.image={size: 48, channels: 1}"],
        {"faces": VIDEO_FACES, "class_names": ["arousal", "valence"]},
    ),
    "multilabel_classifier": (
        "multilabel_video_bce.yaml",
        ["model.temporal.hidden_size=8", "data.windows.size=4", "data.image={size: 48, channels: 1}"],
        {"faces": VIDEO_FACES, "class_names": ["neutral", "happy", "surprise", "sad"]},
    ),
}


def make_checkpoint(task: str, path: Path) -> Path:
    """An untrained checkpoint of ``task`` as `emoframe fit` would write it (weights, recipe, ModelSpec)."""
    recipe_file, overrides, extra = CASES[task]
    env = {"data.root=/nowhere"} if task != "multilabel_classifier" else set()
    cfg = load_recipe(REPO / "recipes" / recipe_file, [*env, SMALL, *overrides])
    extra = dict(extra)
    names = extra.pop("class_names", list(EMOTIONS))
    spec = ModelSpec(
        channels=1,
        num_classes=len(names),
        class_names=names,
        image_size=48,
        mean=[0.5],
        std=[0.5],
        **extra,
    )
    if task == "fusion_classifier":
        spec.feature_mean = [0.0] * spec.feature_dim
        spec.feature_std = [1.0] * spec.feature_dim
    torch.manual_seed(0)
    model = build_task(cfg, spec, for_training=False)  # type: ignore[arg-type]
    payload = {"state_dict": model.state_dict(), "emoframe_recipe": cfg, "emoframe_spec": model.spec.to_dict()}
    torch.save(payload, path)
    return path


@pytest.fixture(scope="session")
def task_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("task_ckpts")
    return {task: make_checkpoint(task, folder / f"{task}.ckpt") for task in CASES}


@pytest.fixture(scope="session")
def videos(data_dir: Path) -> dict[str, Path]:
    found = {name: data_dir / "videos" / f"{name}.mp4" for name in ("angry", "laughing")}
    for path in found.values():
        if not path.is_file():
            pytest.skip(f"shared video not found: {path}")
    return found


def paste_faces(faces: np.ndarray, folder: Path, side: int = 192, canvas: tuple[int, int] = (360, 480)) -> list[Path]:
    """FER2013 faces upscaled to ``side`` px and pasted on a grey picture, one JPEG each: whole pictures in
    which a face must be found (they are FER2013's crops, so the FER2013-style crop should give them back)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(0)
    for i, face in enumerate(faces):
        picture = np.full(canvas, 120, np.uint8)
        y, x = int(rng.integers(0, canvas[0] - side)), int(rng.integers(0, canvas[1] - side))
        picture[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        path = folder / f"{i:03d}.jpg"
        cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(path)
    return paths
