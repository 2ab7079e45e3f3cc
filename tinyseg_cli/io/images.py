"""Input images for training and inference: TIFF, PNG or NPY, as float32 channels in [0, 1].

Images may be grey, RGB or RGBA, 8- or 16-bit; a network takes a fixed number of channels,
so grey is repeated and alpha dropped. Intensities are scaled by the dtype's maximum, so a
16-bit image and its 8-bit copy give (nearly) the same network input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.rasters import Roi, read_raster


def read_pixels(path: Path) -> np.ndarray:
    """The image at ``path`` as stored, (H, W, C): a planar TIFF (C, H, W) moved channels-last,
    a grey image given its one channel."""
    raw = read_raster(path)
    if raw.ndim == 3 and raw.shape[0] in (1, 3, 4) and raw.shape[2] not in (1, 3, 4):
        raw = np.moveaxis(raw, 0, -1)
    if raw.ndim == 2:
        raw = raw[:, :, None]
    if raw.ndim != 3:
        raise TinysegError(f"{path}: expected an image of 2 or 3 dimensions, found {raw.ndim}")
    return raw


def read_image(path: Path, channels: int = 3, roi: Roi | None = None) -> np.ndarray:
    """The image at ``path`` (inside ``roi``) as a (H, W, channels) float32 array in [0, 1]."""
    raw = read_pixels(path)
    if roi is not None:
        y0, x0, y1, x1 = roi
        if y1 > raw.shape[0] or x1 > raw.shape[1]:
            raise TinysegError(
                f"{path}: ROI ({y0}, {x0}, {y1}, {x1}) outside the image of "
                f"{raw.shape[0]}×{raw.shape[1]}"
            )
        raw = raw[y0:y1, x0:x1]
    image = as_unit_float(np.asarray(raw), path, roi[:2] if roi else (0, 0))
    return fit_channels(image, channels, path)


def as_unit_float(raw: np.ndarray, path: Path, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Pixel values scaled to [0, 1] by their dtype's maximum (floats kept, checked finite;
    ``origin`` is the file position of ``raw``'s first pixel, for the message)."""
    if raw.dtype == np.bool_:
        return raw.astype(np.float32)
    if np.issubdtype(raw.dtype, np.integer):
        return raw.astype(np.float32) / np.float32(np.iinfo(raw.dtype).max)
    if np.issubdtype(raw.dtype, np.floating):
        image = raw.astype(np.float32)
        check_finite(image, path, origin)
        return image
    raise TinysegError(f"{path}: unsupported image dtype {raw.dtype}")


def check_finite(pixels: np.ndarray, path: Path, origin: tuple[int, int] = (0, 0)) -> None:
    """Fail on the first NaN or infinite pixel, row by row, of ``pixels`` (H, W[, C]) whose
    first pixel is at ``origin`` in the file: ``IMAGE: pixel (y=3, x=7) is NaN``."""
    bad = ~np.isfinite(pixels)
    if bad.ndim == 3:
        bad = bad.any(axis=2)
    if not bad.any():
        return
    y, x = np.unravel_index(int(np.argmax(bad)), bad.shape)
    what = "NaN" if np.isnan(pixels[y, x]).any() else "infinite"
    raise TinysegError(f"{path}: pixel (y={origin[0] + y}, x={origin[1] + x}) is {what}")


def fit_channels(image: np.ndarray, channels: int, path: Path) -> np.ndarray:
    """(H, W, c) → (H, W, channels): grey repeated, alpha dropped, colour averaged to grey."""
    have = image.shape[2]
    if have == channels:
        return image
    if have == 1:
        return np.repeat(image, channels, axis=2)
    if have == 4 and channels == 3:
        return image[:, :, :3]  # alpha carries no appearance
    if have in (3, 4) and channels == 1:
        return image[:, :, :3].mean(axis=2, keepdims=True, dtype=np.float32)
    raise TinysegError(f"{path}: image has {have} channels, the network takes {channels}")


def normalise(image: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """(H, W, C) image in [0, 1] → (C, H, W) float32, (x − mean) / std per channel."""
    mean_ = np.asarray(mean, np.float32)[:, None, None]
    std_ = np.asarray(std, np.float32)[:, None, None]
    return (np.moveaxis(image, -1, 0) - mean_) / std_
