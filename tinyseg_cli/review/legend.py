"""Text strips drawn under the pictures with Pillow's built-in font (no font file, no network):
the legend of an overlay (one row per class), the caption of a crop, the titles of a panel."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyseg_cli.review.render import FN, FP, KIND_NAMES, LAYER_COLOURS, OUTLINE_COLOUR, TP, dash_on

BACKGROUND = (24, 24, 24)  # dark: the saturated error colours stand out on it
TEXT = (235, 235, 235)
FONT_SIZE = 12
ROW = 18  # pixels per line of text
MARGIN = 6
SWATCH = 10


@dataclass(frozen=True)
class LegendRow:
    """One foreground class of one sample: its pixel and object counts."""

    name: str
    pixels: tuple[int, int, int]  # TP, FP, FN
    objects: tuple[int, int, int]  # true objects, missed, false detections
    style: int | None = None  # outline dash style (--outlines), else None


@functools.cache
def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (OSError, ImportError):  # Pillow built without FreeType: its bitmap font
        return ImageFont.load_default()


def _text_width(text: str) -> int:
    left, _, right, _ = _font().getbbox(text)
    return int(right - left)


def _canvas(width: int, height: int) -> tuple[Any, Any]:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (max(1, width), max(1, height)), BACKGROUND)
    return image, ImageDraw.Draw(image)


def _row_parts(row: LegendRow) -> list[tuple[int | None, str]]:
    """(swatch layer or None, text) pieces of a legend row after the class name."""
    true, missed, false = row.objects
    parts: list[tuple[int | None, str]] = [
        (kind, f"{KIND_NAMES[kind]} {count:,}")
        for kind, count in zip((TP, FP, FN), row.pixels, strict=True)
    ]
    parts.append((None, f"objects: {missed:,} of {true:,} missed, {false:,} false"))
    return parts


def _outline_sample(draw: Any, x: int, y: int, style: int) -> None:
    """A small square drawn in a class's outline dash style."""
    ys, xs = np.indices((SWATCH + 2, SWATCH + 2))
    ring = (ys == 0) | (xs == 0) | (ys == SWATCH + 1) | (xs == SWATCH + 1)
    for dy, dx in zip(*np.nonzero(ring & dash_on(style, ys, xs)), strict=True):
        draw.point((x + int(dx), y + int(dy)), fill=OUTLINE_COLOUR)


def legend_strip(title: str, rows: list[LegendRow]) -> np.ndarray:
    """A strip with ``title`` on its first line, then one line per class: the class name
    (after its outline style with --outlines), a swatch and pixel count for TP, FP and FN,
    and the objects missed and false."""
    outlines = any(row.style is not None for row in rows)
    name_width = max((_text_width(row.name) for row in rows), default=0)
    lead = MARGIN + (SWATCH + 8 if outlines else 0)
    widths = [
        lead + name_width + 12 + sum(SWATCH + 4 + _text_width(text) + 12 for _, text in parts)
        for parts in map(_row_parts, rows)
    ]
    width = max([MARGIN * 2 + _text_width(title), *widths])
    image, draw = _canvas(width, ROW * (1 + len(rows)) + MARGIN)
    draw.text((MARGIN, MARGIN // 2), title, font=_font(), fill=TEXT)
    for number, row in enumerate(rows, 1):
        top = MARGIN // 2 + ROW * number
        if row.style is not None:
            _outline_sample(draw, MARGIN, top + 1, row.style)
        draw.text((lead, top), row.name, font=_font(), fill=TEXT)
        x = lead + name_width + 12
        for layer, text in _row_parts(row):
            if layer is not None:
                box = (x, top + 2, x + SWATCH - 1, top + 1 + SWATCH)
                draw.rectangle(box, fill=LAYER_COLOURS[layer])
                x += SWATCH + 4
            draw.text((x, top), text, font=_font(), fill=TEXT)
            x += _text_width(text) + 12
    return np.asarray(image)


def caption_strip(text: str, width: int) -> np.ndarray:
    """One line of text under a crop, as wide as the crop (or the text)."""
    image, draw = _canvas(max(width, MARGIN * 2 + _text_width(text)), ROW + MARGIN // 2)
    draw.text((MARGIN, MARGIN // 2), text, font=_font(), fill=TEXT)
    return np.asarray(image)


def titles_strip(titles: list[str], widths: list[int], gap: int) -> np.ndarray:
    """Titles over side-by-side views of ``widths`` with ``gap`` between them."""
    image, draw = _canvas(sum(widths) + gap * (len(widths) - 1), ROW)
    x = 0
    for title, width in zip(titles, widths, strict=True):
        if _text_width(title) + 2 <= width:  # a title wider than its view would hide the next
            draw.text((x + 2, 2), title, font=_font(), fill=TEXT)
        x += width + gap
    return np.asarray(image)


def stack(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top`` over ``bottom``, left-aligned, the narrower one padded with the background."""
    width = max(top.shape[1], bottom.shape[1])
    out = np.empty((top.shape[0] + bottom.shape[0], width, 3), np.uint8)
    out[:] = BACKGROUND
    out[: top.shape[0], : top.shape[1]] = top
    out[top.shape[0] :, : bottom.shape[1]] = bottom
    return out
