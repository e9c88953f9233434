"""Read FER2013 from any of its published forms into one set of arrays.

Users have the Kaggle archive (``train/<class>/Training_*.jpg``,
``test/<class>/{PublicTest,PrivateTest}_*.jpg``), its extracted folder, or the original
``fer2013.csv`` (``emotion,pixels,Usage``). All three give the same arrays: rows ordered by usage
(Training, PublicTest, PrivateTest), then by file name (image forms) or CSV row (CSV form), labels in
``emoframe.labels.EMOTIONS`` order. Decoded arrays are cached on disk.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

import numpy as np
from tqdm.auto import tqdm

from emoframe.errors import DataError
from emoframe.files.cache import ArrayCache, file_fingerprint, folder_fingerprint, walk_files
from emoframe.files.decode import DECODER, OnBadImage, decode_files, is_image_name, report_skipped
from emoframe.labels import EMOTIONS

USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
"""Index = usage code in ``Fer2013Arrays.usage``."""
SIZE = 48
READER_VERSION = 1  # bump when the arrays a source gives change, to invalidate cache entries
CSV_COLUMNS = ("emotion", "pixels", "Usage")
LAYOUT = "train/<class>/Training_*.jpg and test/<class>/{PublicTest,PrivateTest}_*.jpg"
EXPECTED = (
    "expected fer2013.zip (Kaggle layout train/<class>/*.jpg, test/<class>/*.jpg), the extracted folder, or fer2013.csv"
)
_SPLIT_DIR = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}
SourceKind = Literal["zip", "folder", "csv"]


@dataclass(frozen=True)
class Fer2013Arrays:
    """FER2013 in memory: ``images`` uint8 (N,48,48), ``labels`` int64 (N,) in EMOTIONS order,
    ``usage`` uint8 (N,) indexing ``USAGES``, ``names`` (N,) file paths inside the layout or ``row_<i>``
    (0-based CSV data row), ``skipped`` the names of bad images left out."""

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    names: np.ndarray
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, *usages: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images, labels, names) of the rows with one of the given usages, in row order."""
        mask = np.isin(self.usage, [USAGES.index(u) for u in usages])
        return self.images[mask], self.labels[mask], self.names[mask]

    def counts(self) -> np.ndarray:
        """Images per (usage, class): shape (3, 7)."""
        flat = self.usage.astype(np.int64) * len(EMOTIONS) + self.labels
        return np.bincount(flat, minlength=len(USAGES) * len(EMOTIONS)).reshape(len(USAGES), len(EMOTIONS))

    def to_dict(self) -> dict[str, np.ndarray]:
        return {
            "images": self.images,
            "labels": self.labels,
            "usage": self.usage,
            "names": self.names,
            "skipped": np.asarray(self.skipped, dtype=str),
        }

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> Fer2013Arrays:
        return cls(d["images"], d["labels"], d["usage"], d["names"], [str(s) for s in d["skipped"]])


@dataclass(frozen=True)
class Source:
    """Where FER2013 is: ``kind`` and the file or folder ``path`` (the folder holding train/ and test/)."""

    kind: SourceKind
    path: Path


def find_source(root: str | Path) -> Source:
    """Identify the form of FER2013 at ``root`` (cheaply: a zip is only opened when read), or fail in one
    line saying what was expected."""
    p = Path(root).expanduser()
    if not p.exists():
        raise DataError(f"FER2013 not found at {p}: {EXPECTED}")
    if p.is_file():
        if p.suffix.lower() in (".zip", ".csv"):
            return Source("zip" if p.suffix.lower() == ".zip" else "csv", p)
        raise DataError(f"FER2013 at {p} is neither a .zip nor a .csv: {EXPECTED}")
    if (p / "train").is_dir() or (p / "test").is_dir():
        return Source("folder", p)
    for name in ("fer2013.csv", "fer2013.zip"):
        if (p / name).is_file():
            return Source("csv" if name.endswith(".csv") else "zip", p / name)
    entries = sorted(e.name for e in p.iterdir() if not e.name.startswith("."))
    subdirs = [p / e for e in entries if (p / e).is_dir()]
    if len(subdirs) == 1 and ((subdirs[0] / "train").is_dir() or (subdirs[0] / "test").is_dir()):
        return Source("folder", subdirs[0])
    found = ", ".join(entries[:8]) + (", ..." if len(entries) > 8 else "") or "nothing"
    raise DataError(f"{p} is not a FER2013 folder: expected {LAYOUT}, fer2013.csv or fer2013.zip; found {found}")


def _zip_layout(path: Path, members: list[str]) -> tuple[str, str]:
    """("images", prefix) for the Kaggle layout, possibly inside one top-level folder, or ("csv", member)."""
    if any(n.startswith(("train/", "test/")) for n in members):
        return "images", ""
    tops = {n.split("/", 1)[0] for n in members}
    if len(tops) == 1 and all("/" in n for n in members):
        top = tops.pop() + "/"
        if any(n.startswith((top + "train/", top + "test/")) for n in members):
            return "images", top
    csvs = [n for n in members if n.rsplit("/", 1)[-1] == "fer2013.csv"]
    if len(csvs) == 1:
        return "csv", csvs[0]
    found = sorted({n.split("/", 1)[0] + ("/" if "/" in n else "") for n in members})
    shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") or "nothing"
    raise DataError(
        f"{path} is not a FER2013 archive: expected {LAYOUT} (optionally inside one top-level folder) "
        f"or fer2013.csv; found top-level entries {shown}"
    )


def _visible(name: str) -> bool:
    """Skip macOS resource forks and hidden files that archivers add."""
    return not name.startswith("__MACOSX/") and not any(part.startswith(".") for part in name.split("/"))


def load_fer2013(
    root: str | Path,
    cache_dir: str | Path | None = None,
    on_bad_image: OnBadImage = "error",
    *,
    use_cache: bool = True,
    progress: bool = True,
) -> Fer2013Arrays:
    """Load FER2013 from a zip, extracted folder or CSV at ``root``; decoded once, then read from cache.

    ``cache_dir`` defaults to ``$EMOFRAME_CACHE`` or ``~/.cache/emoframe``. Bad images (unreadable, or
    not 48x48) are fatal with ``on_bad_image="error"`` and left out with ``"skip"``.
    """
    if on_bad_image not in ("error", "skip"):
        raise DataError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
    src = find_source(root)
    if src.kind == "folder":
        fingerprint = folder_fingerprint(src.path)
    else:
        fingerprint = file_fingerprint(src.path)
    parts = (READER_VERSION, src.kind, fingerprint, DECODER, SIZE)
    cache = ArrayCache(cache_dir) if use_cache else None
    hit = cache.get(f"fer2013-{src.kind}", parts) if cache else None
    if hit is not None:
        arrays = Fer2013Arrays.from_dict(hit)
        if arrays.skipped and on_bad_image == "error":
            raise DataError(
                f"Bad image {arrays.skipped[0]} in {src.path} ({len(arrays.skipped)} bad in all, "
                "found by an earlier run with on_bad_image: skip); fix it or set on_bad_image: skip"
            )
        if arrays.skipped:
            report_skipped(arrays.skipped, len(arrays) + len(arrays.skipped), f"{src.path} (cached)")
        return arrays
    arrays = _read(src, on_bad_image, progress)
    if cache:
        cache.put(f"fer2013-{src.kind}", parts, arrays.to_dict())
    return arrays


def _read(src: Source, on_bad_image: OnBadImage, progress: bool) -> Fer2013Arrays:
    if src.kind == "csv":
        with src.path.open(newline="") as f:
            return read_csv(f, str(src.path), on_bad_image, progress)
    if src.kind == "zip":
        try:
            z = zipfile.ZipFile(src.path)
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(f"{src.path} is not a readable zip ({err}): {EXPECTED}") from None
        with z:
            members = [n for n in z.namelist() if _visible(n) and not n.endswith("/")]
            form, inner = _zip_layout(src.path, members)
            if form == "csv":
                with z.open(inner) as raw:
                    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                    return read_csv(text, f"{src.path}:{inner}", on_bad_image, progress)
            rels = [n[len(inner) :] for n in members if n.startswith(inner)]
            return _read_layout(rels, lambda rel: z.read(inner + rel), str(src.path), on_bad_image, progress)
    rels = sorted(walk_files(src.path))
    return _read_layout(rels, lambda rel: (src.path / rel).read_bytes(), str(src.path), on_bad_image, progress)


def _read_layout(
    rels: Iterable[str], read: Callable[[str], bytes], where: str, on_bad_image: OnBadImage, progress: bool
) -> Fer2013Arrays:
    """Parse ``<split>/<class>/<Usage>_<id>.jpg`` paths, order them, decode the images."""
    rows: list[tuple[int, str, str, int]] = []
    classes = ", ".join(EMOTIONS)
    for rel in rels:
        if not is_image_name(rel):
            continue  # README, the zip itself next to the extracted folder, ...
        parts = rel.split("/")
        usage = parts[2].split("_", 1)[0] if len(parts) == 3 else ""
        if usage not in _SPLIT_DIR or _SPLIT_DIR[usage] != parts[0] or parts[1].lower() not in EMOTIONS:
            raise DataError(f"Unexpected image {rel} in {where}: expected {LAYOUT} with <class> one of {classes}")
        rows.append((USAGES.index(usage), parts[2], rel, EMOTIONS.index(parts[1].lower())))
    if not rows:
        raise DataError(f"No FER2013 images in {where}: expected {LAYOUT}")
    rows.sort()
    names = [r[2] for r in rows]
    images, kept, skipped = decode_files(
        names,
        read,
        size=SIZE,
        resize=False,
        on_bad_image=on_bad_image,
        where=where,
        desc="Decoding FER2013",
        progress=progress,
    )
    usage = np.array([r[0] for r in rows], dtype=np.uint8)[kept]
    labels = np.array([r[3] for r in rows], dtype=np.int64)[kept]
    return Fer2013Arrays(images, labels, usage, np.array(names, dtype=str)[kept], skipped)


def read_csv(f: TextIO, where: str, on_bad_image: OnBadImage = "error", progress: bool = True) -> Fer2013Arrays:
    """Parse ``emotion,pixels,Usage`` rows (column order free; extra columns ignored)."""
    reader = csv.reader(f)
    header = [h.strip() for h in next(reader, [])]
    if any(c not in header for c in CSV_COLUMNS):
        raise DataError(
            f"{where} has columns {','.join(header) or '(none)'}: expected {','.join(CSV_COLUMNS)} (fer2013.csv)"
        )
    ie, ip, iu = (header.index(c) for c in CSV_COLUMNS)
    images: list[np.ndarray] = []
    labels: list[int] = []
    usage: list[int] = []
    names: list[str] = []
    skipped: list[str] = []
    first_reason = ""
    n = SIZE * SIZE
    emotion_ids = {str(k) for k in range(len(EMOTIONS))}
    for i, row in enumerate(tqdm(reader, desc="Parsing FER2013 CSV", unit="row", disable=not progress, leave=False)):
        line = reader.line_num
        if len(row) != len(header):
            raise DataError(f"{where} line {line}: {len(row)} fields, expected {len(header)} ({','.join(header)})")
        emotion, use = row[ie].strip(), row[iu].strip()
        if emotion not in emotion_ids:
            raise DataError(f"{where} line {line}: emotion {emotion!r}, expected an id 0-{len(EMOTIONS) - 1}")
        if use not in USAGES:
            raise DataError(f"{where} line {line}: Usage {use!r}, expected one of {', '.join(USAGES)}")
        try:
            pixels = np.fromstring(row[ip], dtype=np.int32, sep=" ")
            reason = "" if pixels.size == n else f"pixels has {pixels.size} values, expected {n} (48x48)"
        except ValueError:
            reason = "pixels is not space-separated integers"
        if not reason and (pixels.min() < 0 or pixels.max() > 255):
            reason = "pixels outside 0-255"
        if reason:
            if on_bad_image == "error":
                raise DataError(f"{where} line {line}: {reason}; fix the row or set on_bad_image: skip")
            skipped.append(f"row_{i}")
            first_reason = first_reason or f"line {line}: {reason}"
            continue
        images.append(pixels.astype(np.uint8).reshape(SIZE, SIZE))
        labels.append(int(emotion))
        usage.append(USAGES.index(use))
        names.append(f"row_{i}")
    if skipped:
        report_skipped(skipped, len(names) + len(skipped), where, first_reason)
    order = np.argsort(np.array(usage, dtype=np.uint8), kind="stable")
    return Fer2013Arrays(
        np.stack(images)[order] if images else np.empty((0, SIZE, SIZE), np.uint8),
        np.array(labels, dtype=np.int64)[order],
        np.array(usage, dtype=np.uint8)[order],
        np.array(names, dtype=str)[order],
        skipped,
    )
