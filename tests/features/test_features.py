"""Hand-crafted features on real FER2013 faces: HOG against scikit-image, dlib landmarks, the resumable cache."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.feature import hog as skimage_hog

import emoframe.features.extract as extract_mod
from emoframe.errors import DataError
from emoframe.faces import FaceDetector
from emoframe.features import HogFeatures, LandmarkFeatures, extract_features, resize_batch
from emoframe.registry import RecipeError


def reference_hog(
    image: np.ndarray, orientations: int = 8, window: int = 24, step: int = 6, cell: int = 8
) -> np.ndarray:
    """The widely copied loop behind Kumari's 2,592 values (windows too small for a cell add nothing)."""
    out: list[float] = []
    for y in range(0, image.shape[0], step):
        for x in range(0, image.shape[1], step):
            patch = image[y : y + window, x : x + window]
            if min(patch.shape) >= cell:  # skimage < 0.16 returned nothing here; newer versions raise
                out.extend(
                    skimage_hog(patch, orientations=orientations, pixels_per_cell=(cell, cell), cells_per_block=(1, 1))
                )
    return np.asarray(out)


def test_hog_has_kumaris_2592_dimensions(fer_faces: np.ndarray) -> None:
    hog = HogFeatures()
    values = hog(fer_faces[:3])
    assert hog.dim == 2592 == len(reference_hog(fer_faces[0]))
    assert values.shape == (3, 2592) and values.dtype == np.float32


@pytest.mark.parametrize(
    "settings",
    [{}, {"orientations": 9, "cell": 6}, {"orientations": 7, "window": 20, "step": 5, "cell": 5}],
    ids=["kumari", "9-orient-6px", "odd-geometry"],
)
def test_hog_matches_skimage_in_the_reference_loop(fer_faces: np.ndarray, settings: dict[str, int]) -> None:
    ours = HogFeatures(**settings)(fer_faces)
    reference = np.stack([reference_hog(face, **settings) for face in fer_faces])
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)
    assert np.abs(ours).max() > 0.1  # real gradients, not an all-zero agreement


def test_hog_resizes_other_sizes_first(fer_faces: np.ndarray) -> None:
    big = resize_batch(fer_faces[:8], 96, cv2.INTER_CUBIC)
    one_by_one = np.stack([cv2.resize(f, (96, 96), interpolation=cv2.INTER_CUBIC) for f in fer_faces[:8]])
    np.testing.assert_array_equal(big, one_by_one)  # the batched resize is OpenCV's, image by image
    hog = HogFeatures()
    np.testing.assert_array_equal(hog(big), hog(resize_batch(big, 48)))


def test_hog_bad_input_and_settings_fail_in_one_line(fer_faces: np.ndarray) -> None:
    with pytest.raises(DataError, match=r"hog: expected uint8 grayscale images of shape \(N, H, W\), got float32"):
        HogFeatures()(fer_faces.astype(np.float32))
    with pytest.raises(DataError, match=r"got uint8 \(48, 48\)"):
        HogFeatures()(fer_faces[0])
    with pytest.raises(RecipeError, match=r"features.hog.cell: expected an integer in 1..window \(24\), got 32"):
        HogFeatures(cell=32)


def test_landmarks_on_real_faces_count_fallbacks(fer_faces: np.ndarray) -> None:
    faces = fer_faces[::4]  # 16 faces, every class
    extractor = LandmarkFeatures()
    values = extractor(faces)
    assert values.shape == (16, 136) and values.dtype == np.float32 and np.isfinite(values).all()
    detector = FaceDetector(threshold=0.0, max_side=None)
    upscaled = [cv2.resize(f, (192, 192), interpolation=cv2.INTER_CUBIC) for f in faces]
    missed = sum(not detector.detect(u) for u in upscaled)
    assert extractor.stats == {"fallbacks": missed} and 0 < missed < 16  # FER2013 has both kinds
    points = values.reshape(16, 68, 2)
    eyes_y, mouth_y = points[:, 36:48, 1].mean(axis=1), points[:, 48:68, 1].mean(axis=1)
    assert (eyes_y < mouth_y).all()  # a face's geometry, in box coordinates
    assert 0.1 < np.median(points) < 0.9 and points.min() > -0.5 and points.max() < 1.5
    assert f"no face in {missed} of 16 images" in extractor.report(extractor.stats, 16, "train")
    clone = pickle.loads(pickle.dumps(extractor))  # dlib objects are recreated in a worker process
    np.testing.assert_array_equal(clone(faces[:4]), values[:4])


def test_landmarks_bad_settings() -> None:
    with pytest.raises(RecipeError, match="features.landmarks68.interpolation: expected one of nearest"):
        LandmarkFeatures(interpolation="bicubic")  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="dlib model file not found"):
        LandmarkFeatures(predictor_path="/nonexistent/shape_predictor.dat")


# -- extraction: cache, chunks, workers, interruption -------------------------------------------------


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("features-*.npz"))


def test_extract_concatenates_and_caches(fer_faces: np.ndarray, tmp_path: Path, monkeypatch) -> None:
    faces = fer_faces[::4]
    extractors = [HogFeatures(), LandmarkFeatures()]
    first = extract_features(faces, extractors, cache_dir=tmp_path, chunk_size=6, workers=0)
    assert first.values.shape == (16, 2592 + 136) and first.dims == {"hog": 2592, "landmarks68": 136}
    np.testing.assert_array_equal(first.values[:, :2592], HogFeatures()(faces))
    np.testing.assert_array_equal(first.values[:, 2592:], LandmarkFeatures()(faces))
    assert len(_entries(tmp_path)) == 2 * 3  # two extractors x three chunks

    def fail(*args: object) -> None:
        raise AssertionError("a cached chunk was computed again")

    monkeypatch.setattr(HogFeatures, "compute", fail)
    monkeypatch.setattr(LandmarkFeatures, "compute", fail)
    again = extract_features(faces, extractors, cache_dir=tmp_path, chunk_size=6, workers=2)
    np.testing.assert_array_equal(again.values, first.values)
    assert again.stats == first.stats and extractors[1].stats == first.stats["landmarks68"]
    other = faces.copy()
    other[0, 0, 0] ^= 1  # one pixel of other content: another key, so it must compute
    with pytest.raises(AssertionError, match="computed again"):
        extract_features(other, [HogFeatures()], cache_dir=tmp_path, chunk_size=6, workers=0)
    with pytest.raises(DataError, match="each extractor name once"):
        extract_features(faces, [HogFeatures(), HogFeatures(cell=12)], cache_dir=tmp_path)


def test_extract_sums_counters_over_cached_chunks(fer_faces: np.ndarray, tmp_path: Path) -> None:
    faces = fer_faces[::4]
    direct = LandmarkFeatures()
    direct(faces)
    for _ in range(2):  # computed in two worker processes, then read back from the cache
        found = extract_features(faces, [LandmarkFeatures()], cache_dir=tmp_path, chunk_size=5, workers=2)
        assert found.stats == {"landmarks68": direct.stats}


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_extraction_resumes(fer_faces: np.ndarray, tmp_path: Path, monkeypatch, workers: int) -> None:
    expected = extract_features(fer_faces, [HogFeatures()], cache_dir=tmp_path / "clean", chunk_size=8, workers=0)
    compute = HogFeatures.compute
    calls: list[int] = []

    def fail_on_chunk_three(self: HogFeatures, images: np.ndarray) -> tuple[np.ndarray, dict]:
        if np.array_equal(images, fer_faces[24:32]):
            raise RuntimeError("killed")
        return compute(self, images)

    monkeypatch.setattr(HogFeatures, "compute", fail_on_chunk_three)  # forked workers inherit the patch
    cache = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="killed"):
        extract_features(fer_faces, [HogFeatures()], cache_dir=cache, chunk_size=8, workers=workers)
    finished = len(_entries(cache))
    assert 1 <= finished <= 7 if workers else finished == 3  # in order without workers: chunks 0-2

    def counting(self: HogFeatures, images: np.ndarray) -> tuple[np.ndarray, dict]:
        calls.append(len(images))
        return compute(self, images)

    monkeypatch.setattr(HogFeatures, "compute", counting)
    resumed = extract_features(fer_faces, [HogFeatures()], cache_dir=cache, chunk_size=8, workers=0)
    assert len(calls) == 8 - finished  # only the chunks that were missing
    np.testing.assert_array_equal(resumed.values, expected.values)


def _killed_while_writing(images: np.ndarray, cache: Path) -> None:
    """Child process: SIGKILL itself after writing chunk 3's temporary file, before renaming it."""
    renames = 0
    replace = os.replace

    def replace_then_die(src: str, dst: str) -> None:
        nonlocal renames
        renames += 1
        if renames == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)

    os.replace = replace_then_die  # type: ignore[assignment]
    extract_features(images, [HogFeatures()], cache_dir=cache, chunk_size=8, workers=0)


def test_killed_mid_write_never_reads_a_partial_entry(fer_faces: np.ndarray, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    child = multiprocessing.get_context("fork").Process(target=_killed_while_writing, args=(fer_faces, cache))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert len(_entries(cache)) == 2 and len(list(cache.glob(".*.tmp"))) == 1  # the third is only a temp file
    # a finished entry damaged on disk is detected and rebuilt, not read
    damaged = _entries(cache)[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        resumed = extract_features(fer_faces, [HogFeatures()], cache_dir=cache, chunk_size=8, workers=0)
    np.testing.assert_array_equal(resumed.values, HogFeatures()(fer_faces))
    assert len(_entries(cache)) == 8


def test_extract_bad_input(fer_faces: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train: expected uint8 grayscale images of shape \(N, H, W\), got int64"):
        extract_features(fer_faces.astype(np.int64), [HogFeatures()], cache_dir=tmp_path, desc="train")
    with pytest.raises(DataError, match="expected at least one feature extractor"):
        extract_features(fer_faces, [], cache_dir=tmp_path)
    assert extract_mod.images_fingerprint(fer_faces) != extract_mod.images_fingerprint(fer_faces[::-1])
