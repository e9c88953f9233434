"""dlib_resnet: the PyTorch port of dlib's face-recognition ResNet equals dlib on real aligned faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoframe.backbones.dlib_format import Reader, read_dlib_net
from emoframe.backbones.dlib_resnet import WEIGHTS_FILE, WIDTHS, DlibResNet, add_prev
from emoframe.errors import RecipeError, WeightsError
from emoframe.faces.models import model_file
from emoframe.registry import BACKBONES

dlib = pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def weights() -> Path:
    return model_file(WEIGHTS_FILE)


@pytest.fixture(scope="module")
def chips(data_dir: Path) -> np.ndarray:
    """dlib-aligned 150x150 RGB chips (dlib's detector, 5 landmarks, get_face_chip) from AFEW-VA and a video."""
    import cv2
    import decord

    from emoframe.faces.chips import FaceChipper

    chipper = FaceChipper()
    frames = [cv2.imread(str(p))[:, :, ::-1] for p in sorted((data_dir / "afew_va" / "001").glob("*.png"))[::3]]
    video = decord.VideoReader(str(data_dir / "videos" / "angry.mp4"))
    frames += list(video.get_batch(list(range(0, len(video), 9))).asnumpy())
    out = chipper.many(frames)
    assert len(out) >= 15, f"only {len(out)} faces found"
    return out


@pytest.fixture(scope="module")
def embedding(weights: Path) -> DlibResNet:
    return DlibResNet(stage="embedding").eval()


def _normalised(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W[, 3]) -> what emoframe's datamodules give with the default mean 0.5, std 0.5."""
    x = torch.from_numpy(images).float().div(255.0).sub(0.5).div(0.5)
    return x.permute(0, 3, 1, 2) if x.ndim == 4 else x.unsqueeze(1)


def test_descriptors_equal_dlibs(chips: np.ndarray, embedding: DlibResNet, weights: Path) -> None:
    dlib_net = dlib.face_recognition_model_v1(str(weights))
    expected = np.array([np.array(d) for d in dlib_net.compute_face_descriptor(list(chips))])
    with torch.no_grad():
        ours = embedding(_normalised(chips)).numpy()
    assert ours.shape == expected.shape == (len(chips), 128)
    assert np.abs(ours - expected).max() <= 1e-4
    # dlib's descriptors are the projection itself, not unit vectors
    assert not np.allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-3)


def test_gray_input_replicates_to_rgb_like_dlib(chips: np.ndarray, weights: Path) -> None:
    import cv2

    gray = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in chips[:4]])
    dlib_net = dlib.face_recognition_model_v1(str(weights))
    rgb = [np.repeat(g[:, :, None], 3, axis=2) for g in gray]  # this dlib binding takes RGB only
    expected = np.array([np.array(d) for d in dlib_net.compute_face_descriptor(rgb)])
    model = BACKBONES.build({"name": "dlib_resnet"}, "model.backbone", in_chans=1).eval()
    with torch.no_grad():
        ours = model(_normalised(gray)).numpy()
    assert np.abs(ours - expected).max() <= 1e-4


def test_raw_pixels_with_mean_0_std_1_over_255(chips: np.ndarray, embedding: DlibResNet) -> None:
    raw = DlibResNet(input_mean=0.0, input_std=1 / 255).eval()
    x = torch.from_numpy(chips[:3]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        assert torch.allclose(raw(x), embedding(_normalised(chips[:3])), atol=1e-5)


@pytest.mark.parametrize("stage", [1, 2, 3, 4, "embedding"])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_every_stage_width_is_num_features(stage: int | str, in_chans: int) -> None:
    model = BACKBONES.build({"name": "dlib_resnet", "stage": stage}, "model.backbone", in_chans=in_chans)
    assert model.num_features == WIDTHS[stage]
    with torch.no_grad():
        out = model(torch.zeros(2, in_chans, 150, 150))
    assert out.shape == (2, model.num_features)
    # other sizes too: global pooling; the smallest accepted side works, one pixel less is a clear error
    with torch.no_grad():
        assert model(torch.zeros(1, in_chans, model.min_side, model.min_side + 13)).shape == (1, model.num_features)
    with pytest.raises(RecipeError, match="data.image.size"):
        model(torch.zeros(1, in_chans, model.min_side - 1, model.min_side - 1))


def test_stage_features_are_the_full_networks_intermediate(chips: np.ndarray, embedding: DlibResNet) -> None:
    stage3 = DlibResNet(stage=3).eval()
    x = _normalised(chips[:2])
    with torch.no_grad():
        h = torch.addcmul(embedding.input_shift, x, embedding.input_scale)
        h = torch.nn.functional.max_pool2d(torch.relu(embedding.stem(h)), 3, 2)
        for stage in embedding.stages[:3]:
            h = stage(h)
        assert torch.equal(stage3(x), h.mean((2, 3)))
    assert len(stage3.stages) == 3 and stage3.fc is None  # later stages are not built


def test_freeze_fixes_weights_and_skips_autograd() -> None:
    frozen = DlibResNet(stage=2, freeze=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    assert not frozen(x).requires_grad
    trainable = DlibResNet(stage=2)
    trainable(x).sum().backward()
    assert trainable.stem.weight.grad is not None and trainable.stages[1][0].conv2.weight.grad is not None
    frozen.requires_grad_(True)  # what a freeze_unfreeze callback does at its switch
    assert frozen(x).requires_grad


def test_random_init_starts_each_block_as_identity() -> None:
    model = DlibResNet(stage="embedding", pretrained=False)
    assert model.weights_path is None
    block = model.stages[0][0]
    x = torch.rand(1, 32, 20, 20)
    assert torch.equal(block(x), x)  # relu(0-conv + x) for x >= 0
    assert torch.isfinite(model(torch.randn(2, 3, 150, 150))).all()


def test_add_prev_zero_fills_like_dlib() -> None:
    a = torch.ones(1, 4, 3, 3)
    b = torch.full((1, 2, 4, 4), 2.0)
    out = add_prev(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, 0, 0, 0] == 3 and out[0, 0, 3, 3] == 2 and out[0, 3, 0, 0] == 1 and out[0, 3, 3, 3] == 0


@pytest.mark.parametrize("what", ["truncated", "foreign", "garbage", "missing"])
def test_bad_dat_fails_in_one_line_naming_the_file(tmp_path: Path, weights: Path, what: str) -> None:
    path = tmp_path / f"{what}.dat"
    if what == "truncated":
        path.write_bytes(weights.read_bytes()[:10_000_000])
    elif what == "foreign":  # a real dlib file, but a shape predictor
        path.write_bytes(model_file("shape_predictor_5_face_landmarks.dat").read_bytes())
    elif what == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(WeightsError) as err:
        BACKBONES.build({"name": "dlib_resnet", "weights": str(path)}, "model.backbone", in_chans=3)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_bad_options_are_recipe_errors() -> None:
    with pytest.raises(RecipeError, match="model.backbone.stage"):
        DlibResNet(stage=5)
    with pytest.raises(RecipeError, match="in_chans"):
        DlibResNet(in_chans=4, pretrained=False)
    with pytest.raises(RecipeError, match="Unknown key model.backbone.stages"):
        BACKBONES.build({"name": "dlib_resnet", "stages": 2}, "model.backbone")


def test_reader_decodes_dlib_integers_and_floats(weights: Path) -> None:
    # -300 as dlib writes it: control byte 0x82 (negative, two bytes), then 300 little-endian
    assert Reader(bytes([0x82, 0x2C, 0x01])).integer() == -300
    net = read_dlib_net(weights)
    assert net.loss.settings["distance_threshold"] == pytest.approx(0.6)  # dlib's documented same-person threshold
    assert net.input.settings["nr"] == net.input.settings["nc"] == 150
    assert sum(layer.kind == "con" for layer in net.layers) == 29


def test_weights_may_be_a_state_dict_like_any_backbone(tmp_path: Path) -> None:
    trained = DlibResNet(stage=2)
    with torch.no_grad():
        trained.stem.bias.add_(1.0)  # "fine-tuned"
    path = tmp_path / "stage.pt"
    torch.save({f"backbone.{k}": v for k, v in trained.state_dict().items()}, path)
    again = BACKBONES.build({"name": "dlib_resnet", "stage": 2, "weights": str(path)}, "model.backbone", in_chans=3)
    assert again.weights_path == path
    for (name, a), b in zip(trained.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_builds_a_frame_classifier_on_fer2013_with_the_head_sized_from_it(fer2013_zip: Path, tmp_path: Path) -> None:
    import emoframe

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "fer2013_small_cnn.yaml"
    cfg = emoframe.load_recipe(recipe, [f"data.root={fer2013_zip}", f"run.dir={tmp_path}", "data.subset=64"])
    cfg["model"]["backbone"] = {"name": "dlib_resnet", "stage": 3, "freeze": True}
    built = emoframe.build(cfg, "fit")
    task = built.task
    assert task.backbone.in_chans == 1 and task.head.net[-1].in_features == 128  # gray FER2013, stage 3's width
    built.datamodule.setup("fit")
    x, _ = next(iter(built.datamodule.train_dataloader()))
    with torch.no_grad():
        assert task(x[:4]).shape == (4, 7)
    trainable = [n for n, p in task.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("head.") for n in trainable)


@pytest.mark.slow
def test_the_builder_gives_dlib_resnet_the_datas_mean_and_std(fer2013_zip: Path, tmp_path: Path) -> None:
    """data.image.mean/std reach dlib_resnet (input_mean/input_std), so it sees dlib's (pixel - mean) / 256 whatever
    the data's normalisation: the same raw faces under two normalisations give the same features; a recipe's own
    input_mean wins, and the data's values travel to load_model and extract through the same builder function."""
    import emoframe
    from emoframe.builder import backbone_inputs, build_datamodule, build_task
    from emoframe.spec import ModelSpec

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "fer2013_small_cnn.yaml"
    base = [f"data.root={fer2013_zip}", f"run.dir={tmp_path}", "data.subset=16"]
    tasks, batches = [], []
    for mean, std in ((0.5, 0.5), (0.2, 0.3)):
        cfg = emoframe.load_recipe(recipe, [*base, f"data.image.mean={mean}", f"data.image.std={std}"])
        cfg["model"]["backbone"] = {"name": "dlib_resnet", "stage": 2}
        dm = build_datamodule(cfg)
        task = build_task(cfg, dm).eval()
        assert task.backbone.input_mean == [mean] and task.backbone.input_std == [std]
        dm.setup("test")
        batches.append(next(iter(dm.test_dataloader()))[0][:4])
        tasks.append(task)
    assert not torch.allclose(batches[0], batches[1])
    raw = DlibResNet(stage=2, input_mean=0.0, input_std=1 / 255).eval()
    raw.load_state_dict(tasks[0].backbone.state_dict())
    pixels = (batches[0] * 0.5 + 0.5) * 255
    with torch.no_grad():
        a, b = tasks[0].backbone(batches[0]), tasks[1].backbone(batches[1])
        assert torch.allclose(a, b, atol=1e-4) and torch.allclose(a, raw(pixels), atol=1e-4)
    spec = ModelSpec.of(dm)
    assert backbone_inputs(spec, {"name": "dlib_resnet"})["input_mean"] == [0.2]
    assert "input_mean" not in backbone_inputs(spec, {"name": "small_cnn"})
    cfg["model"]["backbone"] = {"name": "dlib_resnet", "stage": 2, "input_mean": 0.0, "input_std": 1.0}
    assert build_task(cfg, spec).backbone.input_mean == 0.0  # the recipe's value wins
