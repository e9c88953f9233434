"""A reader of dlib's serialisation format (``dlib/serialize.h``) for DNN files such as dlib's face-recognition ResNet.

Written from dlib's sources, so no dlib C++ tool or conversion step is needed:

- integers: a control byte (bit 7 = negative, bits 0-3 = number of bytes), then the magnitude little-endian;
- floats/doubles: a ``float_details`` pair, mantissa then exponent, each an integer as above
  (value = mantissa * 2**exponent; exponents 32000/32001/32002 mean inf/-inf/nan);
- bools: the ASCII byte ``'1'`` or ``'0'``; strings: an integer length, then the bytes;
- tensors (``tensor.h``): version 2, num_samples, k, nr, nc, then raw little-endian float32 values;
  alias tensors: version 1 and the four sizes.

A network is written outermost first and recursively (``dnn/core.h``): the loss layer (version, details),
then one version integer per layer from the output down to the input (``add_layer`` 1-2, its input-level
form 2-3, ``add_tag_layer``/``add_skip_layer`` 1), the input layer, and then every computational layer's
details from the input up, each followed by the ``add_layer``'s state (flags and cleared tensors). Tag and
skip layers write nothing but their version, and ``add_prev_`` does not store its tag: the file gives the
order of the layers and their parameters, the model code gives the wiring (see ``dlib_resnet.py``).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoframe.errors import WeightsError

_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
MARKER = "tag_or_skip"
"""The kind of a tag or skip layer: they serialise only a version number."""


class DlibFormatError(ValueError):
    """The bytes do not follow dlib's format (a foreign or truncated file); the loader words it for the user."""


@dataclass
class DlibLayer:
    """One layer as stored: ``kind`` (e.g. ``con``, ``affine``, ``relu``, or ``MARKER``), its version string,
    scalar settings and float32 arrays (already reshaped: conv filters (out, in, kh, kw), fc weights (in, out))."""

    kind: str
    version: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed dlib network: the loss and input layers, and every other layer from the input up."""

    loss: DlibLayer
    input: DlibLayer
    layers: list[DlibLayer]

    @property
    def kinds(self) -> list[str]:
        return [layer.kind for layer in self.layers]


class Reader:
    """Sequential reads of dlib-serialised values from a bytes buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise DlibFormatError(f"ends early at byte {self.pos} while reading {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def integer(self, what: str = "an integer") -> int:
        control = self._take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1} ({what})")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def peek_integer(self) -> int | None:
        """The next integer without consuming it, or None where the bytes are not one."""
        start = self.pos
        try:
            return self.integer()
        except DlibFormatError:
            return None
        finally:
            self.pos = start

    def real(self, what: str = "a float") -> float:
        mantissa = self.integer(what)
        exponent = self.integer(what)
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return math.ldexp(mantissa, exponent)

    def boolean(self, what: str = "a bool") -> bool:
        byte = self._take(1, what)[0]
        if byte not in (0x30, 0x31):
            raise DlibFormatError(f"bad bool byte 0x{byte:02x} at byte {self.pos - 1} ({what})")
        return byte == 0x31

    def string(self, what: str = "a string", limit: int = 256) -> str:
        size = self.integer(what)
        if not 0 <= size <= limit:
            raise DlibFormatError(f"implausible string length {size} at byte {self.pos} ({what})")
        try:
            return bytes(self._take(size, what)).decode("ascii")
        except UnicodeDecodeError:
            raise DlibFormatError(f"non-text bytes where {what} was expected (byte {self.pos})") from None

    def tensor(self, what: str = "a tensor") -> np.ndarray:
        version = self.integer(what)
        if version != 2:
            raise DlibFormatError(f"tensor version {version}, expected 2 ({what})")
        shape = tuple(self.integer(what) for _ in range(4))
        count = math.prod(shape)
        if min(shape) < 0 or count * 4 > len(self.data) - self.pos:
            raise DlibFormatError(f"tensor of shape {shape} does not fit in the rest of the file ({what})")
        raw = self._take(4 * count, what)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        version = self.integer(what)
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version}, expected 1 ({what})")
        return tuple(self.integer(what) for _ in range(4))  # type: ignore[return-value]


def _split(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Cut a flat parameter tensor into consecutive blocks (dlib's alias tensors)."""
    flat = params.reshape(-1)
    out, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        if start + n > flat.size:
            raise DlibFormatError(f"parameter block of {flat.size} values is too small for shape {shape}")
        out.append(flat[start : start + n].reshape(shape))
        start += n
    return out


def _multipliers(r: Reader, what: str) -> None:
    for _ in range(4):  # learning-rate and weight-decay multipliers (training only)
        r.real(what)


def _con(r: Reader, version: str) -> DlibLayer:
    params = r.tensor("con_ params")
    s = {"num_filters": r.integer(), "nr": r.integer(), "nc": r.integer()}
    s |= {"stride_y": r.integer(), "stride_x": r.integer(), "padding_y": r.integer(), "padding_x": r.integer()}
    filters, biases = r.alias("con_ filters"), r.alias("con_ biases")
    _multipliers(r, "con_ multipliers")
    s["use_bias"] = r.boolean() if version in ("con_5", "con_6") else True
    s["use_relu"] = r.boolean() if version == "con_6" else False
    blocks = [filters] + ([biases] if s["use_bias"] and math.prod(biases) else [])
    parts = _split(params, *blocks)
    arrays = {"weight": parts[0]}
    if len(parts) > 1:
        arrays["bias"] = parts[1].reshape(-1)
    return DlibLayer("con", version, s, arrays)


def _affine(r: Reader, version: str) -> DlibLayer:
    params = r.tensor("affine_ params")
    gamma, beta = r.alias("affine_ gamma"), r.alias("affine_ beta")
    mode = r.integer("affine_ mode")
    disabled = r.boolean() if version == "affine_2" else False
    g, b = _split(params, gamma, beta) if not disabled else (np.ones(gamma), np.zeros(beta))
    return DlibLayer("affine", version, {"mode": mode, "disabled": disabled}, {"gamma": g, "beta": b})


def _bn_as_affine(r: Reader, version: str) -> DlibLayer:
    """A batch-norm layer read into an affine one, the way dlib's ``affine_(const bn_&)`` converts it."""
    params = r.tensor("bn_ params")
    gamma, beta = r.alias("bn_ gamma"), r.alias("bn_ beta")
    for name in ("means", "invstds"):
        r.tensor(f"bn_ {name}")
    running_means, running_variances = r.tensor("bn_ running_means"), r.tensor("bn_ running_variances")
    r.integer("bn_ num_updates")
    r.integer("bn_ running_stats_window_size")
    _multipliers(r, "bn_ multipliers")
    eps = r.real("bn_ eps")
    g, b = _split(params, gamma, beta)
    scale = g / np.sqrt(running_variances.reshape(g.shape) + np.float32(eps))
    shift = b - scale * running_means.reshape(g.shape)
    mode = 0 if version == "bn_con2" else 1
    return DlibLayer("affine", version, {"mode": mode, "disabled": False}, {"gamma": scale, "beta": shift})


def _pool(kind: str) -> Any:
    def read(r: Reader, version: str) -> DlibLayer:
        s = {"nr": r.integer(), "nc": r.integer(), "stride_y": r.integer(), "stride_x": r.integer()}
        s |= {"padding_y": r.integer(), "padding_x": r.integer()}
        return DlibLayer(kind, version, s)

    return read


def _relu(r: Reader, version: str) -> DlibLayer:
    return DlibLayer("relu", version, {"disabled": r.boolean() if version == "relu_2" else False})


def _fc(r: Reader, version: str) -> DlibLayer:
    s = {"num_outputs": r.integer(), "num_inputs": r.integer()}
    params = r.tensor("fc_ params")
    weights, biases = r.alias("fc_ weights"), r.alias("fc_ biases")
    s["bias_mode"] = r.integer("fc_ bias_mode")  # 0: has bias, 1: no bias
    _multipliers(r, "fc_ multipliers")
    s["use_bias"] = r.boolean() if version == "fc_3" else True
    has_bias = s["bias_mode"] == 0 and s["use_bias"] and math.prod(biases) > 0
    parts = _split(params, (weights[0], weights[1]), *([(biases[1],)] if has_bias else []))
    arrays = {"weight": parts[0]}  # (num_inputs, num_outputs): dlib computes x @ W
    if has_bias:
        arrays["bias"] = parts[1]
    return DlibLayer("fc", version, s, arrays)


_LAYERS = {
    "con_4": _con,
    "con_5": _con,
    "con_6": _con,
    "affine_": _affine,
    "affine_2": _affine,
    "bn_con2": _bn_as_affine,
    "bn_fc2": _bn_as_affine,
    "relu_": _relu,
    "relu_2": _relu,
    "max_pool_2": _pool("max_pool"),
    "avg_pool_2": _pool("avg_pool"),
    "add_prev_": lambda r, v: DlibLayer("add_prev", v),
    "fc_2": _fc,
    "fc_3": _fc,
}


def _loss(r: Reader) -> DlibLayer:
    if r.integer("the loss layer's version") != 1:
        raise DlibFormatError("the loss layer's version is not 1")
    version = r.string("the loss layer's name")
    if not version.startswith("loss_"):
        raise DlibFormatError(f"starts with '{version}', not a dlib loss layer")
    settings: dict[str, Any] = {}
    if version == "loss_metric_2":
        settings = {"margin": r.real(), "distance_threshold": r.real()}
    elif version == "loss_metric_":
        settings = {"margin": 0.1, "distance_threshold": 0.75}
    else:
        raise DlibFormatError(f"loss layer '{version}' is not supported (only loss_metric)")
    return DlibLayer("loss_metric", version, settings)


def _input(r: Reader) -> DlibLayer:
    version = r.string("the input layer's name")
    if version not in ("input_rgb_image", "input_rgb_image_sized"):
        raise DlibFormatError(f"input layer '{version}' is not supported (only input_rgb_image[_sized])")
    s: dict[str, Any] = {"mean": (r.real(), r.real(), r.real())}
    if version == "input_rgb_image_sized":
        s["nr"], s["nc"] = r.integer(), r.integer()
    return DlibLayer("input", version, s)


def _layer_state(r: Reader, version: int, input_level: bool) -> None:
    """The ``add_layer`` fields written after a layer's details: flags and (normally empty) tensors."""
    for name in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.boolean(name)
    r.tensor("x_grad")
    r.tensor("cached_output")
    if input_level:
        r.tensor("grad_final")
        if version >= 3:
            r.integer("sample_expansion_factor")
    elif version == 2:
        r.tensor("params_grad")


def parse(data: bytes) -> DlibNet:
    """Parse a dlib DNN (loss_metric over rgb-image input) from its bytes; ``DlibFormatError`` if not one."""
    r = Reader(data)
    loss = _loss(r)
    versions: list[int] = []
    while True:  # one version per layer, output first, until the input layer's name (a longer string)
        value = r.peek_integer()
        if value is None:
            raise DlibFormatError(f"bad layer header at byte {r.pos}")
        if value > 3:
            break
        versions.append(r.integer())
    if not versions:
        raise DlibFormatError("no layers after the loss layer")
    net_input = _input(r)
    layers: list[DlibLayer] = []
    for depth, version in enumerate(reversed(versions)):  # from the input up
        input_level = depth == 0
        if not input_level and version == 1:
            # a tag or skip layer writes only its version (an add_layer has written version 2 since 2016)
            layers.append(DlibLayer(MARKER))
            continue
        name = r.string("a layer's name")
        read = _LAYERS.get(name)
        if read is None:
            raise DlibFormatError(f"layer '{name}' is not supported")
        layers.append(read(r, name))
        _layer_state(r, version, input_level)
    if r.pos != len(r.data):
        raise DlibFormatError(f"{len(r.data) - r.pos} bytes left over after the network")
    return DlibNet(loss, net_input, layers)


def read_dlib_net(path: str | Path) -> DlibNet:
    """Parse the dlib network in ``path``; a missing, foreign or truncated file is a one-line ``WeightsError``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"dlib network file not found: {path}")
    data = path.read_bytes()
    if data[:2] == b"BZ":
        raise WeightsError(f"{path}: bzip2-compressed; decompress it first (bunzip2 {path.name})")
    try:
        return parse(data)
    except (DlibFormatError, struct.error) as err:
        raise WeightsError(f"{path}: not a dlib face-recognition network file ({err})") from None
