"""Thinning as the edge and crack benchmarks thin predictions: MATLAB's
``bwmorph(E, 'thin', inf)``, the parallel algorithm of Lam, Lee and Suen 1992 (the same
result as scikit-image's ``thin``, which the tests check).

Written here because scikit-image's takes ~40 ms on a 480×320 map (each pass filters the
whole image) and a sweep thins once per threshold. This one visits only pixels on the
boundary of what is left (a pixel can be removed only when a 4-neighbour is background), so
its cost follows the pixels removed, not the image size times the passes; a sweep keeps the
image and its neighbourhood codes and adds the pixels each lower threshold brings. The loops
are compiled (:mod:`tinyseg_cli.metrics.tolerance_kernels`). (pyEdgeEval's Python thinning stops
as soon as the first subiteration deletes nothing, leaving now and then a pixel the second
would delete, so its counts can differ from these by a pair or two.)
"""

from __future__ import annotations

from functools import cache

import numpy as np

# 8-neighbours in the order of Lam, Lee and Suen: x1 = east, counter-clockwise to x8 = SE.
NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


@cache
def deletion_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each 8-neighbourhood code (bit i-1 = x_i), whether the first and the second
    subiteration of the thinning delete the centre pixel (conditions G1, G2, G3/G3')."""
    first = np.zeros(256, bool)
    second = np.zeros(256, bool)
    for code in range(256):
        x = [(code >> i) & 1 for i in range(8)]
        x = [x[7], *x, x[0]]  # x[0] = x8, x[1..8], x[9] = x1
        crossings = sum(1 for i in range(1, 5) if not x[2 * i - 1] and (x[2 * i] or x[2 * i + 1]))
        n1 = sum(1 for k in range(1, 5) if x[2 * k - 1] or x[2 * k])
        n2 = sum(1 for k in range(1, 5) if x[2 * k] or x[2 * k + 1])
        g12 = crossings == 1 and 2 <= min(n1, n2) <= 3
        first[code] = g12 and not ((x[2] or x[3] or not x[8]) and x[1])
        second[code] = g12 and not ((x[6] or x[7] or not x[4]) and x[5])
    return first, second


class Thinner:
    """A growing foreground on a padded image, with each pixel's 8-neighbourhood code
    (bit i-1 = x_i) kept up to date, so a sweep adds the pixels a lower threshold brings and
    thins a copy, instead of rebuilding the image and its codes at every threshold."""

    def __init__(self, shape: tuple[int, int]) -> None:
        from tinyseg_cli.metrics import tolerance_kernels  # numba: only for what thins

        self._kernels = tolerance_kernels
        self.height, self.width = shape[0] + 2, shape[1] + 2
        self.image = np.zeros(self.height * self.width, bool)
        self.code = np.zeros(self.height * self.width, np.uint8)
        self.steps = np.array([dy * self.width + dx for dy, dx in NEIGHBOURS], np.int64)
        self._is_candidate = np.zeros(self.height * self.width, bool)

    def flat(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Padded flat indices of pixels (y, x) of the unpadded image."""
        return (ys.astype(np.int64) + 1) * self.width + xs + 1

    def yx(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unpadded (y, x) of padded flat indices."""
        return flat // self.width - 1, flat % self.width - 1

    def unpadded(self, flat: np.ndarray) -> np.ndarray:
        """Flat indices on the unpadded image of padded flat indices."""
        return (flat // self.width - 1) * (self.width - 2) + flat % self.width - 1

    def add(self, pixels: np.ndarray) -> None:
        """Set new foreground pixels (padded flat indices, none set before)."""
        self._kernels.set_pixels(self.image, self.code, pixels, self.steps)

    def thin(self, pixels: np.ndarray) -> np.ndarray:
        """The pixels (all the foreground now, as padded flat indices) that MATLAB's
        ``bwmorph(…, 'thin', inf)`` keeps: both subiterations repeated until nothing
        changes. The set itself is left as it was."""
        image, code = self.image.copy(), self.code.copy()
        first, second = deletion_tables()
        self._kernels.thin_in_place(
            image, code, pixels, first, second, self.steps, self._is_candidate
        )
        return pixels[image[pixels]]


def thin(mask: np.ndarray) -> np.ndarray:
    """MATLAB's ``bwmorph(mask, 'thin', inf)`` (the parallel algorithm of Lam, Lee and Suen
    1992, as scikit-image's ``thin``). Returns a new boolean array."""
    thinner = Thinner(mask.shape)
    pixels = thinner.flat(*np.nonzero(mask))
    thinner.add(pixels)
    out = np.zeros(mask.shape, bool)
    out[thinner.yx(thinner.thin(pixels))] = True
    return out
