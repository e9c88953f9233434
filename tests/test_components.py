"""Registry-driven component tests: every backbone, head, loss, optimizer and schedule builds and runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

import emoframe.components  # noqa: F401
from emoframe.backbones.weights import WeightsError, load_pretrained
from emoframe.builder import build_task, stage_tta, temporal_spec, temporal_width
from emoframe.callbacks.writers import (
    ClassProbabilities,
    ClipPredictions,
    MultilabelPredictions,
    ValenceArousalPredictions,
)
from emoframe.engine.evaluation import prediction_writer
from emoframe.losses.classification import inverse_frequency
from emoframe.registry import (
    BACKBONES,
    CALLBACKS,
    FEATURES,
    HEADS,
    LOSSES,
    OPTIMIZERS,
    REGISTRIES,
    SCHEDULERS,
    TEMPORAL,
    RecipeError,
)
from emoframe.tasks.frame_classifier import FrameClassifier
from emoframe.tasks.fusion_classifier import FusionClassifier
from emoframe.tasks.multilabel_classifier import MultilabelClassifier
from emoframe.tasks.sequence_classifier import SequenceClassifier
from emoframe.tasks.va_regressor import VARegressor

BACKBONE_CFGS = {"timm": {"model": "resnet18"}, "small_cnn": {}, "dlib_resnet": {"stage": 3}}  # stage 3 takes 48x48


def test_every_backbone_has_a_test_config() -> None:
    assert set(BACKBONES.names()) == set(BACKBONE_CFGS)


@pytest.mark.parametrize("name", sorted(BACKBONE_CFGS))
@pytest.mark.parametrize("in_chans", [1, 3])
def test_backbone_forward(name: str, in_chans: int) -> None:
    net = BACKBONES.build({"name": name, **BACKBONE_CFGS[name]}, "model.backbone", in_chans=in_chans).eval()
    out = net(torch.randn(2, in_chans, 48, 48))
    assert out.shape == (2, net.num_features)


def test_timm_num_features_is_the_output_width_after_a_conv_head() -> None:
    net = BACKBONES.build({"name": "timm", "model": "mobilenetv3_small_050"}, "model.backbone", in_chans=1).eval()
    assert net(torch.randn(2, 1, 48, 48)).shape == (2, net.num_features) and net.num_features != net.model.num_features


def test_unknown_timm_model_suggests() -> None:
    with pytest.raises(RecipeError, match="unknown timm model 'resnet181'. Similar: resnet18"):
        BACKBONES.build({"name": "timm", "model": "resnet181"}, "model.backbone")


@pytest.mark.parametrize("name", HEADS.names())
def test_heads(name: str) -> None:
    head = HEADS.build({"name": name}, "model.head", in_features=16, num_outputs=7).eval()
    assert head(torch.randn(3, 16)).shape == (3, 7)


FEATURE_DIMS = {"hog": 2592, "landmarks68": 136}  # Kumari's 2,728 together


def test_every_feature_extractor_has_a_test_config() -> None:
    assert set(FEATURES.names()) == set(FEATURE_DIMS)


@pytest.mark.parametrize("name", sorted(FEATURE_DIMS))
def test_feature_extractors_on_real_faces(name: str, fer_faces: np.ndarray) -> None:
    extractor = FEATURES.build({"name": name}, "data.features[0]")
    values = extractor(fer_faces[:8])
    assert extractor.dim == FEATURE_DIMS[name] and values.shape == (8, extractor.dim)
    assert values.dtype == np.float32 and np.isfinite(values).all() and values.std(axis=0).max() > 0
    # picklable and deterministic: extraction runs in worker processes and is cached by settings
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(extractor))(fer_faces[:8]), values)


LOSS_INPUTS = {
    "ce": lambda: (torch.randn(4, 7), torch.tensor([0, 1, 2, 6])),  # logits, class ids
    "ccc": lambda: (torch.randn(16, 2), torch.randn(16, 2)),  # predictions, targets (arousal, valence)
    "weighted_bce": lambda: (
        torch.randn(4, 3),
        torch.tensor([[1.0, 0, 0], [0, 1, 1], [0.4, 0, 1], [float("nan")] * 3]),
    ),
}


def test_every_loss_has_test_inputs() -> None:
    assert set(LOSSES.names()) == set(LOSS_INPUTS)


@pytest.mark.parametrize("name", sorted(LOSS_INPUTS))
def test_every_loss_gives_a_finite_scalar_with_gradient(name: str) -> None:
    pred, target = LOSS_INPUTS[name]()
    pred.requires_grad_(True)
    value = LOSSES.build({"name": name}, "loss")(pred, target)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value) and torch.isfinite(pred.grad).all()


def test_cross_entropy_class_weights_and_smoothing() -> None:
    logits, target = torch.randn(8, 3), torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
    ref = nn.functional.cross_entropy(logits, target, weight=torch.tensor([1.0, 2.0, 3.0]), label_smoothing=0.1)
    loss = LOSSES.build({"name": "ce", "class_weights": [1.0, 2.0, 3.0], "label_smoothing": 0.1})
    assert torch.allclose(loss(logits, target), ref)
    auto = LOSSES.build({"name": "ce", "class_weights": "inverse_frequency"})
    auto.set_class_counts([10, 20, 40])
    w = torch.tensor([1 / 10, 1 / 20, 1 / 40])
    assert torch.allclose(auto.weight, w * 3 / w.sum())
    assert torch.allclose(auto(logits, target), nn.functional.cross_entropy(logits, target, weight=auto.weight))
    with pytest.raises(RecipeError, match="3 values but the model has 7 classes"):
        loss(torch.randn(2, 7), torch.tensor([0, 1]))


def test_inverse_frequency_ignores_absent_classes() -> None:
    w = inverse_frequency(torch.tensor([5, 0, 5]))
    assert w.tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizers_step(name: str) -> None:
    model = nn.Linear(4, 2)
    opt = OPTIMIZERS.partial({"name": name, "lr": 0.1}, "optimizer", provided=("params",))(model.parameters())
    before = model.weight.detach().clone()
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)


def _lrs(name: str, total: int = 100, per_epoch: int = 10, **kw: object) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    spec = SCHEDULERS.partial(
        {"name": name, **kw}, "scheduler", provided=("optimizer", "total_steps", "steps_per_epoch")
    )
    sched = spec(opt, total_steps=total, steps_per_epoch=per_epoch)
    lrs = []
    n = total if sched["interval"] == "step" else total // per_epoch
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched["scheduler"].step(*([1.0] if name == "plateau" else []))
    return lrs


def test_schedules() -> None:
    poly = _lrs("poly", power=1.0)
    assert poly[0] == 1.0 and poly[50] == pytest.approx(0.5) and poly[-1] == pytest.approx(0.01)
    step = _lrs("step", step_epochs=3)
    assert step[:3] == [1.0] * 3 and step[3] == pytest.approx(0.1) and step[6] == pytest.approx(0.01)
    cos = _lrs("cosine", warmup_epochs=1)
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0) and cos[-1] < 0.01
    assert cos == sorted(cos[:10]) + sorted(cos[10:], reverse=True)
    plateau = _lrs("plateau", patience=1)
    assert plateau[0] == 1.0 and plateau[-1] < 1.0


def test_schedule_bad_argument() -> None:
    with pytest.raises(RecipeError, match="Unknown key scheduler.powr"):
        SCHEDULERS.partial(
            {"name": "poly", "powr": 2}, "scheduler", provided=("optimizer", "total_steps", "steps_per_epoch")
        )


CALLBACK_CFGS = {
    "model_checkpoint": {"monitor": "val/acc", "mode": "max"},
    "early_stopping": {"monitor": "val/loss"},
    "lr_monitor": {"logging_interval": "epoch"},
    "progress_bar": {},
    "rich_progress_bar": {},
    "ema": {"decay": 0.99},
    "freeze_unfreeze": {
        "module": "backbone",
        "epochs": 5,
        "optimizer": {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "nesterov": True},
        "scheduler": {"name": "plateau", "monitor": "val/loss"},
    },
    # output components (emoframe.callbacks): prediction writers, report writers, fitted post-processing
    "class_probabilities": {"path": "predictions.csv"},
    "clip_predictions": {},
    "va_predictions": {},
    "multilabel_predictions": {},
    "confusion_report": {},
    "label_report": {},
    "label_counts": {},
    "va_postprocess": {},
    "threshold_tuning": {},
}


def test_every_callback_has_a_test_config() -> None:
    assert set(CALLBACKS.names()) == set(CALLBACK_CFGS)


@pytest.mark.parametrize("name", sorted(CALLBACK_CFGS))
def test_callbacks_build_with_what_the_builder_injects(name: str, tmp_path: Path) -> None:
    if name == "rich_progress_bar":
        pytest.importorskip("rich")
    where = f"callbacks.{name}"
    callback = CALLBACKS.build({"name": name, **CALLBACK_CFGS[name]}, where, dirpath=str(tmp_path), recipe_key=where)
    assert isinstance(callback, pl.Callback)
    assert isinstance(callback.state_dict(), dict)  # checkpoints store every callback's state


def test_load_pretrained_strips_prefixes_and_reports(tmp_path: Path) -> None:
    src = BACKBONES.build({"name": "timm", "model": "resnet18"}, "b", in_chans=1)
    # a Lightning checkpoint of a task: keys are 'backbone.model.<timm key>', plus a head
    state = {f"backbone.{k}": v for k, v in src.state_dict().items()}
    state["head.net.1.weight"] = torch.zeros(7, 512)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "task.ckpt")
    dst = BACKBONES.build(
        {"name": "timm", "model": "resnet18", "weights": str(tmp_path / "task.ckpt")}, "b", in_chans=1
    )
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
    # a plain timm state dict with a classifier for 1000 classes: fc.* are unexpected, the rest loads
    raw = dict(src.model.state_dict())
    raw["fc.weight"], raw["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    torch.save(raw, tmp_path / "timm.pth")
    target = BACKBONES.build({"name": "timm", "model": "resnet18"}, "b", in_chans=1)
    missing, unexpected = load_pretrained(target.model, tmp_path / "timm.pth")
    assert missing == [] and unexpected == ["fc.bias", "fc.weight"]


def test_load_pretrained_errors(tmp_path: Path) -> None:
    net = BACKBONES.build({"name": "small_cnn"}, "b")
    with pytest.raises(WeightsError, match="Weights file not found"):
        load_pretrained(net, tmp_path / "missing.pth")
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="no tensor matches SmallCNN"):
        load_pretrained(net, tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="Cannot read weights"):
        load_pretrained(net, tmp_path / "junk.pth")


TEMPORAL_CFGS = {
    "lstm": {"hidden_size": 8, "num_layers": 2, "bidirectional": True, "dropout": 0.1},
    "gru": {"hidden_size": 6, "num_layers": 1},
    "mean": {},
    "none": {},
}


def test_every_temporal_model_has_a_test_config() -> None:
    assert set(TEMPORAL.names()) == set(TEMPORAL_CFGS)
    assert "temporal" in REGISTRIES  # `emoframe list temporal`


@pytest.mark.parametrize("name", sorted(TEMPORAL_CFGS))
def test_temporal_model_width_is_what_the_builder_sizes_the_head_with(name: str) -> None:
    spec = {"name": name, **TEMPORAL_CFGS[name]}
    width = temporal_width(spec, 12)  # computed from the class, before anything is built
    model = TEMPORAL.build(spec, "model.temporal", in_features=12)
    assert model.out_features == width == type(model).output_width(12, **TEMPORAL_CFGS[name])
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 3:] = False
    out = model(torch.randn(3, 5, 12), mask)
    assert out.shape == (3, 5, width)


def test_temporal_spec_lays_recipe_keys_over_the_task_default() -> None:
    assert temporal_spec(VARegressor, None) == {"name": "lstm", "hidden_size": 256, "num_layers": 2}
    assert temporal_spec(VARegressor, {"hidden_size": 32}) == {"name": "lstm", "hidden_size": 32, "num_layers": 2}
    assert temporal_spec(SequenceClassifier, "lstm")["num_layers"] == 1  # the task's default, not the class's
    assert temporal_spec(VARegressor, "gru") == {"name": "gru"}
    assert temporal_spec(FrameClassifier, None) is None
    with pytest.raises(RecipeError, match="takes no temporal model"):
        temporal_spec(FrameClassifier, {"name": "lstm"})


class _Data:
    channels, num_classes, class_names = 1, 2, ["arousal", "valence"]


@pytest.mark.parametrize("old", ["hidden_size", "num_layers", "bidirectional", "dropout"])
def test_old_flat_temporal_keys_name_the_new_key(old: str) -> None:
    value = {"hidden_size": 32, "num_layers": 1, "bidirectional": True, "dropout": 0.1}[old]
    cfg = {"model": {"name": "va_regressor", "backbone": {"name": "small_cnn"}, old: value}, "loss": {"name": "ccc"}}
    with pytest.raises(RecipeError, match=rf"model\.{old} has moved: set model\.temporal\.{old} instead"):
        build_task(cfg, _Data(), for_training=False)  # type: ignore[arg-type]


def test_builder_sizes_the_head_from_the_temporal_model() -> None:
    model = {"name": "va_regressor", "backbone": {"name": "small_cnn", "widths": [8, 16]}}
    for temporal, width in (({"hidden_size": 12, "bidirectional": True}, 24), ({"name": "mean"}, 16)):
        task = build_task({"model": {**model, "temporal": temporal}, "loss": {"name": "ccc"}}, _Data(), False)  # type: ignore[arg-type]
        assert task.temporal.out_features == width
        assert task.head(torch.zeros(1, width)).shape == (1, 2)


@pytest.mark.parametrize(
    ("task", "writer"),
    [
        (FrameClassifier, ClassProbabilities),
        (FusionClassifier, ClassProbabilities),
        (SequenceClassifier, ClipPredictions),
        (VARegressor, ValenceArousalPredictions),
        (MultilabelClassifier, MultilabelPredictions),
    ],
)
def test_prediction_writer_is_the_tasks_default(task: type, writer: type, tmp_path: Path) -> None:
    built = prediction_writer({}, task, tmp_path / "p.csv")
    assert type(built) is writer and built.path == tmp_path / "p.csv"


def test_prediction_writer_from_the_recipe(tmp_path: Path) -> None:
    cfg = {"predict": {"writer": {"name": "class_probabilities"}}}
    assert type(prediction_writer(cfg, SequenceClassifier, tmp_path / "p.csv")) is ClassProbabilities
    with pytest.raises(RecipeError, match="is not a prediction writer"):
        prediction_writer({"predict": {"writer": {"name": "label_report"}}}, FrameClassifier, tmp_path / "p.csv")
    with pytest.raises(RecipeError, match="Unknown key predict.writr"):  # the predict: section, checked once
        stage_tta({"predict": {"writr": {}}}, "predict")
