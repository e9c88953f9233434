"""Per-sample pipeline: augment recipes, resizing, channels and normalisation; recipe mistakes in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from emoframe.data import ImageArrayDataset, build_augment, build_transform
from emoframe.registry import RecipeError

AUGMENT = [
    {"name": "Affine", "rotate": [-10, 10], "shear": [-10, 10], "scale": [0.9, 1.1], "p": 0.5},
    {"name": "HorizontalFlip", "p": 0.5},
]


@pytest.fixture()
def image() -> np.ndarray:
    img = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    img[0, 0], img[0, 1] = 0, 255
    return img


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("image_size", [48, 96])
@pytest.mark.parametrize("augment", [None, AUGMENT])
def test_shapes_dtypes_ranges(channels: int, image_size: int, augment, image: np.ndarray) -> None:
    t = build_transform(augment, image_size=image_size, channels=channels)
    x = t(image)
    assert x.shape == (channels, image_size, image_size) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert all(torch.equal(x[0], x[c]) for c in range(channels))  # gray copied to every channel


def test_normalisation_is_exact(image: np.ndarray) -> None:
    x = build_transform(None, mean=0.5, std=0.5)(image)[0].numpy()
    np.testing.assert_allclose(x, (image / 255.0 - 0.5) / 0.5, atol=1e-6)
    assert x[0, 0] == -1.0 and x[0, 1] == 1.0
    x = build_transform(None, mean=0.2, std=0.25)(image)[0].numpy()
    np.testing.assert_allclose(x, (image / 255.0 - 0.2) / 0.25, atol=1e-5)


def test_per_channel_mean_std(image: np.ndarray) -> None:
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = build_transform(None, channels=3, mean=mean, std=std)(image).numpy()
    for c in range(3):
        np.testing.assert_allclose(x[c], (image / 255.0 - mean[c]) / std[c], atol=1e-5)


def test_resize_matches_the_declared_size(image: np.ndarray) -> None:
    t = build_transform([{"name": "RandomCrop", "height": 40, "width": 40, "p": 1.0}], image_size=48)
    assert t(image).shape == (1, 48, 48)  # a crop is resized back to image_size


def test_flip_is_applied(image: np.ndarray) -> None:
    x = build_transform([{"name": "HorizontalFlip", "p": 1.0}])(image)[0].numpy()
    np.testing.assert_allclose(x, (image[:, ::-1] / 255.0 - 0.5) / 0.5, atol=1e-6)


def test_float_output_of_an_augmentation_is_normalised_alike(image: np.ndarray) -> None:
    for channels, mean, std in ((1, 0.5, 0.5), (3, [0.4, 0.5, 0.6], [0.2, 0.3, 0.4])):
        as_float = build_transform([{"name": "ToFloat", "p": 1.0}], channels=channels, mean=mean, std=std)
        plain = build_transform(None, channels=channels, mean=mean, std=std)
        torch.testing.assert_close(as_float(image), plain(image))


def test_nested_one_of() -> None:
    (one_of,) = build_augment([{"name": "OneOf", "transforms": [{"name": "Blur"}, {"name": "GaussNoise"}], "p": 1}])
    assert [type(t).__name__ for t in one_of.transforms] == ["Blur", "GaussNoise"]


def test_omegaconf_lists_are_accepted(image: np.ndarray) -> None:
    omegaconf = pytest.importorskip("omegaconf")
    recipe = omegaconf.OmegaConf.create({"augment": AUGMENT})["augment"]
    assert build_transform(recipe)(image).shape == (1, 48, 48)


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (
            [{"name": "HorizontalFlip"}, {"name": "HorizontalFlp"}],
            r"data\.augment\[1\]\.name: unknown albumentations transform 'HorizontalFlp'\. "
            r"Did you mean 'HorizontalFlip'\?",
        ),
        (
            [{"name": "Affine", "rotat": 10}],
            r"data\.augment\[0\]\.rotat: Affine has no argument 'rotat'\. Did you mean 'rotate'\?",
        ),
        ([{"name": "Affine", "rotate": "lots"}], r"data\.augment\[0\]: bad arguments for Affine: rotate"),
        (
            [{"name": "HorizontalFlip", "p": "often"}],
            r"data\.augment\[0\]: bad arguments for HorizontalFlip: p",
        ),
        ([{"rotate": 10}], r"data\.augment\[0\]: expected a mapping like \{name: HorizontalFlip"),
        ({"name": "HorizontalFlip"}, r"data\.augment: expected a list"),
        ([{"name": "Normalize"}], r"data\.augment\[0\]\.name: remove Normalize: .* data\.image\.mean/std"),
        (
            [{"name": "OneOf", "transforms": [{"name": "Blurr"}]}],
            r"data\.augment\[0\]\.transforms\[0\]\.name: unknown .* Did you mean 'Blur'\?",
        ),
    ],
)
def test_bad_recipes(recipe, message: str) -> None:
    with pytest.raises(RecipeError, match=message) as info:
        build_transform(recipe)
    assert "\n" not in str(info.value)


def test_workers_draw_different_augmentations() -> None:
    """Forked workers copy the augmentation RNG; each must be reseeded or all draw the same params."""
    images = np.tile(np.arange(48, dtype=np.uint8)[None, None, :] * 5, (32, 48, 1))
    t = build_transform([{"name": "Affine", "rotate": [-30, 30], "translate_px": [-5, 5], "p": 1.0}])
    loader = DataLoader(ImageArrayDataset(images, np.zeros(32), t), batch_size=8, num_workers=2)
    torch.manual_seed(0)
    first = torch.cat([x for x, _ in loader])
    torch.manual_seed(0)
    again = torch.cat([x for x, _ in loader])
    assert torch.equal(first, again)  # reproducible under the same torch seed
    worker0, worker1 = first[:8], first[8:16]  # batch 0 from worker 0, batch 1 from worker 1
    assert not torch.equal(worker0, worker1)
    torch.manual_seed(1)
    assert not torch.equal(torch.cat([x for x, _ in loader]), first)  # and a new epoch seed, new draws
