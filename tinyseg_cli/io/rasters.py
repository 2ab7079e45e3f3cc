"""Label and probability maps from TIFF, PNG and NPY files, decoded in blocks of rows; images
also from JPEG (lossy, so never a mask or a prediction).

A :class:`LabelMap` holds the raw array (memory-mapped where the format allows: NPY and
uncompressed TIFF) and turns any block of rows into class labels on demand, so large maps
are never converted whole (SPEC §4.7: memory bounded per row block).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tinyseg_cli.errors import TinysegError, library_reason
from tinyseg_cli.io.formats import JPEG_SUFFIXES
from tinyseg_cli.io.palette import Palette, UnknownColour
from tinyseg_cli.io.paths import not_a_file

Role = Literal["truth", "prediction"]
Roi = tuple[int, int, int, int]  # y0, x0, y1, x1


def read_raster(path: Path) -> np.ndarray:
    """The raw array of a TIFF, PNG, NPY or JPEG file; memory-mapped when possible."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise not_a_file(path)
    try:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                if not tiff.series or not tiff.pages:
                    raise ValueError("no image in the file")
                if len(tiff.series) != 1 or not tiff.series[0].dataoffset:
                    return tiff.asarray()  # compressed or scattered: decode
            return tifffile.memmap(path, mode="r")
        if suffix == ".png":
            return _decode_png(path)
        if suffix in JPEG_SUFFIXES:
            return _decode_jpeg(path)
    except TinysegError:
        raise
    except Exception as error:  # each library raises its own types for corrupt files
        reason = library_reason(error)
        raise TinysegError(f"{path}: unreadable {suffix[1:].upper()} file ({reason})") from error
    raise TinysegError(f"{path}: unsupported format {suffix!r} (expected TIFF, PNG or NPY)")


def _decode_png(path: Path) -> np.ndarray:
    """A PNG's pixels; 8-bit one-band images (label masks) without a copy.

    ``np.asarray(image)`` goes through ``Image.tobytes()``, a full copy that can cost 40 %
    of decoding a sparse mask. Pillow's Arrow export hands over the decoded buffer itself,
    but only for an image held in one memory block, hence the single-block allocator
    (Pillow's documented switch for Arrow export; it is process-wide).
    """
    from PIL import Image

    _single_block_images()
    with Image.open(path) as image:
        if image.format != "PNG":
            raise ValueError(f"content is {image.format}, not PNG")
        image.load()  # decoding errors surface here, whichever way the pixels leave
        if image.mode in ("L", "P"):
            pixels = _exported(image)
            if pixels is not None:
                return pixels
        array = np.asarray(image)
    # Mode "1" arrives as bool with True stored as byte 255: convert, never view, to get 0/1.
    return array.astype(np.uint8) if array.dtype == bool else array


def _decode_jpeg(path: Path) -> np.ndarray:
    """A JPEG's pixels (grey H×W or RGB H×W×3, 8-bit)."""
    from PIL import Image

    with Image.open(path) as image:
        if image.format != "JPEG":
            raise ValueError(f"content is {image.format}, not JPEG")
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")  # CMYK or YCCK scans
        image.load()
        return np.asarray(image)


def _exported(image: Any) -> np.ndarray | None:
    """The pixels of a one-band 8-bit image through Arrow, or None where Pillow cannot
    export it (an image spread over several blocks)."""
    import pyarrow as pa

    try:
        pixels = pa.array(image).to_numpy(zero_copy_only=True)
    except (ValueError, pa.ArrowException):
        return None
    width, height = image.size
    return pixels.reshape(height, width)


@functools.cache
def _single_block_images() -> None:
    from PIL import Image

    setter = getattr(Image.core, "set_use_block_allocator", None)
    if setter is not None:
        setter(1)


@dataclass
class LabelMap:
    """Class labels of one map, produced block by block from its raw array."""

    path: Path
    raw: np.ndarray
    kind: Literal["labels", "palette", "scaled", "probability", "channels", "foreground"]
    full_shape: tuple[int, int]
    roi: Roi | None = None
    palette: Palette | None = None
    threshold: float | None = None
    label: int = 1  # "foreground": the class of the pixels at or above the threshold
    _seen: int | None = None  # "foreground" without a threshold: the first nonzero value
    # Labels in another class map: remap[label] (a truth scored in a prediction's classes);
    # labels beyond it other than ``keep`` (the ignore label) are out of the class map.
    remap: np.ndarray | None = None
    keep: int | None = None

    def set_roi(self, roi: Roi) -> None:
        """Restrict the map to ``roi``, which must lie inside it."""
        y0, x0, y1, x1 = roi
        height, width = self.full_shape
        if y1 > height or x1 > width:
            raise TinysegError(
                f"{self.path}: ROI ({y0}, {x0}, {y1}, {x1}) exceeds the image {height}×{width}"
            )
        self.roi = roi

    @property
    def shape(self) -> tuple[int, int]:
        if self.roi is None:
            return self.full_shape
        y0, x0, y1, x1 = self.roi
        return (y1 - y0, x1 - x0)

    def _window(self, start: int, stop: int) -> tuple[slice, slice]:
        y0, x0 = (self.roi[0], self.roi[1]) if self.roi else (0, 0)
        x1 = self.roi[3] if self.roi else self.full_shape[1]
        return slice(y0 + start, y0 + stop), slice(x0, x1)

    def position(self, flat_index: int) -> str:
        """``(y=…, x=…)`` in file coordinates of a flat index into this map's window."""
        y, x = divmod(flat_index, self.shape[1])
        if self.roi is not None:
            y, x = y + self.roi[0], x + self.roi[1]
        return f"(y={y}, x={x})"

    def __getitem__(self, rows: slice) -> np.ndarray:
        """``label_map[a:b]``: the labels of rows ``a:b``, as for an array."""
        return self.rows(rows.start or 0, self.shape[0] if rows.stop is None else rows.stop)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Labels of rows ``start:stop`` (ROI coordinates) as a 2D integer array."""
        labels = self._labels(start, stop)
        if self.remap is None:
            return labels
        outside = labels >= self.remap.size
        if self.keep is not None:
            outside &= labels != self.keep
        if outside.any():
            y, x = np.argwhere(outside)[0]
            rows, cols = self._window(start, stop)
            raise TinysegError(
                f"{self.path}: pixel (y={rows.start + y}, x={cols.start + x}): label "
                f"{int(labels[y, x])} beyond its class map ({self.remap.size} classes)"
            )
        mapped = self.remap[np.minimum(labels, self.remap.size - 1)]
        if self.keep is not None:
            mapped = np.where(labels == self.keep, labels, mapped)
        return mapped

    def _labels(self, start: int, stop: int) -> np.ndarray:
        rows, cols = self._window(start, stop)
        if self.kind == "labels":
            block = self.raw[rows, cols]
            return block.reshape(block.shape[:2])
        if self.kind == "palette":
            block = self.raw[rows, cols]
            try:
                return self.palette.apply(block)  # type: ignore[union-attr]
            except UnknownColour as error:
                y, x = divmod(error.flat_index, block.shape[1])
                raise TinysegError(
                    f"{self.path}: colour {error.colour} at pixel (y={rows.start + y}, "
                    f"x={cols.start + x}) is not in the palette"
                ) from None
        if self.kind == "channels":
            block = np.asarray(self.raw[:, rows, cols])
            self._check_finite(block, rows.start, cols.start)
            if block.shape[0] == 2 and self.threshold is not None:
                return (block[1] >= self.threshold).view(np.uint8)
            return np.argmax(block, axis=0).astype(np.uint8 if block.shape[0] <= 256 else np.uint16)
        block = np.asarray(self.raw[rows, cols])
        if self.kind == "foreground":
            return self._foreground(block, rows.start, cols.start)
        if self.kind == "scaled":
            limit = np.iinfo(block.dtype).max
            return (block >= self.threshold * limit).view(np.uint8)  # type: ignore[operator]
        self._check_finite(block, rows.start, cols.start)
        return (block >= self.threshold).view(np.uint8)  # type: ignore[operator]

    def _foreground(self, block: np.ndarray, y0: int, x0: int) -> np.ndarray:
        """A one-class mask: pixels at or above the threshold (any nonzero pixel without one)
        are ``label``, the rest background. Without a threshold the mask must be binary: a
        second nonzero value means soft edges, which need one."""
        if self.threshold is None:
            nonzero = block != 0
            if nonzero.any():
                values = block[nonzero]
                self._seen = int(values[0]) if self._seen is None else self._seen
                other = values != self._seen
                if other.any():
                    y, x = np.argwhere(nonzero)[int(np.argmax(other))]
                    raise TinysegError(
                        f"{self.path}: soft mask: values {self._seen} and {int(values[other][0])} "
                        f"(at pixel (y={y0 + y}, x={x0 + x})) for one class; binarise it with "
                        "'tinyseg split … --mask-threshold 128' (pixels >= 128 become the class)"
                    )
            foreground = nonzero
        else:
            foreground = block >= self.threshold
        dtype = np.uint8 if self.label < 256 else np.uint16
        return foreground.astype(dtype) * dtype(self.label)

    def _check_finite(self, block: np.ndarray, y0: int, x0: int) -> None:
        bad = ~np.isfinite(block)
        if bad.any():
            index = np.unravel_index(int(np.argmax(bad)), block.shape)
            y, x = index[-2:]
            raise TinysegError(
                f"{self.path}: NaN or Inf probability at pixel (y={y0 + y}, x={x0 + x})"
            )


def open_label_map(
    path: Path,
    role: Role,
    *,
    palette: Palette | None = None,
    threshold: float | None = None,
    roi: Roi | None = None,
) -> LabelMap:
    """Open ``path`` and decide how its values become labels.

    Integer maps are labels (through ``palette`` when one is given). For predictions,
    floating-point maps are probabilities: ``H×W`` is thresholded (``threshold``, default
    0.5) and ``C×H×W`` is reduced by argmax (``C = 2`` with a threshold: channel 1 is
    compared). With ``threshold``, integer predictions are probabilities scaled to their
    type's full range (an 8-bit map compares ``value >= threshold × 255``). ``roi``
    restricts the map to a window, which must lie inside it.
    """
    label_map = _open_raw(path, role, palette, threshold)
    if roi is not None:
        label_map.set_roi(roi)
    return label_map


def _open_raw(path: Path, role: Role, palette: Palette | None, threshold: float | None) -> LabelMap:
    if path.suffix.lower() in JPEG_SUFFIXES:
        raise TinysegError(
            f"{path}: a {'ground truth' if role == 'truth' else role} cannot be JPEG (lossy "
            "compression changes labels along every edge); store masks as PNG, TIFF or NPY"
        )
    raw = read_raster(path)
    if raw.ndim == 3 and raw.dtype.kind in "uib":  # one-channel maps stored as 3D
        if raw.shape[-1] == 1:
            raw = raw.reshape(raw.shape[:2])
        elif raw.shape[0] == 1 and raw.shape[-1] not in (3, 4):
            raw = raw.reshape(raw.shape[1:])
    if raw.dtype == bool:
        raw = raw.view(np.uint8)
    integer = raw.dtype.kind in "ui"
    if raw.ndim == 2 and integer:
        if role == "prediction" and threshold is not None:
            return LabelMap(path, raw, "scaled", raw.shape, threshold=threshold)
        if palette is not None and palette.maps_grey:
            return LabelMap(path, raw, "palette", raw.shape, palette=palette)
        return LabelMap(path, raw, "labels", raw.shape)
    if raw.ndim == 3 and integer and raw.shape[-1] in (3, 4):
        if palette is None:
            raise TinysegError(f"{path}: an RGB mask needs a palette (--palette palette.json)")
        return LabelMap(path, raw, "palette", raw.shape[:2], palette=palette)
    if raw.dtype.kind == "f" and role == "truth":
        raise TinysegError(
            f"{path}: ground truth must hold integer class labels, found {raw.dtype}"
        )
    if raw.dtype.kind == "f" and raw.ndim == 2:
        return LabelMap(path, raw, "probability", raw.shape, threshold=_or_half(threshold))
    if raw.dtype.kind == "f" and raw.ndim == 3:
        if raw.shape[0] == 1:
            return LabelMap(
                path, raw[0], "probability", raw.shape[1:], threshold=_or_half(threshold)
            )
        return LabelMap(path, raw, "channels", raw.shape[1:], threshold=threshold)  # type: ignore[arg-type]
    raise TinysegError(
        f"{path}: cannot read a {role} map of shape {raw.shape} and type {raw.dtype} "
        "(expected H×W labels, H×W×3 RGB, or H×W / C×H×W probabilities)"
    )


def _or_half(threshold: float | None) -> float:
    return 0.5 if threshold is None else threshold


def read_scores(path: Path) -> np.ndarray:
    """A probability map as scored by ``score --thresholds``: ``H×W`` (the foreground's
    probability) or ``C×H×W`` (one plane per class, as ``infer --probs`` writes), floats in
    [0, 1] or integers scaled to their type's range (8/16-bit PNG). Checked: no JPEG, no
    NaN or Inf, floats within [0, 1]."""
    if path.suffix.lower() in JPEG_SUFFIXES:
        raise TinysegError(
            f"{path}: a probability map cannot be JPEG (lossy compression changes its values); "
            "store it as PNG, TIFF or NPY"
        )
    raw = read_raster(path)
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.dtype == bool or raw.dtype.kind not in "uif" or raw.ndim not in (2, 3):
        raise TinysegError(
            f"{path}: expected a probability map (H×W or C×H×W of floats in [0, 1], or of "
            f"8/16-bit integers), found {raw.dtype} of shape {raw.shape}"
        )
    if raw.dtype.kind == "i" and raw.size and int(raw.min()) < 0:
        raise TinysegError(f"{path}: negative values in an integer probability map")
    if raw.dtype.kind == "f":
        values = np.asarray(raw)
        bad = ~np.isfinite(values)
        if bad.any():
            at = np.unravel_index(int(np.argmax(bad)), values.shape)
            raise TinysegError(f"{path}: NaN or Inf probability at {tuple(int(i) for i in at)}")
        if values.size and (float(values.min()) < 0 or float(values.max()) > 1):
            raise TinysegError(
                f"{path}: probabilities outside [0, 1] (from {float(values.min()):g} to "
                f"{float(values.max()):g}); give probabilities, not logits"
            )
    return np.asarray(raw)
