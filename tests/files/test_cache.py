"""The decoded-array cache: a second load decodes nothing, interrupted writes are never read as complete,
and any change to the source content gives a new entry."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import emoframe.data.fer2013_sources as sources
import emoframe.files.cache as cache_mod
import emoframe.files.decode as decode_mod
from emoframe.data import ArrayCache, default_cache_dir, load_fer2013


@pytest.fixture()
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts JPEG decodes (one list entry per decoded file)."""
    calls: list[int] = []
    real = decode_mod.decode_gray

    def counting(data: bytes) -> np.ndarray | None:
        calls.append(1)
        return real(data)

    monkeypatch.setattr(decode_mod, "decode_gray", counting)
    return calls


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise AssertionError("decoded although the arrays are cached")

    monkeypatch.setattr(decode_mod, "decode_gray", boom)
    monkeypatch.setattr(sources, "read_csv", boom)


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_second_load_decodes_nothing(kind: str, write_fer, tmp_path: Path, monkeypatch, decode_calls) -> None:
    root = write_fer(kind)
    first = load_fer2013(root, tmp_path / "cache", progress=False)
    assert len(decode_calls) == len(first) == 42
    forbid_decoding(monkeypatch)
    second = load_fer2013(root, tmp_path / "cache", progress=False)
    for field in ("images", "labels", "usage", "names"):
        np.testing.assert_array_equal(getattr(second, field), getattr(first, field))
    assert second.images.dtype == np.uint8 and second.labels.dtype == np.int64


def test_csv_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n3," + " ".join(["1"] * 2304) + ",Training\n")
    first = load_fer2013(path, tmp_path / "cache", progress=False)
    forbid_decoding(monkeypatch)
    np.testing.assert_array_equal(load_fer2013(path, tmp_path / "cache", progress=False).images, first.images)


def test_default_cache_dir_is_used_and_honours_the_env_var(write_fer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EMOFRAME_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    load_fer2013(write_fer("zip"), progress=False)
    assert len(list((tmp_path / "env-cache").glob("fer2013-zip-*.npz"))) == 1
    monkeypatch.delenv("EMOFRAME_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "emoframe"


def test_interrupted_write_leaves_no_entry(write_fer, tmp_path: Path, monkeypatch, decode_calls) -> None:
    root, cache = write_fer("zip"), tmp_path / "cache"

    def killed(*_: object) -> None:
        raise KeyboardInterrupt  # the run dies between writing the temp file and renaming it

    with monkeypatch.context() as m:
        m.setattr(cache_mod.os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            load_fer2013(root, cache, progress=False)
    assert list(cache.iterdir()) == []  # no entry and no partial temp file
    load_fer2013(root, cache, progress=False)
    assert len(decode_calls) == 2 * 42  # decoded again: nothing was taken as complete
    assert len(list(cache.glob("*.npz"))) == 1


def test_temp_file_of_a_killed_run_is_not_read(write_fer, tmp_path: Path, decode_calls) -> None:
    root, cache = write_fer("zip"), tmp_path / "cache"
    load_fer2013(root, cache, progress=False)
    entry = next(cache.glob("*.npz"))
    # A hard kill (SIGKILL) mid-write leaves only a temp file beside where the entry would be.
    data = entry.read_bytes()
    entry.unlink()
    (cache / f".{entry.name}.abc123.tmp").write_bytes(data[: len(data) // 2])
    again = load_fer2013(root, cache, progress=False)
    assert len(decode_calls) == 2 * 42 and len(again) == 42
    assert entry.is_file()


def test_corrupt_entry_is_rebuilt(write_fer, tmp_path: Path, decode_calls) -> None:
    root, cache = write_fer("zip"), tmp_path / "cache"
    load_fer2013(root, cache, progress=False)
    entry = next(cache.glob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        again = load_fer2013(root, cache, progress=False)
    assert len(again) == 42 and len(decode_calls) == 2 * 42


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    stale, fresh = tmp_path / ".x.npz.1.tmp", tmp_path / ".y.npz.2.tmp"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    cache.put("t", ["k"], {"a": np.arange(3)})
    assert not stale.exists() and fresh.exists()  # a live writer may still own the fresh one
    np.testing.assert_array_equal(cache.get("t", ["k"])["a"], np.arange(3))


def test_an_entry_gets_the_mode_open_would_give_it(tmp_path: Path) -> None:
    """mkstemp makes 0600 files: a cache a group shares would be unreadable to all but its writer."""
    old = os.umask(0o002)
    try:
        path = ArrayCache(tmp_path).put("t", ["k"], {"a": np.arange(3)})
        plain = tmp_path / "plain"
        plain.write_bytes(b"x")
    finally:
        os.umask(old)
    assert path is not None and (os.stat(path).st_mode & 0o777) == (os.stat(plain).st_mode & 0o777) == 0o664


def test_unwritable_cache_dir_only_warns(write_fer, tmp_path: Path, capfd) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    arrays = load_fer2013(write_fer("zip"), blocker / "cache", progress=False)
    assert len(arrays) == 42
    warned = [line for line in capfd.readouterr().err.splitlines() if "continuing without cache" in line]
    assert len(warned) == 1 and str(blocker / "cache") in warned[0]


def test_changed_folder_content_is_decoded_again(write_fer, tmp_path: Path, decode_calls) -> None:
    root, cache = write_fer("folder"), tmp_path / "cache"
    load_fer2013(root, cache, progress=False)
    victim = next((root / "train" / "happy").iterdir())
    victim.write_bytes(victim.read_bytes())  # same bytes, new mtime
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))
    load_fer2013(root, cache, progress=False)
    assert len(decode_calls) == 2 * 42
    assert len(list(cache.glob("*.npz"))) == 2


def test_changed_zip_content_is_decoded_again(write_fer, fer_sample, tmp_path: Path, decode_calls) -> None:
    cache = tmp_path / "cache"
    load_fer2013(write_fer("zip"), cache, progress=False)
    fewer = dict(list(fer_sample.items())[1:])
    again = load_fer2013(write_fer("zip", fewer), cache, progress=False)  # same path, other content
    assert len(again) == 41 and len(decode_calls) == 42 + 41
