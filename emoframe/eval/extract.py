"""Per-frame penultimate-layer features of a trained checkpoint, with test-time augmentation (Knyazev et al. 2.5).

``emoframe extract --ckpt X [recipe.yaml] [overrides]`` runs the checkpoint's backbone (the layer before the
head) over every frame of every item of the chosen splits and writes ``<output>/<split>.npz``:

    features     float32 (F, D)  one row per frame, the clips' frames concatenated in clip order
    offsets      int64   (N+1,)  clip i is features[offsets[i]:offsets[i + 1]]
    labels       int64   (N,)    EMOTIONS ids; -1 for unlabelled clips
    names        str     (N,)    clip names (AFEW: ``Happy/000100003``; images: their file names)
    frame_index  int64   (F,)    each row's frame number in its clip (0 for images)
    meta         str     ()      JSON: format, version, split, checkpoint (path, sha256), backbone, data, tta

A frame datamodule (``fer2013``, ``image_folder``) gives one-frame clips; a clip datamodule (``afew``,
``video_folder``) gives every frame of each clip that has a face crop (``data.frames``/``sampling`` are for
training sequence models and are ignored here: the paper computes "features for all frames").

**Test-time augmentation.** "frame-based augmentation in the form of horizontal flipping, rotation and scaling
... We compute 18 transformations per frame and average features of these transformations." The paper does
not list them; 18 = 2 x 3 x 3 reads as {no flip, flip} x {0, -10, +10 degrees} x {1.0, 0.9, 1.1 scale}, the
ranges of the FER2013 training augmentation (rotation up to 10 degrees, zoom 0.9-1.1). ``PAPER_TTA`` holds
them identity first, so ``--tta N`` keeps the first N: 1 = none, 2 = + flip, 6 = flips x rotations, 18 = all.
All views of a batch are warped with one ``grid_sample`` (bilinear, edge pixels repeated) and go through the
backbone in one forward pass; identity and plain flips are copied exactly, not resampled.

**Resumable.** Each split is written to a temporary file and renamed into place once complete (features
stream to disk first, so memory stays bounded), so a killed run never leaves a ``<split>.npz`` that reads as
complete; a rerun skips the splits whose files are complete and were made with the same checkpoint, data
and TTA (other settings are an error unless ``--overwrite``). One extraction per output folder at a time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emoframe.errors import DataError, WeightsError
from emoframe.registry import RecipeError

FILE_FORMAT = "emoframe-frame-features"
FILE_VERSION = 1
SPLIT_NAMES = ("train", "val", "test", "predict")
MEMBERS = ("features", "offsets", "labels", "names", "frame_index", "meta")
IGNORED_DATA_KEYS = ("batch_size", "num_workers", "workers", "cache_dir", "augment", "clip_transforms")
"""Data settings that do not change the features: a rerun with other values still skips finished splits."""


# --- test-time augmentation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TTATransform:
    """One view of a frame: horizontal flip first, then rotation (degrees, counter-clockwise as displayed,
    as OpenCV's ``getRotationMatrix2D``) and scale (> 1 zooms in) about the image centre."""

    flip: bool = False
    angle: float = 0.0
    scale: float = 1.0

    @property
    def exact(self) -> bool:
        """Identity or a plain flip: copied, not resampled."""
        return self.angle == 0.0 and self.scale == 1.0

    def sampling_matrix(self) -> np.ndarray:
        """2x2 map from output pixel offsets (x, y) about the centre to input offsets: (flip . A)^-1."""
        a = math.radians(self.angle)
        c, s = math.cos(a), math.sin(a)
        inverse = np.array([[c, -s], [s, c]]) / self.scale  # A = scale * [[c, s], [-s, c]] (OpenCV's)
        flip = np.diag([-1.0, 1.0]) if self.flip else np.eye(2)
        return flip @ inverse


PAPER_TTA: tuple[TTATransform, ...] = tuple(
    TTATransform(flip, angle, scale)
    for scale in (1.0, 0.9, 1.1)
    for angle in (0.0, -10.0, 10.0)
    for flip in (False, True)
)
"""Our reading of the paper's 18 views, identity first (prefixes: 1 none, 2 flip, 6 flips x rotations)."""


def parse_tta(spec: Any, where: str = "--tta") -> tuple[TTATransform, ...]:
    """``N`` (the first N of ``PAPER_TTA``) or a list of ``{flip, angle, scale}`` mappings; else a one-line error."""
    if isinstance(spec, str):
        import yaml

        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError:
            raise RecipeError(f"{where}: expected a number of views (1-18) or a YAML list, got {spec!r}") from None
    if isinstance(spec, int) and not isinstance(spec, bool):
        if not 1 <= spec <= len(PAPER_TTA):
            raise RecipeError(f"{where}: expected 1 to {len(PAPER_TTA)} views of the paper's set, got {spec}")
        return PAPER_TTA[:spec]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise RecipeError(
            f"{where}: expected a number of views (1-18) or a non-empty list like "
            f"'[{{flip: true}}, {{angle: 10, scale: 0.9}}]', got {spec!r}"
        )
    out = []
    for i, item in enumerate(spec):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise RecipeError(f"{at}: expected a mapping with flip, angle, scale, got {item!r}")
        unknown = sorted(set(item) - {"flip", "angle", "scale"})
        if unknown:
            raise RecipeError(f"{at}: unknown key '{unknown[0]}'. Accepted: flip, angle, scale")
        flip, angle, scale = item.get("flip", False), item.get("angle", 0.0), item.get("scale", 1.0)
        if not isinstance(flip, bool):
            raise RecipeError(f"{at}.flip: expected true or false, got {flip!r}")
        for key, value in (("angle", angle), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RecipeError(f"{at}.{key}: expected a number, got {value!r}")
        if scale <= 0:
            raise RecipeError(f"{at}.scale: expected a number > 0, got {scale!r}")
        out.append(TTATransform(flip, float(angle), float(scale)))
    return tuple(out)


def tta_views(x: torch.Tensor, transforms: Sequence[TTATransform]) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B * K, C, H, W)``, the K views of each frame adjacent (frame-major order).

    Resampled views share one ``affine_grid``/``grid_sample`` call (bilinear, ``align_corners=False``: pixel
    centres, so the centre is ((W-1)/2, (H-1)/2) as in OpenCV; out-of-image samples repeat the edge pixel).
    """
    b, c, h, w = x.shape
    k = len(transforms)
    if k == 1 and transforms[0] == TTATransform():
        return x
    views = x.new_empty((b, k, c, h, w))
    warped = []
    for i, t in enumerate(transforms):
        if t.exact:
            views[:, i] = x.flip(-1) if t.flip else x
        else:
            warped.append(i)
    if warped:
        to_norm = np.diag([2.0 / w, 2.0 / h])  # offsets in pixels -> grid units (align_corners=False)
        thetas = [to_norm @ transforms[i].sampling_matrix() @ np.linalg.inv(to_norm) for i in warped]
        theta = torch.zeros((len(warped), 2, 3), dtype=x.dtype, device=x.device)
        theta[:, :, :2] = torch.as_tensor(np.stack(thetas), dtype=x.dtype, device=x.device)
        m = len(warped)
        src = x.unsqueeze(1).expand(b, m, c, h, w).reshape(b * m, c, h, w)
        grid = F.affine_grid(theta.repeat(b, 1, 1), [b * m, c, h, w], align_corners=False)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        views[:, warped] = out.reshape(b, m, c, h, w)
    return views.reshape(b * k, c, h, w)


def tta_features(
    backbone: nn.Module, x: torch.Tensor, transforms: Sequence[TTATransform], channels_last: bool = False
) -> torch.Tensor:
    """``(B, C, H, W)`` frames -> ``(B, D)`` backbone features averaged over the views, in one forward pass."""
    views = tta_views(x, transforms)
    if channels_last:
        views = views.contiguous(memory_format=torch.channels_last)
    out = backbone(views)
    if out.ndim != 2:
        raise RecipeError(f"model.backbone: expected (batch, features) outputs, got shape {tuple(out.shape)}")
    return out.reshape(len(x), len(transforms), -1).mean(dim=1)


# --- what a split holds ------------------------------------------------------------------------------
@dataclass
class SplitSource:
    """The clips of one split and a way to stream their frames, normalised, in clip order."""

    names: list[str]
    labels: np.ndarray  # int64 (N,)
    lengths: np.ndarray  # int64 (N,) frames per clip
    frame_index: np.ndarray  # int64 (F,)
    batches: Callable[[int], Iterator[torch.Tensor]]  # batch size -> (b, C, H, W) float32 batches


def _image_source(dm: Any, split: str) -> SplitSource:
    """A frame datamodule's split, through its evaluation transform (no augmentation), one image per clip."""
    from torch.utils.data import DataLoader

    from emoframe.data.datasets import ImageArrayDataset

    dataset = dm.dataset(split)
    plain = ImageArrayDataset(dataset.images, dataset.labels, dm.eval_transform, dataset.names)
    n = len(plain)
    names = [str(s) for s in dataset.names] if dataset.names is not None else [f"{split}_{i:06d}" for i in range(n)]

    def batches(size: int) -> Iterator[torch.Tensor]:
        loader = DataLoader(plain, batch_size=size, shuffle=False, num_workers=int(getattr(dm, "num_workers", 0)))
        for x, _ in loader:
            yield x

    return SplitSource(names, plain.labels.copy(), np.ones(n, np.int64), np.zeros(n, np.int64), batches)


def _clip_source(dm: Any, split: str) -> SplitSource:
    """A clip datamodule's split: every frame with a face crop, normalised with the datamodule's mean/std."""
    from emoframe.data.clips import UNLABELLED, read_frames

    recordings = dm.recordings(split)
    picked, kept = [], []
    for rec in recordings:
        idx = np.flatnonzero(rec.valid)
        if len(idx):
            picked.append(idx)
            kept.append(rec)
        else:
            print(f"Skipping {rec.source}: no frame with a face crop", file=sys.stderr, flush=True)
    mean = torch.as_tensor(dm.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.as_tensor(dm.std, dtype=torch.float32).reshape(1, -1, 1, 1)

    def batches(size: int) -> Iterator[torch.Tensor]:
        pending: list[torch.Tensor] = []
        count = 0
        for rec, idx in zip(kept, picked):
            for start in range(0, len(idx), size):
                crops = read_frames(rec.crops, idx[start : start + size])
                crops = crops[..., None] if crops.ndim == 3 else crops
                x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
                pending.append((x - mean) / std)
                count += len(x)
                while count >= size:
                    joined = torch.cat(pending)
                    yield joined[:size]
                    pending, count = ([joined[size:]] if len(joined) > size else []), len(joined) - size
        if count:
            yield torch.cat(pending)

    names = [rec.name for rec in kept]
    labels = np.array([int(rec.extra.get("label", UNLABELLED)) for rec in kept], dtype=np.int64)
    lengths = np.array([len(idx) for idx in picked], dtype=np.int64)
    frame_index = np.concatenate(picked).astype(np.int64) if picked else np.zeros(0, np.int64)
    return SplitSource(names, labels, lengths, frame_index, batches)


def split_source(dm: Any, split: str) -> SplitSource:
    """The items of ``split`` for a frame or clip datamodule; any other datamodule is a one-line error."""
    from emoframe.data.base import ImageClassificationDataModule
    from emoframe.data.clips import ClipClassificationDataModule

    if isinstance(dm, ImageClassificationDataModule):
        return _image_source(dm, split)
    if isinstance(dm, ClipClassificationDataModule):
        return _clip_source(dm, split)
    raise RecipeError(
        f"data: emoframe extract reads frame datamodules (fer2013, image_folder: one image = one clip) and clip "
        f"datamodules (afew, video_folder); {type(dm).__name__} is neither"
    )


# --- the backbone of a checkpoint ---------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_backbone(cfg: dict[str, Any], state_dict: Mapping[str, torch.Tensor], in_chans: int, ckpt: Path) -> nn.Module:
    """The recipe's backbone with the checkpoint's ``backbone.*`` weights (its own ``weights:`` file is not read)."""
    from emoframe.registry import BACKBONES

    spec = dict((cfg.get("model") or {}).get("backbone") or {})
    if not spec:
        raise RecipeError(f"{ckpt}: its recipe's task has no model.backbone, so there is no penultimate layer to read")
    spec.pop("weights", None)  # the checkpoint's weights replace any pretrained start
    backbone = BACKBONES.build(spec, "model.backbone", in_chans=in_chans)
    state = {k.removeprefix("backbone."): v for k, v in state_dict.items() if k.startswith("backbone.")}
    if not state:
        raise WeightsError(f"{ckpt}: no backbone.* tensors in its state_dict (not a checkpoint of an emoframe task?)")
    own = backbone.state_dict()
    for key, value in own.items():
        if key not in state:
            raise WeightsError(f"{ckpt}: backbone tensor '{key}' missing from the checkpoint")
        if tuple(state[key].shape) != tuple(value.shape):
            trained = (cfg.get("data") or {}).get("channels")
            raise WeightsError(
                f"{ckpt}: backbone tensor '{key}' is {tuple(state[key].shape)} in the checkpoint but "
                f"{tuple(value.shape)} for data with {in_chans} channel(s); give the data the checkpoint's settings"
                + (f" (it was trained with data.channels={trained})" if trained is not None else "")
            )
    extra = sorted(set(state) - set(own))
    if extra:
        raise WeightsError(f"{ckpt}: checkpoint tensor 'backbone.{extra[0]}' has no place in the recipe's backbone")
    backbone.load_state_dict(state)
    return backbone.eval()


# --- feature files -----------------------------------------------------------------------------------
@dataclass
class FeatureFile:
    """One ``<split>.npz``: ragged per-frame features of N clips (``features`` is memory-mapped)."""

    path: Path
    features: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    frame_index: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def clips(self) -> list[np.ndarray]:
        """``(T_i, D)`` float32 arrays, one per clip (views of the mapped file)."""
        return [self.features[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def settings(self) -> dict[str, Any]:
        return settings_key(self.meta)


def settings_key(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two extractions comparable: checkpoint contents, data settings that shape frames, TTA."""
    data = {k: v for k, v in (meta.get("data") or {}).items() if k not in IGNORED_DATA_KEYS}
    return {"checkpoint_sha256": (meta.get("checkpoint") or {}).get("sha256"), "data": data, "tta": meta.get("tta")}


def load_features(path: str | Path) -> FeatureFile:
    """A complete file written by ``emoframe extract``, or a one-line ``DataError`` (missing, truncated, foreign)."""
    from emoframe.files.lazy import NpzMember

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Feature file not found: {path} (write it with emoframe extract)")
    try:
        with zipfile.ZipFile(path) as z:
            present = {n.removesuffix(".npy") for n in z.namelist()}
        missing = [m for m in MEMBERS if m not in present]
        if missing:
            raise DataError(f"{path}: not a complete emoframe feature file (no '{missing[0]}'); extract it again")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            small = {k: z[k] for k in ("offsets", "labels", "names", "frame_index")}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise DataError(
            f"{path}: incomplete or damaged feature file ({type(err).__name__}); extract it again"
        ) from None
    if meta.get("format") != FILE_FORMAT or meta.get("version") != FILE_VERSION:
        raise DataError(f"{path}: not an emoframe feature file of version {FILE_VERSION} ({FILE_FORMAT})")
    features = NpzMember(path, "features").array()
    offsets = small["offsets"]
    n = len(small["labels"])
    if (
        features.ndim != 2
        or offsets.shape != (n + 1,)
        or len(small["names"]) != n
        or offsets[0] != 0
        or offsets[-1] != len(features)
        or len(small["frame_index"]) != len(features)
        or (np.diff(offsets) < 1).any()
    ):
        raise DataError(
            f"{path}: inconsistent feature file (offsets, labels, names and rows disagree); extract it again"
        )
    return FeatureFile(path, features, offsets, small["labels"], small["names"], small["frame_index"], meta)


def write_features(
    path: Path,
    features: np.ndarray,
    lengths: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    frame_index: np.ndarray,
    meta: Mapping[str, Any],
) -> Path:
    """Write one split atomically: a temporary file in the same folder, flushed, then renamed into place."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            np.savez(
                f,
                features=features,
                offsets=offsets,
                labels=np.asarray(labels, dtype=np.int64),
                names=np.array(list(names), dtype=str) if len(names) else np.zeros(0, dtype="<U1"),
                frame_index=np.asarray(frame_index, dtype=np.int64),
                meta=np.array(json.dumps(dict(meta), sort_keys=True)),
            )
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --- the command ---------------------------------------------------------------------------------------
@dataclass
class ExtractResult:
    path: Path
    skipped: bool
    clips: int
    frames: int
    dim: int


def extract_split(
    source: SplitSource,
    backbone: nn.Module,
    transforms: Sequence[TTATransform],
    path: Path,
    meta: dict[str, Any],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> ExtractResult:
    """Stream ``source``'s frames through ``backbone`` (TTA-averaged) into a raw temporary file, then write
    ``path`` atomically; the temporary files are removed whatever happens."""
    from tqdm.auto import tqdm

    total = int(source.lengths.sum())
    if total == 0:
        raise DataError(f"{meta.get('split')}: no frames to extract (no clips, or none with a face crop)")
    raw = path.with_name(f".{path.stem}.frames.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, dim = 0, 0
    bar = tqdm(total=total, desc=f"extract {meta.get('split')} ({len(transforms)} views)", unit="frame")
    try:
        with raw.open("wb") as f, torch.inference_mode():
            for x in source.batches(batch_size):
                try:
                    out = tta_features(backbone, x.to(device), transforms, channels_last)
                except torch.OutOfMemoryError:
                    raise  # the real cause; lower --batch-size (the forward pass sees batch size x views)
                except RuntimeError as err:  # e.g. 3-channel frames into a 1-channel stem
                    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    raise RecipeError(
                        f"model.backbone cannot read frames of shape {tuple(x.shape[1:])} from the data: {first}"
                    ) from None
                block = out.float().cpu().numpy()
                dim = block.shape[1]
                f.write(np.ascontiguousarray(block).tobytes())
                rows += len(block)
                bar.update(len(block))
        bar.close()
        if rows != total:
            raise DataError(f"{meta.get('split')}: the datamodule gave {rows} frames, expected {total}")
        features = np.memmap(raw, np.float32, "r", shape=(rows, dim))
        meta = {**meta, "clips": len(source.names), "frames": rows, "dim": dim}
        write_features(path, features, source.lengths, source.labels, source.names, source.frame_index, meta)
        del features
    finally:
        bar.close()
        raw.unlink(missing_ok=True)
    return ExtractResult(path, False, len(source.names), rows, dim)


def run_extract(
    cfg: dict[str, Any],
    ckpt: Path,
    state_dict: Mapping[str, torch.Tensor],
    output: Path,
    splits: Sequence[str],
    transforms: Sequence[TTATransform],
    batch_size: int = 64,
    device: str = "auto",
    overwrite: bool = False,
    trained_cfg: dict[str, Any] | None = None,
) -> list[ExtractResult]:
    """Extract every split not already complete under ``output`` (``cfg``: the data and the checkpoint's model)."""
    from emoframe.builder import build_datamodule
    from emoframe.registry import load_plugins

    for split in splits:
        if split not in SPLIT_NAMES:
            raise RecipeError(f"--splits: unknown split '{split}'. Known: {', '.join(SPLIT_NAMES)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise RecipeError(f"--batch-size: expected an integer >= 1, got {batch_size!r}")
    load_plugins(list(cfg.get("imports") or []))
    data = cfg.get("data") or {}
    if data.get("features"):  # hand-crafted features (fusion recipes) are not the backbone's: not computed
        cfg = {**cfg, "data": {**data, "features": None}}
    dm = build_datamodule(cfg)
    _warn_data_differs(trained_cfg or {}, cfg)
    base_meta: dict[str, Any] = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "checkpoint": {"path": str(ckpt.resolve()), "sha256": file_sha256(ckpt)},
        "backbone": (cfg.get("model") or {}).get("backbone"),
        "data": cfg.get("data"),
        "tta": [asdict(t) for t in transforms],
        "class_names": list(getattr(dm, "class_names", [])),
    }
    base_meta = json.loads(json.dumps(base_meta))  # as it will read back from the file (tuples become lists)
    wanted = settings_key(base_meta)
    results: list[ExtractResult] = []
    todo = []
    for split in splits:
        path = output / f"{split}.npz"
        if path.exists() and not overwrite:
            try:
                done = load_features(path)
            except DataError as err:
                print(f"Re-extracting {split}: {err}", file=sys.stderr, flush=True)
            else:
                if done.settings() != wanted:
                    differs = [k for k in wanted if done.settings()[k] != wanted[k]]
                    raise DataError(
                        f"{path} holds features of other settings ({', '.join(differs)} differ); "
                        "give another --output, or --overwrite to replace it"
                    )
                print(f"Skipping {split}: {path} is complete ({len(done)} clips)", file=sys.stderr, flush=True)
                results.append(ExtractResult(path, True, len(done), len(done.features), done.dim))
                continue
        todo.append(split)
    if not todo:
        return results
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        target = torch.device(device)
    except RuntimeError:
        raise RecipeError(f"--device: expected auto, cpu, cuda or cuda:N, got {device!r}") from None
    backbone = load_backbone(cfg, state_dict, int(getattr(dm, "channels", 3)), ckpt).to(target)
    channels_last = bool((cfg.get("model") or {}).get("channels_last", False))
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    for split in todo:
        for stale in output.glob(f".{split}.*tmp-*"):  # left by a killed run
            stale.unlink(missing_ok=True)
        source = split_source(dm, split)
        meta = {**base_meta, "split": split}
        results.append(
            extract_split(
                source, backbone, transforms, output / f"{split}.npz", meta, batch_size, target, channels_last
            )
        )
    return results


def _warn_data_differs(trained: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """A model sees frames as it was trained on them: say so when size, channels or normalisation differ."""
    a, b = trained.get("data") or {}, now.get("data") or {}
    for key in ("image_size", "channels", "mean", "std"):
        if key in a and key in b and a[key] != b[key]:
            print(f"Warning: data.{key} is {b[key]!r}; the checkpoint was trained with {a[key]!r}", file=sys.stderr)
