"""Truth masks as a manifest records them, and the one reader that turns them into labels.

Most masks hold class indices. A defect set laid out one folder per class holds instead one
class per mask: its nonzero pixels (or, for soft 0–255 masks, those at or above a threshold)
are the class of the row's folder, and a row of a background folder may have no mask at all.
``split --class-from-folder`` records that in the manifest, never by rewriting masks:

- column ``mask_class``: the class index of the row's foreground pixels (0 with a null
  ``mask``: no mask, every pixel background, the size of the row's image);
- metadata ``tinyseg.masks``: ``{"threshold": T}`` when the masks were binarised at T.

Every command reads truth masks through :func:`open_mask` with the row's :class:`MaskRule`,
so split, resample, classweights, train, score, overlay and tune-oii see the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.image_rows import image_size
from tinyseg_cli.io.palette import Palette
from tinyseg_cli.io.rasters import LabelMap, Roi, open_label_map
from tinyseg_cli.io.tables import integer_column, table_metadata

MASK_CLASS_COLUMN = "mask_class"
MASKS_METADATA = "masks"  # tinyseg.masks: {"threshold": T}


@dataclass(frozen=True)
class MaskRule:
    """How one row's mask becomes labels when it does not hold class indices."""

    label: int  # the class of the mask's foreground pixels
    threshold: int | None = None  # soft masks: a pixel >= threshold is foreground
    absent: bool = False  # no mask: every pixel is background (the path names the image)


def mask_threshold(metadata: dict[str, Any], source: str) -> int | None:
    """The binarisation threshold a table records (``tinyseg.masks``), if any."""
    record = metadata.get(MASKS_METADATA)
    if record is None:
        return None
    value = record.get("threshold") if isinstance(record, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise TinysegError(
            f'{source}: metadata tinyseg.masks {record!r}: expected {{"threshold": T}} with '
            "T an integer 1..65535"
        )
    return value


def mask_rules(table: pa.Table, source: str) -> list[MaskRule | None]:
    """Each row's rule: None where masks hold class indices (no ``mask_class`` column)."""
    if MASK_CLASS_COLUMN not in table.column_names:
        return [None] * table.num_rows
    threshold = mask_threshold(table_metadata(table), source)
    labels, given = integer_column(table, MASK_CLASS_COLUMN, source, minimum=0, nullable=True)
    masks = table["mask"].to_pylist() if "mask" in table.column_names else [None] * len(labels)
    rules: list[MaskRule | None] = []
    for row, (label, present, mask) in enumerate(zip(labels, given, masks, strict=True)):
        if not present:
            rules.append(None)  # this row's mask holds class indices
        elif mask is None and int(label) != 0:
            raise TinysegError(
                f"{source}: row {row}: no mask but {MASK_CLASS_COLUMN} {int(label)}: a row "
                "without a mask is all background (class 0)"
            )
        else:
            rules.append(MaskRule(int(label), threshold, absent=mask is None))
    return rules


def open_mask(
    path: Path,
    *,
    palette: Palette | None = None,
    roi: Roi | None = None,
    rule: MaskRule | None = None,
) -> LabelMap:
    """The labels of a truth mask (see the module docstring); without a rule, the mask's
    values are class indices (through ``palette`` for colour masks)."""
    if rule is None:
        return open_label_map(path, "truth", palette=palette, roi=roi)
    if rule.absent:
        height, width = image_size(path)
        zeros = np.broadcast_to(np.zeros((), np.uint8), (height, width))  # no memory
        label_map = LabelMap(path, zeros, "labels", (height, width))
        if roi is not None:
            label_map.set_roi(roi)
        return label_map
    label_map = open_label_map(path, "truth", roi=roi)
    if label_map.kind != "labels":
        raise TinysegError(
            f"{path}: a mask of one class ({MASK_CLASS_COLUMN} {rule.label}) must have one "
            f"channel of integers; found {label_map.raw.dtype} of shape {label_map.raw.shape}"
        )
    label_map.kind = "foreground"
    label_map.label = rule.label
    label_map.threshold = rule.threshold
    return label_map
