"""Kumari's sliding-window HOG (2,592 values for a 48x48 face), vectorised over a batch of images.

Kumari's features come from the widely copied loop::

    for y in range(0, 48, 6):
        for x in range(0, 48, 6):
            hog(image[y:y+24, x:x+24], orientations=8, pixels_per_cell=(8, 8), cells_per_block=(1, 1))

Windows at the right and bottom edges are truncated (24, ..., 18, 12, 6 px: 3, 3, 3, 3, 3, 2, 1, 0
cells per axis), so there are 18 x 18 = 324 cells of 8 orientations. Running scikit-image 64 times per
image is slow, so this module computes the same numbers with a handful of numpy operations per batch:

* Inside a window skimage's gradient is the image's central difference, except on the window's first
  and last row (row gradient zeroed) and first and last column (column gradient zeroed). So every
  pixel of every window has one of three non-zero gradient variants of the *image*: (g_row, g_col),
  (g_row, 0) whose angle is 90 degrees, and (0, g_col) whose angle is 0, each computed once per image.
* A cell's histogram is a sum over its rows and columns, so all cells of all windows of a batch come
  from two matrix products with fixed 0/1 membership matrices (cell x image line, split into lines
  with and without a zeroed gradient), built once per extractor from the window geometry.
* Orientation = rad2deg(arctan2(g_row, g_col)) % 180 is hard-binned with skimage's float32 bin edges,
  each cell is the mean magnitude per bin, and each cell is L2-Hys normalised as skimage does for
  1x1-cell blocks; cells are then put in the loop's order (window y, window x, cell y, cell x).

tests/features/test_features.py checks the result against ``skimage.feature.hog`` in the loop to 1e-5.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emoframe.features.base import FeatureExtractor, Stats, resize_batch
from emoframe.registry import FEATURES, RecipeError

_EPS = 1e-5  # skimage's _hog_normalize_block
_BATCH = 256  # images per vectorised step: bounds the temporaries to ~40 MB


def _axis_cells(size: int, window: int, step: int, cell: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells along one axis, in the loop's order (window, then cell in window).

    Returns the window index and cell index of each cell, and two 0/1 membership matrices (cells, size):
    ``plain[k, i]`` = pixel i is in cell k with a true gradient along this axis; ``zeroed[k, i]`` = it is
    in cell k on its window's first or last line, where skimage's gradient along this axis is zero.
    """
    starts = np.arange(0, size, step)
    lengths = np.minimum(window, size - starts)  # truncated windows at the edge
    counts = lengths // cell
    win = np.repeat(np.arange(len(starts)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    local = k[:, None] * cell + np.arange(cell)[None, :]  # line inside the window, (cells, cell)
    zero = (local == 0) | (local == lengths[win][:, None] - 1)
    pixel = starts[win][:, None] + local
    plain = np.zeros((len(win), size))
    zeroed = np.zeros((len(win), size))
    rows = np.repeat(np.arange(len(win)), cell)
    plain[rows, pixel.ravel()] = ~zero.ravel()
    zeroed[rows, pixel.ravel()] = zero.ravel()
    return win, k, np.stack([plain, zeroed])


class HogLayout:
    """Where each cell of the loop lies: membership matrices per axis and the loop's cell order."""

    def __init__(self, size: int, window: int, step: int, cell: int) -> None:
        wy, ky, self.rows = _axis_cells(size, window, step, cell)  # rows[0] plain, rows[1] zeroed
        wx, kx, self.cols = _axis_cells(size, window, step, cell)
        # (row cell, column cell) pairs are the cells of window (wy, wx); the loop orders them wy, wx, ky, kx
        pair_y, pair_x = (a.ravel() for a in np.meshgrid(np.arange(len(wy)), np.arange(len(wx)), indexing="ij"))
        self.order = np.lexsort((kx[pair_x], ky[pair_y], wx[pair_x], wy[pair_y]))
        self.cells = len(self.order)


@FEATURES.register("hog")
class HogFeatures(FeatureExtractor):
    """Kumari's sliding-window HOG: 8 unsigned orientations, 24 px windows every 6 px, 8x8 cells (2,592 values)."""

    name = "hog"
    version = 1

    def __init__(
        self,
        orientations: int = 8,
        window: int = 24,
        step: int = 6,
        cell: int = 8,
        image_size: int = 48,
    ) -> None:
        super().__init__()
        for key, value, low in (("orientations", orientations, 1), ("window", window, 1), ("step", step, 1)):
            if not isinstance(value, int) or value < low:
                raise RecipeError(f"features.hog.{key}: expected an integer >= {low}, got {value!r}")
        if not isinstance(cell, int) or not 1 <= cell <= window:
            raise RecipeError(f"features.hog.cell: expected an integer in 1..window ({window}), got {cell!r}")
        if not isinstance(image_size, int) or image_size < cell:
            raise RecipeError(f"features.hog.image_size: expected an integer >= cell ({cell}), got {image_size!r}")
        self.orientations = orientations
        self.window = window
        self.step = step
        self.cell = cell
        self.image_size = image_size
        self.layout = HogLayout(image_size, window, step, cell)
        # skimage compares the float64 orientation with float32 bin edges (its Cython uses C floats)
        per_bin = np.float32(180.0 / orientations)
        self.edges = (per_bin * np.arange(orientations + 1, dtype=np.float32)).astype(np.float64)
        # lines where skimage zeroes one gradient: the other alone fixes the angle (either sign, same bin)
        self.row_only_bin = self._bin_of(1.0, 0.0)
        self.col_only_bin = self._bin_of(0.0, 1.0)
        assert self.row_only_bin == self._bin_of(-1.0, 0.0) and self.col_only_bin == self._bin_of(0.0, -1.0)

    @property
    def dim(self) -> int:
        return self.layout.cells * self.orientations

    def settings(self) -> dict[str, Any]:
        return {
            "orientations": self.orientations,
            "window": self.window,
            "step": self.step,
            "cell": self.cell,
            "image_size": self.image_size,
        }

    def compute(self, images: np.ndarray) -> tuple[np.ndarray, Stats]:
        images = resize_batch(images, self.image_size)
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), _BATCH):
            out[start : start + _BATCH] = self._batch(images[start : start + _BATCH])
        return out, {}

    def _batch(self, images: np.ndarray) -> np.ndarray:
        n, o = len(images), self.orientations
        image = images.astype(np.float64)
        g_row = np.zeros_like(image)
        g_col = np.zeros_like(image)
        g_row[:, 1:-1, :] = image[:, 2:, :] - image[:, :-2, :]
        g_col[:, :, 1:-1] = image[:, :, 2:] - image[:, :, :-2]
        angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
        bins = np.searchsorted(self.edges, angle, side="right") - 1  # edge_b <= angle < edge_b+1; o: no bin
        # (n, o, H, W): each pixel's magnitude in its bin, with both gradients
        onehot = (bins[:, None] == np.arange(o)[None, :, None, None]) * np.hypot(g_col, g_row)[:, None]

        rows, cols = self.layout.rows, self.layout.cols  # [plain, zeroed] x (cells, size)
        # sum over each cell's pixels: rows then columns, choosing the gradient variant of each line
        hist = _cell_sums(onehot, rows[0], cols[0])
        hist[:, self.row_only_bin] += _cell_sums(np.abs(g_row), rows[0], cols[1])  # g_col zeroed: 90 degrees
        hist[:, self.col_only_bin] += _cell_sums(np.abs(g_col), rows[1], cols[0])  # g_row zeroed: 0 degrees
        hist = hist.transpose(0, 2, 3, 1).reshape(n, -1, o)[:, self.layout.order]  # loop order: window, cell
        hist /= self.cell * self.cell  # skimage: mean magnitude over the cell's pixels

        hist /= np.sqrt(np.sum(hist**2, axis=-1, keepdims=True) + _EPS**2)  # L2-Hys, one cell per block
        np.minimum(hist, 0.2, out=hist)
        hist /= np.sqrt(np.sum(hist**2, axis=-1, keepdims=True) + _EPS**2)
        return hist.reshape(n, -1)

    def _bin_of(self, g_row: float, g_col: float) -> int:
        """The bin skimage gives a pixel with these gradients."""
        angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
        return int(np.searchsorted(self.edges, angle, side="right") - 1)


def _cell_sums(maps: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(..., H, W) maps -> (..., row cells, column cells) sums over the member lines, two matrix products."""
    return rows @ maps @ cols.T
