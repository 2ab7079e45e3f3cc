"""The pure numpy steps of an overlay (SPEC §4.9): which pixels are errors, how a large image
is shrunk without losing them, and how they are coloured.

Every pixel gets one *layer*: nothing, a truth outline, TP, FP or FN. The codes rise with
priority (FN > FP > TP > outline), so shrinking a layer map is a block maximum: a block
holding one missed pixel among thousands of correct ones shows as missed, and no error pixel
is ever averaged away. The image itself is shrunk by the block mean.

Colours are from the Okabe–Ito palette, designed to stay distinct under the common colour
vision deficiencies: TP bluish green, FN vermillion, FP yellow (see ``LAYER_COLOURS``). The
three also differ along the blue–yellow axis that red–green deficient viewers keep, and
yellow differs from the other two in lightness as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

NONE, OUTLINE, TP, FP, FN = 0, 1, 2, 3, 4
TP_COLOUR = (0, 158, 115)  # Okabe–Ito bluish green: correct, the least urgent to see
FP_COLOUR = (240, 228, 66)  # Okabe–Ito yellow: false alarm
FN_COLOUR = (213, 94, 0)  # Okabe–Ito vermillion: missed, the costly error for tiny defects
OUTLINE_COLOUR = (204, 121, 167)  # Okabe–Ito reddish purple: truth outlines (--outlines)
LAYER_COLOURS = {OUTLINE: OUTLINE_COLOUR, TP: TP_COLOUR, FP: FP_COLOUR, FN: FN_COLOUR}
KIND_NAMES = {TP: "TP", FP: "FP", FN: "FN"}
# Panels: class colours of label maps (Okabe–Ito without black); a binary map is white on black.
CLASS_COLOURS = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
)
IGNORE_COLOUR = (128, 128, 128)
OUTLINE_STYLES = ("solid", "dashed", "dotted", "dash-dot")  # per foreground class, cycled


def error_layers(
    truth: np.ndarray, pred: np.ndarray, ignore_index: int | None = None
) -> np.ndarray:
    """The layer of each pixel of two H×W label maps (class 0 is background): TP where both
    hold one foreground class, FN where a true foreground pixel is not predicted as its class,
    FP where a predicted foreground pixel is not true. A pixel of true class a predicted as
    class b is FN (of a) and FP (of b); it shows as FN, the miss. Ignored pixels stay NONE."""
    scored = np.ones(truth.shape, bool) if ignore_index is None else truth != ignore_index
    wrong = (truth != pred) & scored
    layers = np.zeros(truth.shape, np.uint8)
    layers[(truth == pred) & (truth != 0) & scored] = TP
    layers[wrong & (pred != 0)] = FP
    layers[wrong & (truth != 0)] = FN
    return layers


def dash_on(style: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Whether outline style ``style`` (an index into ``OUTLINE_STYLES``, cycled) draws the
    pixels at ``ys``, ``xs`` (image coordinates, so a crop shows the same dashes)."""
    position = np.asarray(ys) + np.asarray(xs)
    kind = OUTLINE_STYLES[style % len(OUTLINE_STYLES)]
    if kind == "dashed":
        return position % 4 < 2
    if kind == "dotted":
        return position % 2 == 0
    if kind == "dash-dot":
        return (position % 6 < 3) | (position % 6 == 4)
    return np.ones(position.shape, bool)


def dilate(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel towards its 8 neighbours."""
    height, width = mask.shape
    padded = np.pad(mask, 1)
    grown = np.zeros(mask.shape, bool)
    for dy in range(3):
        for dx in range(3):
            grown |= padded[dy : dy + height, dx : dx + width]
    return grown


def outline_mask(truth: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """The pixels just outside the true objects of each of ``classes`` (the ring that
    touches them), drawn in the class's dash style: the first foreground class solid, the
    next dashed, dotted, dash-dot. Drawn outside, so the object's own pixels stay visible."""
    ys, xs = np.indices(truth.shape, sparse=True)
    outline = np.zeros(truth.shape, bool)
    for style, class_index in enumerate(classes):
        mask = truth == class_index
        if mask.any():
            outline |= dilate(mask) & ~mask & dash_on(style, ys, xs)
    return outline


def with_outline(layers: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """``layers`` with OUTLINE where ``outline`` is set and no error is drawn."""
    return np.where(outline & (layers == NONE), np.uint8(OUTLINE), layers)


def display_range(image: np.ndarray) -> tuple[float, float]:
    """The values shown as black and white: an 8-bit image as it is (0, 255), a boolean one
    (0, 1); 16-bit, other integer and float images are stretched from their minimum to their
    maximum (a 12-bit camera in a 16-bit file would otherwise look black)."""
    if image.dtype == np.uint8:
        return 0.0, 255.0
    if image.dtype == np.bool_:
        return 0.0, 1.0
    if image.size == 0:
        return 0.0, 1.0
    return float(np.min(image)), float(np.max(image))


def to_display(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H, W, 1 or 3) values → (H, W, 3) uint8, ``low`` black and ``high`` white."""
    if image.dtype == np.uint8 and (low, high) == (0.0, 255.0):
        shown = np.asarray(image)
    else:
        scale = 255.0 / (high - low) if high > low else 0.0
        values = (np.asarray(image, np.float32) - np.float32(low)) * np.float32(scale)
        shown = np.floor(np.clip(values, 0, 255) + 0.5).astype(np.uint8)
    if shown.shape[2] == 1:
        shown = np.repeat(shown, 3, axis=2)
    return np.ascontiguousarray(shown)


def pool_factor(height: int, width: int, max_size: int) -> int:
    """The smallest whole factor that brings the long side to at most ``max_size``."""
    return max(1, math.ceil(max(height, width) / max_size))


def _starts(length: int, factor: int) -> np.ndarray:
    return np.arange(0, length, factor)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) → (⌈H/f⌉, ⌈W/f⌉, C) float32 means of f×f blocks (partial ones at the edges)."""
    if factor == 1:
        return np.asarray(image, np.float32)
    height, width = image.shape[:2]
    rows, cols = _starts(height, factor), _starts(width, factor)
    sums = np.add.reduceat(image, rows, axis=0, dtype=np.float32)
    sums = np.add.reduceat(sums, cols, axis=1, dtype=np.float32)
    counts = np.minimum(factor, height - rows)[:, None] * np.minimum(factor, width - cols)[None]
    return sums / counts[:, :, None].astype(np.float32)


def block_max(values: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) → (⌈H/f⌉, ⌈W/f⌉): the maximum of each f×f block (max-pooling)."""
    if factor == 1:
        return values
    height, width = values.shape
    pooled = np.maximum.reduceat(values, _starts(height, factor), axis=0)
    return np.maximum.reduceat(pooled, _starts(width, factor), axis=1)


def blend(base: np.ndarray, layers: np.ndarray, alpha: float) -> np.ndarray:
    """``base`` (H, W, 3 uint8) with each error pixel mixed with its layer's colour:
    ⌊(1 − α)·pixel + α·colour + ½⌋ per channel; outlines are drawn opaque."""
    out = base.copy()
    for layer, colour in LAYER_COLOURS.items():
        chosen = layers == layer
        if not chosen.any():
            continue
        weight = 1.0 if layer == OUTLINE else alpha
        mixed = (1 - weight) * base[chosen] + weight * np.asarray(colour, np.float64)
        out[chosen] = np.floor(mixed + 0.5).astype(np.uint8)
    return out


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel repeated ``scale``×``scale`` times (nearest neighbour)."""
    if scale == 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def pool_labels(labels: np.ndarray, factor: int, ignore_index: int | None) -> np.ndarray:
    """Labels shrunk by ``factor``: a block shows its highest foreground class, else the
    ignore label, else background, so no labelled pixel vanishes from a panel."""
    if factor == 1:
        return labels
    top = int(labels.max()) if labels.size else 0
    dtype = np.min_scalar_type(top + 1)
    ignored = labels == ignore_index if ignore_index is not None else np.zeros(labels.shape, bool)
    codes = np.where(ignored, 1, np.where(labels > 0, labels.astype(dtype) + 1, 0)).astype(dtype)
    pooled = block_max(codes, factor).astype(np.int64)
    back = np.where(pooled > 1, pooled - 1, 0)
    if ignore_index is not None:
        back[pooled == 1] = ignore_index
    return back


def label_colours(labels: np.ndarray, n_classes: int, ignore_index: int | None) -> np.ndarray:
    """(H, W) labels → (H, W, 3) uint8: background black, ignored grey, and a binary map's
    foreground white, several foreground classes in ``CLASS_COLOURS``."""
    out = np.zeros((*labels.shape, 3), np.uint8)
    foreground = (labels > 0) & (labels != ignore_index if ignore_index is not None else True)
    if n_classes <= 2:
        out[foreground] = 255
    else:
        palette = np.asarray(CLASS_COLOURS, np.uint8)
        out[foreground] = palette[(labels[foreground].astype(np.int64) - 1) % len(palette)]
    if ignore_index is not None:
        out[labels == ignore_index] = IGNORE_COLOUR
    return out


def side_by_side(
    views: Sequence[np.ndarray], gap: int, background: tuple[int, int, int]
) -> np.ndarray:
    """RGB views in a row, ``gap`` pixels of ``background`` between them, top-aligned."""
    height = max(view.shape[0] for view in views)
    width = sum(view.shape[1] for view in views) + gap * (len(views) - 1)
    out = np.empty((height, width, 3), np.uint8)
    out[:] = background
    x = 0
    for view in views:
        out[: view.shape[0], x : x + view.shape[1]] = view
        x += view.shape[1] + gap
    return out
