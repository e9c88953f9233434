"""`emoframe export`: ONNX and TorchScript files of every task, checked against PyTorch, read back by load_model.

Frame models run on real FER2013 faces (the datamodule's own test items for the parity check at export, then the
conftest's 64 training faces); sequence models on sequences of real FER2013 faces, at other lengths and batch
sizes than the traced example (batch 2, 3 frames). Heads are scaled up so probabilities are far from uniform and a
wrong graph would show in them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import emoframe
from emoframe.builder import build_datamodule, build_task
from emoframe.checkpoints import RECIPE_KEY
from emoframe.cli import main
from emoframe.errors import DataError, WeightsError
from emoframe.export import runtime
from emoframe.export.onnx import onnx_metadata
from emoframe.export.run import export_task
from emoframe.features.hog import HogFeatures
from emoframe.labels import EMOTIONS
from emoframe.spec import SPEC_KEY, ModelSpec

REPO = Path(__file__).resolve().parents[2]
FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
TINY = {"name": "small_cnn", "widths": [8, 16]}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sharpen(task: torch.nn.Module, scale: float = 30.0) -> None:
    """Scale the head's weights: a random tiny model's probabilities are near uniform, which hides differences."""
    with torch.no_grad():
        for p in task.head.parameters():
            p.mul_(scale)


def save_checkpoint(task: torch.nn.Module, path: Path, **payload: object) -> Path:
    """A checkpoint as Lightning writes it for an emoframe task: state_dict, recipe, ModelSpec."""
    torch.save(
        {"state_dict": task.state_dict(), RECIPE_KEY: task.recipe, SPEC_KEY: task.spec.to_dict(), **payload}, path
    )
    return path


@pytest.fixture(scope="module")
def frame_ckpt(fer2013_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """recipes/fer2013_small_cnn.yaml with a tiny CNN, its weights random (sharpened) but its data the real zip."""
    cfg = emoframe.load_recipe(
        REPO / "recipes" / "fer2013_small_cnn.yaml", [f"data.root={fer2013_zip}", "model.backbone.widths=[8,16]"]
    )
    torch.manual_seed(0)
    task = build_task(cfg, build_datamodule(cfg), for_training=False)
    sharpen(task)
    return save_checkpoint(task, tmp_path_factory.mktemp("frame") / "best.ckpt")


def normalised(faces: np.ndarray) -> torch.Tensor:
    """uint8 (N, 48, 48) faces as the FER2013 recipes feed them: (N, 1, 48, 48), mean 0.5, std 0.5."""
    return ((torch.from_numpy(faces).float() / 255.0 - 0.5) / 0.5)[:, None]


def tiny_task(model: dict, classes: list[str], loss: str = "ce", feature_dim: int = 0) -> torch.nn.Module:
    spec = ModelSpec(1, len(classes), classes, feature_dim, 48, [0.5], [0.5])
    torch.manual_seed(0)
    task = build_task({"model": model, "loss": {"name": loss}}, spec, for_training=False).eval()
    sharpen(task)
    return task


def sequences(faces: np.ndarray, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` sequences of ``length`` real faces, each a different run of them; the last one padded halfway."""
    x = normalised(faces)
    frames = torch.stack([x[(i * 7 + torch.arange(length)) % len(x)] for i in range(batch)])
    mask = torch.ones((batch, length), dtype=torch.bool)
    if batch > 1:
        mask[-1, length // 2 :] = False
    return frames, mask


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_frame_model_parity_on_real_fer2013_faces(
    fmt: str, frame_ckpt: Path, fer_faces: np.ndarray, tmp_path: Path
) -> None:
    out = tmp_path / f"model{FORMATS[fmt]}"
    result = emoframe.export_model(frame_ckpt, fmt, out)
    assert result.path == out and out.is_file() and not list(tmp_path.glob(".*partial*"))
    assert result.inputs == "8 real test items of data.fer2013" and result.parity.max_diff <= 1e-4
    model, exported = emoframe.load_model(frame_ckpt), emoframe.load_model(out)
    assert isinstance(exported.module, runtime.ExportedModel) and exported.format == fmt
    x = normalised(fer_faces)  # 64 faces: another batch size than the export's example and its parity check
    with torch.no_grad():
        want = model(x)
    got = exported(x)
    assert got.shape == want.shape == (64, 7) and got.dtype == want.dtype == torch.float32
    probs = want.softmax(-1)
    assert float(probs.max(-1).values.mean()) > 0.5, "the sharpened head gives peaked probabilities"
    assert float((exported.scores(got) - probs).abs().max()) <= 1e-4
    assert torch.allclose(got, want, atol=1e-4) and torch.equal(got.argmax(-1), want.argmax(-1))


SEQUENCE_TASKS = {
    "cnn_lstm": ({"name": "sequence_classifier", "temporal": {"name": "lstm", "hidden_size": 16}}, "ce", 7),
    "va_bilstm": (
        {
            "name": "va_regressor",
            "temporal": {"name": "lstm", "hidden_size": 16, "num_layers": 2, "bidirectional": True},
        },
        "ccc",
        2,
    ),
    "multilabel_gru": (
        {"name": "multilabel_classifier", "temporal": {"name": "gru", "hidden_size": 16}},
        "weighted_bce",
        4,
    ),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("name", list(SEQUENCE_TASKS))
def test_sequence_models_parity_at_other_lengths(name: str, fmt: str, fer_faces: np.ndarray, tmp_path: Path) -> None:
    """CNN+LSTM classifier, bidirectional valence/arousal LSTM (packed sequences), multi-label GRU: exported on
    real-face sequences of 12 frames, then run at 12, 5 and 20 frames, with and without padding."""
    model, loss, n = SEQUENCE_TASKS[name]
    classes = ["arousal", "valence"] if n == 2 else list(EMOTIONS[:n])
    task = tiny_task({**model, "backbone": TINY}, classes, loss)
    frames, mask = sequences(fer_faces, 4, 12)
    batch = (frames, mask, torch.zeros(4)) if name == "cnn_lstm" else (frames, torch.zeros(4, 12, n), mask)
    result = export_task(task, fmt, tmp_path / f"m{FORMATS[fmt]}", batch=batch, batch_source="real faces")
    assert result.parity.shapes[0][:2] == (4, 12) and result.parity.shapes[1][:2] == (3, 7)
    exported = runtime.load_exported(result.path)
    assert exported.inputs == ["frames", "mask"] and exported.output == {"ce": "softmax", "ccc": "identity"}.get(
        loss, "sigmoid"
    )
    for b, t in ((4, 12), (1, 5), (3, 20)):
        x, m = sequences(fer_faces, b, t)
        for given in ((x, m), (x,)):  # frames alone: every frame real, as forward(frames) without a mask
            with torch.no_grad():
                want = task(*given)
            got = exported(*given)
            assert got.shape == want.shape and got.dtype == want.dtype
            assert float((exported.scores(got) - exported.scores(want)).abs().max()) <= 1e-4, (b, t)
            assert torch.allclose(got, want, atol=1e-4)


def test_fusion_model_takes_image_and_features(fer_faces: np.ndarray, tmp_path: Path) -> None:
    """The two-input model on real faces and their real HOG features (2,592 per face)."""
    hog = torch.from_numpy(HogFeatures()(fer_faces)).float()
    model = {"name": "fusion_classifier", "backbone": TINY, "mlp": [16]}
    task = tiny_task(model, list(EMOTIONS), feature_dim=hog.shape[1])
    x = normalised(fer_faces)
    for fmt, suffix in FORMATS.items():
        result = export_task(task, fmt, tmp_path / f"fusion{suffix}", batch=(x, hog, torch.zeros(64)), batch_source="x")
        exported = runtime.load_exported(result.path)
        assert exported.inputs == ["image", "features"] and result.parity.shapes == ((8, 1, 48, 48), (1, 1, 48, 48))
        with torch.no_grad():
            want = task(x, hog)
        assert torch.allclose(exported(x, hog), want, atol=1e-4)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_metadata_round_trips(fmt: str, tmp_path: Path) -> None:
    """Recipe, ModelSpec, task name, class names, version, thresholds: as stored in the checkpoint."""
    model = {"name": "multilabel_classifier", "backbone": TINY, "temporal": "none", "threshold": 0.3}
    task = tiny_task(model, ["neutral", "happy", "surprise"], "weighted_bce")
    task.recipe = {**task.recipe, "data": {"name": "multilabel_video", "videos": "/nowhere"}}
    task.spec.faces = {"keep": "tracked", "margin": 0.2}
    ckpt = save_checkpoint(task, tmp_path / "ml.ckpt")
    out = tmp_path / f"ml{FORMATS[fmt]}"
    result = emoframe.export_model(ckpt, fmt, out)
    assert result.inputs.startswith("random inputs (data.multilabel_video not built: ")
    m = emoframe.load_model(out)
    assert m.task_name == "multilabel_classifier" and m.recipe == task.recipe and m.data == task.spec.to_dict()
    assert m.class_names == ["neutral", "happy", "surprise"] and m.emoframe_version == emoframe.__version__
    assert m.preprocessing == emoframe.load_model(ckpt).preprocessing
    assert m.preprocessing["faces"] == {"keep": "tracked", "margin": 0.2}
    assert m.extras == {"thresholds": pytest.approx([0.3, 0.3, 0.3])} and m.output == "sigmoid"
    if fmt == "onnx":  # plain ONNX metadata_props, readable by any ONNX tool
        props = onnx_metadata(out)
        assert set(props) == set(runtime.METADATA_KEYS) and json.loads(props["emoframe_recipe"]) == task.recipe


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's note, from the foreign file made here
def test_bad_files_fail_in_one_line(frame_ckpt: Path, tmp_path: Path) -> None:
    onnx_file = emoframe.export_model(frame_ckpt, "onnx", tmp_path / "good.onnx", parity="random").path
    ts_file = emoframe.export_model(frame_ckpt, "torchscript", tmp_path / "good.ts", parity="random").path
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.randn(1, 3),), str(foreign), dynamo=False)
    foreign_ts = tmp_path / "foreign.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(3, 2), torch.randn(1, 3)), str(foreign_ts))
    pickle = tmp_path / "weights.ts"
    torch.save({"weights": torch.zeros(3)}, pickle)
    cases = {
        tmp_path / "missing.onnx": "Exported model not found",
        tmp_path / "text.onnx": "not a readable ONNX model",
        tmp_path / "truncated.onnx": "not a readable ONNX model",
        tmp_path / "truncated.ts": "not a readable TorchScript model",
        pickle: "not a readable TorchScript model",
        foreign: "not exported by emoframe (no emoframe_recipe metadata)",
        foreign_ts: "not exported by emoframe (no emoframe_recipe metadata)",
        tmp_path / "model.bin": "expected an exported model (.onnx, or .ts/.pt for TorchScript)",
    }
    (tmp_path / "text.onnx").write_text("not a model")
    (tmp_path / "truncated.onnx").write_bytes(onnx_file.read_bytes()[:3000])
    (tmp_path / "truncated.ts").write_bytes(ts_file.read_bytes()[:3000])
    (tmp_path / "model.bin").write_bytes(b"x")
    for path, message in cases.items():
        with pytest.raises(WeightsError) as err:
            runtime.load_exported(path)
        assert message in str(err.value) and "\n" not in str(err.value), (path, err.value)
    model = runtime.load_exported(onnx_file)
    with pytest.raises(WeightsError, match=r"expected 1 input\(s\) \(image\), got 2"):
        model(torch.zeros(1, 1, 48, 48), torch.zeros(1))
    with pytest.raises(DataError, match=r"input 'image' is \(2, 3, 64, 64\); the model takes \(B, 1, 48, 48\)$"):
        model(torch.zeros(2, 3, 64, 64))
    as_float32 = model(torch.zeros(2, 1, 48, 48))
    assert torch.equal(model(np.zeros((2, 1, 48, 48))), as_float32)  # float64 numpy: cast as the graph takes it
    assert not runtime.is_exported(frame_ckpt) and runtime.is_exported(foreign_ts)
    plain = tmp_path / "checkpoint.pt"  # a checkpoint saved as .pt is still a checkpoint for load_model
    plain.write_bytes(frame_ckpt.read_bytes())
    assert not runtime.is_exported(plain) and emoframe.load_model(plain).class_names == list(EMOTIONS)


def test_failed_parity_is_one_line_and_leaves_no_file(
    frame_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = runtime.ExportedModel.__call__
    for change, where in ((lambda y: y.flip(-1), "in probabilities"), (lambda y: y + 0.5, "in outputs (relative)")):
        monkeypatch.setattr(runtime.ExportedModel, "__call__", lambda self, *x, f=change: f(call(self, *x)))
        with pytest.raises(WeightsError) as err:
            emoframe.export_model(frame_ckpt, "onnx", tmp_path / "m.onnx", parity="random")
        assert "m.onnx: parity check failed: max abs difference" in str(err.value) and where in str(err.value)
        assert "\n" not in str(err.value) and not list(tmp_path.iterdir()), "nothing written, no partial file left"
    monkeypatch.undo()

    def exporter_fails(*args: object) -> None:
        Path(args[3]).write_bytes(b"half a file")
        raise RuntimeError("Unsupported operator\nand a page of trace")

    monkeypatch.setattr("emoframe.export.run.write_onnx", exporter_fails)
    with pytest.raises(WeightsError) as err:
        emoframe.export_model(frame_ckpt, "onnx", tmp_path / "m.onnx", parity="random")
    assert str(err.value).endswith("m.onnx: onnx export of FrameClassifier failed (RuntimeError: Unsupported operator)")
    assert not list(tmp_path.iterdir())


def test_cli_export(frame_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--ckpt", str(frame_ckpt), "--format", "torchscript"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"Exported: {frame_ckpt.with_suffix('.ts')}"
    assert "Parity: max abs difference" in err and "on 8 real test items of data.fer2013" in err
    target = tmp_path / "moved.onnx"
    args = ["export", "--ckpt", str(frame_ckpt), "--output", str(target), "data.root=/nowhere/fer2013.zip"]
    assert main(args) == 0 and target.is_file()
    err = capsys.readouterr().err
    assert "on random inputs (data.fer2013 not built: DataError: FER2013 not found at /nowhere/fer2013.zip" in err
    assert main(["export", "--ckpt", str(tmp_path / "nope.ckpt")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["export", "--ckpt", str(frame_ckpt), "--output", str(tmp_path / "m.txt")]) == 2
    assert "an exported onnx file must end in .onnx" in capsys.readouterr().err


def test_cli_export_of_a_cnn_lstm_checks_on_its_own_clips(
    afew_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """recipes/afew_cnn_lstm.yaml (tiny CNN, bidirectional LSTM) on the generated AFEW-layout set: the parity check
    reads real clips of the recipe's own datamodule (8 frames of face crops), then the same frames cut to 5."""
    overrides = [
        f"data.root={afew_set}",
        "data.folders.test=Heldout_AFEW",
        "data.clip.frames=8",
        "data.workers=1",
        "model.backbone.widths=[8,16]",
        "model.temporal.hidden_size=16",
        "model.temporal.bidirectional=true",
    ]
    cfg = emoframe.load_recipe(REPO / "recipes" / "afew_cnn_lstm.yaml", overrides)
    task = build_task(cfg, build_datamodule(cfg), for_training=False)
    sharpen(task)
    ckpt = save_checkpoint(task, tmp_path / "clips.ckpt")
    for fmt in FORMATS:
        assert main(["export", "--ckpt", str(ckpt), "--format", fmt, "--items", "4"]) == 0
        err = capsys.readouterr().err
        assert "on 4 real test items of data.afew; input shapes 4x8x1x48x48, 3x5x1x48x48" in err, err
    model = emoframe.load_model(tmp_path / "clips.onnx")
    assert model.task_name == "sequence_classifier" and model.data["faces"] == task.spec.to_dict()["faces"]
    assert model.recipe["data"]["clip"]["frames"] == 8


def test_the_runtime_imports_neither_lightning_nor_onnxruntime() -> None:
    """`predict` on an exported file stays light: onnxruntime is imported when an ONNX file is loaded."""
    import subprocess
    import sys

    code = "import sys, emoframe.export.runtime; print(sorted(m for m in ('pytorch_lightning', 'onnxruntime', 'onnx') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]
