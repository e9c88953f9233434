"""emoframe.tta: the TTA wrapper averages probabilities over views; identity is exact, flips are symmetric."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emoframe.backbones.small_cnn import SmallCNN
from emoframe.errors import RecipeError
from emoframe.tta import PAPER_TTA, TEN_CROP, TTA, TTATransform, parse_tta, tta_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Tiny(torch.nn.Module):
    """A small_cnn and a linear head: logits of 7 classes for 48x48 gray frames (and optional features)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = SmallCNN(in_chans=1, widths=[8, 16])
        self.head = torch.nn.Linear(16, 7)
        self.features = torch.nn.Linear(5, 16)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        h = self.backbone(x)
        return self.head(h if features is None else h + self.features(features))


@pytest.fixture(scope="module")
def model() -> Tiny:
    return Tiny().eval()


@pytest.fixture(scope="module")
def frames(fer_faces) -> torch.Tensor:
    """12 real FER2013 faces, normalised as the datamodule does (mean 0.5, std 0.5)."""
    return torch.from_numpy(fer_faces[::5][:12]).float().div(255).sub(0.5).div(0.5).unsqueeze(1)


def test_the_identity_view_reproduces_the_plain_prediction_exactly(model: Tiny, frames: torch.Tensor) -> None:
    with torch.no_grad():
        plain = model(frames).softmax(dim=-1)
        assert torch.equal(TTA(model, (TTATransform(),))(frames), plain)
        assert torch.equal(TTA(model, 1)(frames), plain)
        assert torch.equal(TTA(model, "none", max_batch=5)(frames), plain)  # chunked: the same numbers


@pytest.mark.parametrize("views", ["flip", "paper", "ten_crop", "paper+ten_crop"])
def test_a_flipped_inputs_tta_equals_the_originals(model: Tiny, frames: torch.Tensor, views: str) -> None:
    """Each set is closed under mirroring (flip x rotation a = rotation -a x flip; left corners <-> right)."""
    tta = TTA(model, views)
    with torch.no_grad():
        a, b = tta(frames), tta(frames.flip(-1))
        plain, mirrored = model(frames).softmax(-1), model(frames.flip(-1)).softmax(-1)
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert not torch.allclose(plain, mirrored, atol=1e-3), "the model itself is not flip-invariant"
    assert torch.allclose(a.sum(-1), torch.ones(len(frames)), atol=1e-5)


def test_tta_is_the_mean_of_the_views_probabilities(model: Tiny, frames: torch.Tensor) -> None:
    views = PAPER_TTA[:6]
    with torch.no_grad():
        each = [model(tta_views(frames, (v,))).softmax(-1) for v in views]
        expected = torch.stack(each).mean(0)
        assert torch.allclose(TTA(model, views, max_batch=7)(frames), expected, atol=1e-6)
        probs = TTA(model, views, outputs="probs")  # a model that returns probabilities is not softmaxed again
        assert torch.allclose(TTA(lambda_model(model), views, outputs="probs")(frames), expected, atol=1e-6)
    assert probs.outputs == "probs"


def lambda_model(model: Tiny) -> torch.nn.Module:
    class Probs(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return model(x).softmax(-1)

    return Probs()


def test_further_inputs_are_repeated_for_every_view(model: Tiny, frames: torch.Tensor) -> None:
    features = torch.randn(len(frames), 5)
    with torch.no_grad():
        got = TTA(model, "flip")(frames, features)
        expected = (model(frames, features).softmax(-1) + model(frames.flip(-1), features).softmax(-1)) / 2
    assert torch.allclose(got, expected, atol=1e-6)


def test_ten_crop_views_are_corner_and_centre_crops_resized(frames: torch.Tensor) -> None:
    views = tta_views(frames[:2], TEN_CROP).reshape(2, 10, 1, 48, 48)
    crops = {1: (slice(0, 42), slice(0, 42)), 4: (slice(6, 48), slice(6, 48))}  # top-left, bottom-right
    for i, (rows, cols) in crops.items():
        expected = F.interpolate(frames[:2, :, rows, cols], size=(48, 48), mode="bilinear", align_corners=False)
        # the same except at the crop's outer edge, where grid_sample reads the next real pixel, not a clamped one
        assert torch.allclose(views[:, i, :, 1:-1, 1:-1], expected[:, :, 1:-1, 1:-1], atol=1e-5)
    mirrored_centre = tta_views(frames[:2].flip(-1), TEN_CROP[:1]).reshape(2, 1, 48, 48)
    assert torch.allclose(views[:, 5], mirrored_centre, atol=1e-5)


def test_view_sets_and_one_line_errors() -> None:
    assert len(parse_tta("paper+ten_crop")) == 28 and parse_tta("2") == PAPER_TTA[:2] == parse_tta("flip")
    assert parse_tta("[{flip: true, shift_x: 0.1}]") == (TTATransform(True, 0.0, 1.0, 0.1, 0.0),)
    assert TTATransform(True).settings() == {"flip": True, "angle": 0.0, "scale": 1.0}  # extract's files unchanged
    for bad, message in (("19", "1 to 18"), ("[{shear: 3}]", "unknown key 'shear'"), ("fancy", "expected a number")):
        with pytest.raises(RecipeError, match=message):
            parse_tta(bad)


def test_the_recipes_test_and_predict_sections_give_the_default_views() -> None:
    from emoframe.builder import stage_tta

    cfg = {"test": {"tta": "flip"}, "predict": {"writer": {"name": "class_probabilities"}, "tta": 6}}
    assert stage_tta(cfg, "test") == PAPER_TTA[:2] and stage_tta(cfg, "predict") == PAPER_TTA[:6]
    assert stage_tta(cfg, "test", "ten_crop") == TEN_CROP, "the command line wins"
    assert stage_tta({}, "test") is None and stage_tta(cfg, "test", "1") is None  # one identity view: no TTA
    with pytest.raises(RecipeError, match="Unknown key test.views"):
        stage_tta({"test": {"views": 2}}, "test")
    with pytest.raises(RecipeError, match=r"predict.tta: expected 1 to 18"):
        stage_tta({"predict": {"tta": 40}}, "predict")
