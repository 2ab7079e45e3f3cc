"""Models trained on resized images (``train --resize H W``): the image is resized to the
training size, predicted there, and the prediction resized back to the image's own size,
nearest-neighbour for labels and bilinear for probabilities (SPEC §4.6).

The way back is computed a band of rows at a time, so the full-size probabilities of a
large image are never held: labels pick their nearest low-resolution pixel, probabilities
are ``R_rows · P · R_colsᵀ`` with the two 1D bilinear interpolation matrices.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_image(image_chw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) resized to ``size`` as training resizes its images (``data/datasets.py``):
    bilinear, pixel centres aligned (``align_corners=False``), no antialiasing."""
    if tuple(image_chw.shape[-2:]) == tuple(size):
        return image_chw
    return F.interpolate(image_chw[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


def nearest_index(out_size: int, in_size: int) -> np.ndarray:
    """For each output pixel, the input pixel whose centre is nearest (``nearest-exact``)."""
    centres = (np.arange(out_size) + 0.5) * (in_size / out_size)
    return np.minimum(centres.astype(np.int64), in_size - 1)


def bilinear_matrix(out_size: int, in_size: int, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of the (out, in) matrix of 1D linear interpolation, as
    ``F.interpolate(mode="bilinear", align_corners=False)`` computes it."""
    source = (np.arange(start, stop) + 0.5) * (in_size / out_size) - 0.5
    source = np.clip(source, 0, in_size - 1)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    frac = (source - lower).astype(np.float32)
    matrix = torch.zeros(stop - start, in_size)
    rows = torch.arange(stop - start)
    matrix[rows, torch.from_numpy(lower)] += torch.from_numpy(1 - frac)
    matrix[rows, torch.from_numpy(upper)] += torch.from_numpy(frac)
    return matrix


class ResizedBack:
    """Low-resolution probabilities (K, h, w), handed out at full size a band at a time."""

    def __init__(self, probs: torch.Tensor, height: int, width: int) -> None:
        self.probs, self.height, self.width = probs, height, width
        self.row_index = torch.from_numpy(nearest_index(height, probs.shape[1]))
        self.col_index = torch.from_numpy(nearest_index(width, probs.shape[2]))
        self._cols: torch.Tensor | None = None

    def nearest(self, y0: int, y1: int) -> torch.Tensor:
        """Probabilities of rows ``y0:y1`` by nearest neighbour (K, y1 − y0, W), for labels."""
        return self.probs.index_select(1, self.row_index[y0:y1]).index_select(2, self.col_index)

    def bilinear(self, y0: int, y1: int) -> torch.Tensor:
        """Probabilities of rows ``y0:y1`` by bilinear interpolation (K, y1 − y0, W)."""
        if self._cols is None:
            self._cols = bilinear_matrix(self.width, self.probs.shape[2], 0, self.width).T
        rows = bilinear_matrix(self.height, self.probs.shape[1], y0, y1)
        return torch.matmul(torch.matmul(rows, self.probs), self._cols)
