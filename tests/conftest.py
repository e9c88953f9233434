"""Shared fixtures.  Real data comes from ../shared/data (or $EMOFRAME_DATA), never from the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("EMOFRAME_DATA", REPO.parent / "shared" / "data")).resolve()
FER2013_ZIP = DATA_DIR / "fer2013" / "fer2013.zip"


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """W&B offline and quiet; one decode cache per test session (the zip is decoded once, then reused)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["EMOFRAME_CACHE"] = str(tmp_path_factory.mktemp("emoframe_cache"))
    from emoframe.launch import LAUNCH_VARIABLES

    for key in [k for k in os.environ if LAUNCH_VARIABLES.fullmatch(k)]:  # a CI job under srun is no SLURM run here
        os.environ.pop(key)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR} (set EMOFRAME_DATA)")
    return DATA_DIR


@pytest.fixture(scope="session")
def fer2013_zip() -> Path:
    if not FER2013_ZIP.is_file():
        pytest.skip(f"FER2013 not found at {FER2013_ZIP} (set EMOFRAME_DATA to the folder holding fer2013/)")
    return FER2013_ZIP


@pytest.fixture(scope="session")
def fer_faces(fer2013_zip: Path):
    """64 real FER2013 training faces (uint8 (64, 48, 48)), nine or ten per class, read straight from the zip."""
    import zipfile

    import cv2
    import numpy as np

    from emoframe.labels import EMOTIONS

    with zipfile.ZipFile(fer2013_zip) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg") and n.startswith("train/"))
        picked = [n for e in EMOTIONS for n in [m for m in names if m.startswith(f"train/{e}/")][:10]][:64]
        faces = [cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in picked]
    return np.stack(faces)


@pytest.fixture(scope="session")
def fer_sample() -> dict[str, bytes]:
    """Two FER2013 JPEGs per (usage, class), keyed by layout path: real ones from the zip when present,
    else synthetic 48x48 grayscale JPEGs, so layout, cache and error tests run without the data."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    from emoframe.labels import EMOTIONS

    path = FER2013_ZIP
    files: dict[str, bytes] = {}
    if path.is_file():
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
            for split, usage in (("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest")):
                for emotion in EMOTIONS:
                    picked = [n for n in names if n.startswith(f"{split}/{emotion}/{usage}_")][:2]
                    files.update({n: z.read(n) for n in picked})
        return files
    rng = np.random.default_rng(0)
    for split, usage in (("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest")):
        for emotion in EMOTIONS:
            for k in range(2):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(buf, "JPEG")
                files[f"{split}/{emotion}/{usage}_{len(files):05d}{k}.jpg"] = buf.getvalue()
    return files


@pytest.fixture()
def write_fer(tmp_path: Path, fer_sample: dict[str, bytes]):
    """``write_fer(kind, files=None, prefix="")``: the sample (or ``files``) as a zip or folder in tmp_path."""
    import zipfile

    def write(kind: str, files: dict[str, bytes] | None = None, prefix: str = "") -> Path:
        files = fer_sample if files is None else files
        if kind == "zip":
            path = tmp_path / "fer2013.zip"
            with zipfile.ZipFile(path, "w") as z:
                for name, data in files.items():
                    z.writestr(prefix + name, data)
            return path
        root = tmp_path / "fer2013"
        for name, data in files.items():
            (root / prefix / name).parent.mkdir(parents=True, exist_ok=True)
            (root / prefix / name).write_bytes(data)
        return root

    return write


@pytest.fixture(scope="session")
def recola_set(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated RECOLA-layout set (tests/fixtures/make_recola.py): 8 five-second videos of real FER2013 faces."""
    from tests.fixtures.make_recola import make_recola

    return make_recola(tmp_path_factory.mktemp("recola"), fer2013_zip)


@pytest.fixture(scope="session")
def afew_va_clip(data_dir: Path) -> Path:
    clip = data_dir / "afew_va" / "001"
    if not (clip / "001.json").is_file():
        pytest.skip(f"AFEW-VA clip not found at {clip} (set EMOFRAME_DATA)")
    return clip


@pytest.fixture(scope="session")
def afew_va_set(afew_va_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 8-frame AFEW-VA-layout clips cut from the real clip 001 (tests/fixtures/make_afew_va.py)."""
    from tests.fixtures.make_afew_va import make_afew_va_subset

    return make_afew_va_subset(afew_va_clip, tmp_path_factory.mktemp("afew_va"))


@pytest.fixture(scope="session")
def afew_set(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated AFEW-layout clip set (tests/fixtures/make_afew.py): 3 classes of real FER2013 faces, MJPG AVIs."""
    from tests.fixtures.make_afew import make_afew

    return make_afew(tmp_path_factory.mktemp("afew"), fer2013_zip)


@pytest.fixture(scope="session")
def multilabel_set(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated multi-label annotated set (tests/fixtures/make_multilabel.py): 12 participants x 2 videos x 80
    frames of real FER2013 faces, 7-rater votes for neutral (most frames), happy, surprise and sad."""
    from tests.fixtures.make_multilabel import make_multilabel

    return make_multilabel(tmp_path_factory.mktemp("multilabel"), fer2013_zip, participants=12).parent


FER2013_RECIPE = str(REPO / "recipes" / "fer2013_small_cnn.yaml")


def quick(run_dir: Path, zip_path: Path, *extra: str) -> list[str]:
    """Overrides of a quiet, single-process fit of a FER2013 recipe into ``run_dir``."""
    return [
        f"data.root={zip_path}",
        f"run.dir={run_dir}",
        "data.loader.num_workers=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        *extra,
    ]


@pytest.fixture(scope="session")
def fer2013_trained(tmp_path_factory: pytest.TempPathFactory, fer2013_zip: Path) -> Path:
    """A small CNN fitted for 6 epochs on 4,000 real training images (about a minute on 2 cores), once per session:
    the run folder of tests/engine/test_fit_fer2013.py and of the inference tests' whole-picture accuracy."""
    from emoframe.cli import main

    runs = tmp_path_factory.mktemp("runs")
    args = quick(runs, fer2013_zip, "data.subset=4000", "trainer.max_epochs=6", "scheduler.warmup_epochs=0.5")
    assert main(["fit", FER2013_RECIPE, *args]) == 0
    return runs / "fer2013_small_cnn" / "version_0"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): on two shared
    cores, two threads make the tiny convolutions of the test models several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
