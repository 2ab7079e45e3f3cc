"""Input images for inference, probed from their headers and read in blocks of rows.

Inference on an image larger than ``--max-pixels`` must not hold the whole image as float32
(an 8192² RGB image is 805 MB that way): :class:`ImageRows` keeps the stored array
(memory-mapped for uncompressed TIFF and NPY, else decoded once in its own dtype) and turns
only the rows a tile row needs into floats in [0, 1], with the conversion rules of
:func:`tinyseg_cli.io.images.read_image` (grey repeated, alpha dropped, integers scaled by
their dtype's maximum).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyseg_cli.errors import TinysegError, library_reason
from tinyseg_cli.io.formats import IMAGE_SUFFIXES, JPEG_SUFFIXES
from tinyseg_cli.io.images import as_unit_float, check_finite, fit_channels
from tinyseg_cli.io.paths import not_a_file
from tinyseg_cli.io.rasters import Roi, read_raster

CHECK_ROWS = 256  # rows of a float image checked for NaN at a time


@dataclass(frozen=True)
class ImageInfo:
    """What a header says: the size of the image (or of its ROI) and its channels."""

    height: int
    width: int
    channels: int


def _layout(shape: tuple[int, ...], path: Path) -> tuple[bool, int, int, int]:
    """(planar, height, width, channels) of a stored array, as ``read_image`` sees it."""
    if len(shape) == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
        return True, shape[1], shape[2], shape[0]  # planar TIFF (C, H, W)
    if len(shape) == 2:
        return False, shape[0], shape[1], 1
    if len(shape) == 3:
        return False, shape[0], shape[1], shape[2]
    raise TinysegError(f"{path}: expected an image of 2 or 3 dimensions, found {len(shape)}")


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the stored array, from the header alone; a file cut short fails
    here too, where its size says so without decoding (SPEC §9: before any work)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise not_a_file(path)
    if suffix not in IMAGE_SUFFIXES:
        raise TinysegError(
            f"{path}: unsupported image format {suffix!r} (expected TIFF, PNG, NPY or JPEG)"
        )
    try:
        if suffix == ".npy":  # np.load checks the data's length against the header
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return tuple(array.shape), array.dtype
        if suffix in JPEG_SUFFIXES:
            from PIL import Image

            with Image.open(path) as image:
                if image.format != "JPEG":
                    raise ValueError(f"content is {image.format}, not JPEG")
                width, height = image.size
                grey = image.mode == "L"
            return ((height, width) if grey else (height, width, 3)), np.dtype(np.uint8)
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as image:
                if image.format != "PNG":
                    raise ValueError(f"content is {image.format}, not PNG")
                bands = len(image.getbands())
                width, height = image.size
                wide = image.mode.startswith("I")
            _check_png_chunks(path)
            shape = (height, width) if bands == 1 else (height, width, bands)
            return shape, np.dtype(np.int32 if wide else np.uint8)  # PNG holds integers only
        import tifffile

        with tifffile.TiffFile(path) as tiff:
            if not tiff.series:
                raise ValueError("no image in the file")
            series = tiff.series[0]
            _check_tiff_extent(series, path)
            return tuple(series.shape), series.dtype
    except TinysegError:
        raise
    except Exception as error:  # each library raises its own types for corrupt files
        reason = library_reason(error)
        raise TinysegError(f"{path}: unreadable {suffix[1:].upper()} file ({reason})") from error


def _check_png_chunks(path: Path) -> None:
    """A PNG whose chunks run past its end, or that ends before its IEND chunk, was cut
    short: a walk over the chunk headers, not a decode."""
    size = path.stat().st_size
    offset = 8  # the signature
    with open(path, "rb") as handle:
        while offset + 8 <= size:
            handle.seek(offset)
            length, kind = struct.unpack(">I4s", handle.read(8))
            offset += 12 + length  # length, type, data, CRC
            if kind == b"IEND":
                break
        else:
            offset = size + 1
    if offset > size:
        raise TinysegError(f"{path}: truncated PNG file ({size} bytes; its chunks end later)")


def _check_tiff_extent(series: Any, path: Path) -> None:
    """A TIFF whose pixel data reaches past its end was cut short."""
    size = path.stat().st_size
    for page in series.pages:
        if page is None:  # tifffile's placeholder for a page it could not read
            continue
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True) if c]
        if ends and max(ends) > size:
            raise TinysegError(
                f"{path}: truncated TIFF file ({size} bytes; its pixel data ends at byte "
                f"{max(ends)})"
            )


def image_size(path: Path) -> tuple[int, int]:
    """Height and width of an image from its header (PNG and TIFF are not decoded)."""
    _, height, width, _ = _layout(_header(path)[0], path)
    return height, width


def check_channels(have: int, channels: int, path: Path) -> None:
    """Fail unless ``read_image`` can turn ``have`` channels into the network's ``channels``."""
    if have == channels or have == 1 or (have == 4 and channels == 3):
        return
    if have in (3, 4) and channels == 1:
        return
    raise TinysegError(f"{path}: image has {have} channels, the network takes {channels}")


def check_roi(roi: Roi | None, height: int, width: int, path: Path) -> None:
    """Fail when ``roi`` reaches outside a ``height`` × ``width`` image."""
    if roi is not None and (roi[2] > height or roi[3] > width):
        raise TinysegError(
            f"{path}: ROI ({', '.join(map(str, roi))}) outside the image of {height}×{width}"
        )


def image_info(path: Path, channels: int, roi: Roi | None = None) -> ImageInfo:
    """Probe ``path`` without decoding it; fail early on its type, channels or a ROI that
    cannot work."""
    shape, dtype = _header(path)
    if dtype.kind not in "buif":
        raise TinysegError(f"{path}: unsupported image dtype {dtype} (expected integers or floats)")
    _, height, width, have = _layout(shape, path)
    check_channels(have, channels, path)
    check_roi(roi, height, width, path)
    if roi is not None:
        height, width = roi[2] - roi[0], roi[3] - roi[1]
    return ImageInfo(height, width, have)


class ImageRows:
    """An image (inside its ROI) from which any rows and columns are read as floats."""

    def __init__(self, path: Path, channels: int, roi: Roi | None = None) -> None:
        raw = read_raster(path)
        self.path, self.channels = path, channels
        self.planar, height, width, have = _layout(raw.shape, path)
        check_channels(have, channels, path)
        check_roi(roi, height, width, path)
        self.stored = raw
        self.raw = raw if raw.ndim == 3 or self.planar else raw[:, :, None]
        self.y0, self.x0 = (roi[0], roi[1]) if roi else (0, 0)
        self.height, self.width = (roi[2] - roi[0], roi[3] - roi[1]) if roi else (height, width)
        if raw.dtype.kind == "f":
            self._check_finite()

    def _check_finite(self) -> None:
        """Fail on a float image's first NaN or infinite pixel inside the ROI before any of
        it is predicted; read in blocks of rows, never the whole image as floats."""
        cols = slice(self.x0, self.x0 + self.width)
        for start in range(0, self.height, CHECK_ROWS):
            rows = slice(self.y0 + start, self.y0 + min(self.height, start + CHECK_ROWS))
            if self.planar:
                block = np.moveaxis(np.asarray(self.raw[:, rows, cols]), 0, -1)
            else:
                block = np.asarray(self.raw[rows, cols])
            check_finite(block.astype(np.float32), self.path, (rows.start, self.x0))

    def read(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Pixels at ``rows`` × ``cols`` (indices inside the ROI) as (h, w, C) float32."""
        rows, cols = rows + self.y0, cols + self.x0
        if self.planar:
            block = np.moveaxis(self.raw[:, rows][:, :, cols], 0, -1)
        else:
            block = self.raw[rows][:, cols]
        return fit_channels(as_unit_float(np.asarray(block), self.path), self.channels, self.path)

    def read_all(self) -> np.ndarray:
        """The whole image (inside the ROI) as (H, W, C) float32 in [0, 1]."""
        return self.read(np.arange(self.height), np.arange(self.width))

    def release(self, stop: int) -> None:
        """Let the OS drop the pages of a memory-mapped image's rows before ``stop``, which
        tiling reads no more, so the resident image stays about one band deep."""
        stored = self.stored
        handle = getattr(stored, "_mmap", None)
        if handle is None or self.planar or not stored.flags.c_contiguous:
            return
        if not hasattr(mmap, "MADV_DONTNEED"):  # not on this platform
            return
        start = stored.offset - stored.offset % mmap.ALLOCATIONGRANULARITY
        end = stored.offset - start + (self.y0 + stop) * stored.strides[0]
        length = min(end, len(handle)) // mmap.PAGESIZE * mmap.PAGESIZE
        if length > 0:
            handle.madvise(mmap.MADV_DONTNEED, 0, length)
