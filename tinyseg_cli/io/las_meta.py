"""What a LAS file means beyond its points: the ASPRS names of its classification codes and
the horizontal unit of its coordinates (from the CRS it carries).

No well-kept library reads the unit without pyproj (a 30 MB dependency for one number):
laspy's ``parse_crs`` needs it. The unit is the last top-level ``UNIT``/``LENGTHUNIT`` of
the WKT's projected CRS (WKT1 and WKT2), else the GeoTIFF key ProjLinearUnitsGeoKey (3076).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# ASPRS LAS 1.4 (R15) standard point classes, as identifiers; 0 and 1 mean unlabelled.
ASPRS_CLASSES = {
    0: "never_classified",
    1: "unclassified",
    2: "ground",
    3: "low_vegetation",
    4: "medium_vegetation",
    5: "high_vegetation",
    6: "building",
    7: "low_point",
    9: "water",
    10: "rail",
    11: "road_surface",
    13: "wire_guard",
    14: "wire_conductor",
    15: "transmission_tower",
    16: "wire_connector",
    17: "bridge_deck",
    18: "high_noise",
    19: "overhead_structure",
    20: "ignored_ground",
    21: "snow",
    22: "temporal_exclusion",
}
UNLABELLED_CODES = (0, 1)  # created never classified, unclassified


def asprs_name(code: int) -> str:
    """The ASPRS name of a classification code: reserved (8, 12, 23–63) and user-defined
    (64–255) codes are ``class_<code>``."""
    return ASPRS_CLASSES.get(code, f"class_{code}")


@dataclass(frozen=True)
class Unit:
    """A horizontal length unit: its name and its length in metres."""

    name: str
    metres: float

    @property
    def is_metre(self) -> bool:
        return abs(self.metres - 1.0) < 1e-9


# GeoTIFF ProjLinearUnitsGeoKey values (EPSG unit codes) tinyseg knows.
GEOTIFF_UNITS = {
    9001: Unit("metre", 1.0),
    9002: Unit("foot", 0.3048),
    9003: Unit("US survey foot", 1200 / 3937),
    9036: Unit("kilometre", 1000.0),
}
NAMED_UNITS = {
    "m": Unit("metre", 1.0),
    "metre": Unit("metre", 1.0),
    "meter": Unit("metre", 1.0),
    "ft": Unit("foot", 0.3048),
    "foot": Unit("foot", 0.3048),
    "us-ft": Unit("US survey foot", 1200 / 3937),
    "us-foot": Unit("US survey foot", 1200 / 3937),
}


def parse_unit(text: str) -> Unit:
    """``--units``: m, ft, us-ft (or metre, foot, us-foot), or metres per unit."""
    key = text.strip().lower()
    if key in NAMED_UNITS:
        return NAMED_UNITS[key]
    try:
        metres = float(key)
    except ValueError:
        raise ValueError(f"{text!r}: expected m, ft, us-ft or metres per unit") from None
    if not metres > 0 or metres == float("inf"):
        raise ValueError(f"{text!r}: metres per unit must be a finite number > 0")
    return Unit(f"{metres:g} m", metres)


def _children(text: str, start: int) -> list[tuple[str, int, int]]:
    """The top-level ``KEYWORD[…]`` nodes inside the node whose '[' is at ``start``."""
    found, depth, quoted, word_start = [], 0, False, None
    for i in range(start + 1, len(text)):
        char = text[i]
        if char == '"':
            quoted = not quoted
        if quoted:
            continue
        if char in "[(":
            if depth == 0 and word_start is not None:
                found.append((text[word_start:i].strip(), i, -1))
            depth += 1
        elif char in "])":
            if depth == 0:
                break
            depth -= 1
            if depth == 0 and found and found[-1][2] == -1:
                found[-1] = (found[-1][0], found[-1][1], i)
        elif depth == 0 and char == ",":
            word_start = i + 1
    return found


def wkt_unit(wkt: str) -> Unit | None:
    """The horizontal unit of a WKT1/WKT2 CRS; None when it is not a projected CRS or
    names no unit."""
    text = wkt.strip()
    match = re.match(r"\s*(\w+)\s*[\[(]", text)
    if match is None:
        return None
    keyword, bracket = match.group(1).upper(), match.end() - 1
    if keyword in ("COMPD_CS", "COMPOUNDCRS"):  # the horizontal part comes first
        inner = [c for c in _children(text, bracket) if c[0].upper() in PROJECTED + GEOGRAPHIC]
        if not inner:
            return None
        keyword, bracket = inner[0][0].upper(), inner[0][1]
    if keyword in GEOGRAPHIC:
        return Unit("degree", float("nan"))
    if keyword not in PROJECTED:
        return None
    units = [c for c in _children(text, bracket) if c[0].upper() in ("UNIT", "LENGTHUNIT")]
    if not units:
        return None
    _, open_at, close_at = units[-1]
    parts = [part.strip() for part in text[open_at + 1 : close_at].split(",")]
    try:
        return Unit(parts[0].strip('"'), float(parts[1]))
    except (IndexError, ValueError):
        return None


PROJECTED = ("PROJCS", "PROJCRS", "PROJECTEDCRS")
GEOGRAPHIC = ("GEOGCS", "GEOGCRS", "GEOGRAPHICCRS", "GEODCRS")


def header_unit(header: Any) -> Unit | None:
    """The horizontal unit a laspy header's CRS records (WKT first, as laspy reads it)."""
    records = [*header.vlrs, *(header.evlrs or [])]
    for record in records:
        wkt = getattr(record, "string", None)
        if isinstance(wkt, str) and wkt.strip():
            found = wkt_unit(wkt)
            if found is not None:
                return found
    for record in records:
        for key in getattr(record, "geo_keys", None) or []:
            if key.id == 3076 and key.tiff_tag_location == 0:
                return GEOTIFF_UNITS.get(int(key.value_offset))
    return None
