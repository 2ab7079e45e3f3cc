"""The worst objects of a sample and their enlarged crops (``tinyseg overlay --crops K``).

Worst first: missed true objects before false detections (for tiny defects a miss is the
costly error, and recall-weighted scores such as F2 say so), each group by area, largest
first (a large miss is a systematic failure rather than a borderline pixel), then by class
and position so the order is deterministic. Objects come from the matching of
``score --objects`` (:func:`tinyseg_cli.metrics.objects.match_objects`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tinyseg_cli.metrics.objects import Components, Matching
from tinyseg_cli.review.render import (
    FN_COLOUR,
    FP_COLOUR,
    blend,
    block_max,
    block_mean,
    enlarge,
    to_display,
)

CONTEXT = 8  # pixels of context, at least, around an object
CROP_SIDE = 256  # a crop's long side is brought to about this many pixels
FRAME_GAP = 2  # pixels between an object and the frame drawn around it

Box = tuple[int, int, int, int]  # y0, x0, y1, x1 (ends exclusive)


@dataclass(frozen=True)
class WorstObject:
    """A missed true object or a false detection."""

    kind: Literal["missed", "false"]
    class_index: int
    area: int
    bbox: Box


def _unmatched(
    objects: Components, match: np.ndarray, kind: Literal["missed", "false"]
) -> list[WorstObject]:
    ids = np.flatnonzero(match[1:] == 0) + 1
    found = [
        WorstObject(
            kind,
            int(objects.class_index[i]),
            int(objects.area[i]),
            tuple(int(value) for value in objects.bbox[i]),  # type: ignore[arg-type]
        )
        for i in ids
    ]
    return sorted(found, key=lambda item: (-item.area, item.class_index, item.bbox))


def worst_objects(matching: Matching, limit: int) -> list[WorstObject]:
    """Up to ``limit`` objects, worst first: missed (largest first), then false."""
    missed = _unmatched(matching.truth, matching.truth_match, "missed")
    false = _unmatched(matching.pred, matching.pred_match, "false")
    return (missed + false)[:limit]


def crop_window(bbox: Box, shape: tuple[int, int], context: int = CONTEXT) -> Box:
    """``bbox`` with context on every side (at least ``context`` pixels, or the object's own
    size), cut at the image edges."""
    y0, x0, y1, x1 = bbox
    pad = max(context, y1 - y0, x1 - x0)
    return max(0, y0 - pad), max(0, x0 - pad), min(shape[0], y1 + pad), min(shape[1], x1 + pad)


def crop_scale(window: Box, side: int = CROP_SIDE) -> tuple[int, int]:
    """(enlarge, pool): the nearest-neighbour factor that brings the window's long side to
    about ``side`` pixels, or, for a window larger than that, the max-pooling factor."""
    longest = max(window[2] - window[0], window[3] - window[1])
    if longest > side:
        return 1, math.ceil(longest / side)
    return max(1, side // longest), 1


def frame_box(bbox: Box, window: Box, scale: int, pool: int) -> Box:
    """The object's box in the pixels of its crop (ends exclusive)."""
    y0, x0, y1, x1 = bbox
    top, left = window[0], window[1]
    return (
        (y0 - top) // pool * scale,
        (x0 - left) // pool * scale,
        math.ceil((y1 - top) / pool) * scale,
        math.ceil((x1 - left) / pool) * scale,
    )


def draw_frame(image: np.ndarray, box: Box, colour: tuple[int, int, int]) -> None:
    """A one-pixel rectangle ``FRAME_GAP`` pixels outside ``box``, where it fits."""
    height, width = image.shape[:2]
    y0, x0 = box[0] - FRAME_GAP - 1, box[1] - FRAME_GAP - 1
    y1, x1 = box[2] + FRAME_GAP, box[3] + FRAME_GAP
    rows = slice(max(0, y0), min(height, y1 + 1))
    cols = slice(max(0, x0), min(width, x1 + 1))
    for y in (y0, y1):
        if 0 <= y < height:
            image[y, cols] = colour
    for x in (x0, x1):
        if 0 <= x < width:
            image[rows, x] = colour


def render_crop(
    image: np.ndarray,
    display: tuple[float, float],
    layers: np.ndarray,
    target: WorstObject,
    alpha: float,
) -> np.ndarray:
    """The overlay around ``target``, enlarged (or pooled) to about ``CROP_SIDE`` pixels,
    with a frame around the object in its error colour. ``image`` is (H, W, C) as stored,
    ``display`` its black and white values, ``layers`` the sample's layer map."""
    window = crop_window(target.bbox, layers.shape)
    y0, x0, y1, x1 = window
    scale, pool = crop_scale(window)
    pixels = image[y0:y1, x0:x1]
    base = to_display(block_mean(pixels, pool) if pool > 1 else pixels, *display)
    picture = enlarge(blend(base, block_max(layers[y0:y1, x0:x1], pool), alpha), scale)
    colour = FN_COLOUR if target.kind == "missed" else FP_COLOUR
    draw_frame(picture, frame_box(target.bbox, window, scale, pool), colour)
    return picture
