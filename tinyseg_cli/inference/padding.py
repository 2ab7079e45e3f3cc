"""Padding to the network stride, shared by the full-region pass and the tiles (SPEC §4.6).

Full-region inference is the whole image (or ROI) in one forward pass, padded to a multiple
of the network stride and cropped back, so there are no patch seams; ``tiled.py`` runs it
as a grid of one tile, and pads and tiles larger images the same way.

Padding mirrors the image past its bottom and right edges (``reflect``: ``… c b a | b c …``,
the edge pixel not repeated). A mirror continues the texture, so the convolutions near the
border see image-like content, as they did on training patches; replicate padding smears
the edge pixels into streaks and zero padding looks like a black frame, both unlike
anything the network was trained on. Where the mirror runs out (an image thinner than the
padding) the last pixel is repeated instead.
"""

from __future__ import annotations

import numpy as np


def padded_size(size: int, stride: int, minimum: int = 1) -> int:
    """``size`` rounded up to a multiple of ``stride``, and to at least ``minimum`` (the
    smallest side some networks accept, e.g. 128 for PAN)."""
    return -(-max(size, minimum) // stride) * stride


def reflect_index(size: int, padded: int) -> np.ndarray:
    """Indices ``0 … padded−1`` into an axis of ``size``: mirrored past the end, then clamped."""
    index = np.arange(padded)
    past = index >= size
    index[past] = 2 * (size - 1) - index[past]
    return np.clip(index, 0, size - 1)
