"""Palettes: colour -> class index for RGB annotation masks (SPEC §3).

A palette file is a JSON object whose keys are colours and whose values are class
indices. A colour is ``"#rrggbb"``, ``"r,g,b"`` or a single grey level ``"255"`` (which
stands for ``r = g = b``). A palette with grey-level keys also maps single-channel masks,
such as 0/255 binary PNGs; one with colour keys only leaves single-channel masks alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.paths import not_a_file


class UnknownColour(TinysegError):
    """A mask pixel whose colour is not in the palette."""

    def __init__(self, colour: str, flat_index: int) -> None:
        self.colour = colour
        self.flat_index = flat_index
        super().__init__(f"colour {colour} is not in the palette")


def _parse_colour(text: str, source: str) -> tuple[int, bool]:
    """Packed 0xRRGGBB of a palette key, and whether it was written as a grey level."""
    raw = text.strip().lower()
    try:
        if raw.startswith("#") and len(raw) == 7:
            return int(raw[1:], 16), False
        parts = [int(part) for part in raw.split(",")]
    except ValueError:
        parts = []
    grey = len(parts) == 1
    if grey:
        parts = parts * 3
    if len(parts) != 3 or not all(0 <= part <= 255 for part in parts):
        raise TinysegError(f"{source}: {text!r} is not a colour (#rrggbb, r,g,b or a grey level)")
    return (parts[0] << 16) | (parts[1] << 8) | parts[2], grey


def colour_name(key: int) -> str:
    """``#rrggbb`` for a packed colour."""
    return f"#{key:06x}"


@dataclass(frozen=True)
class Palette:
    """Sorted packed colours (0xRRGGBB) and the class index of each."""

    colours: np.ndarray
    labels: np.ndarray
    maps_grey: bool = False  # keys given as grey levels: single-channel masks are mapped too

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Class indices of an ``H×W`` grey or ``H×W×3|4`` colour block (alpha is ignored).

        Raises :class:`UnknownColour` with the flat index of the first unknown pixel.
        """
        if pixels.ndim == 2:
            keys = pixels.astype(np.uint32) * np.uint32(0x010101)
        else:
            rgb = pixels[..., :3].astype(np.uint32)
            keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        keys = keys.reshape(-1)
        position = np.searchsorted(self.colours, keys)
        position = np.minimum(position, len(self.colours) - 1)
        unknown = self.colours[position] != keys
        if unknown.any():
            first = int(np.argmax(unknown))
            raise UnknownColour(colour_name(int(keys[first])), first)
        return self.labels[position].reshape(pixels.shape[:2])


def load_palette(path: str | Path) -> Palette:
    """Read a palette JSON file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise not_a_file(p)
    try:
        entries = json.loads(p.read_text())
    except json.JSONDecodeError as error:
        raise TinysegError(f"{p}: invalid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(entries, dict) or not entries:
        raise TinysegError(f"{p}: expected a non-empty object mapping colours to class indices")
    mapping: dict[int, int] = {}
    maps_grey = False
    for colour, label in entries.items():
        key, grey = _parse_colour(colour, str(p))
        maps_grey |= grey
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= 65535:
            raise TinysegError(f"{p}: class index for {colour!r} must be an integer 0..65535")
        if key in mapping and mapping[key] != label:
            raise TinysegError(f"{p}: colour {colour!r} is given two class indices")
        mapping[key] = label
    keys = np.array(sorted(mapping), dtype=np.uint32)
    dtype = np.uint8 if max(mapping.values()) < 256 else np.uint16
    return Palette(keys, np.array([mapping[int(k)] for k in keys], dtype=dtype), maps_grey)
