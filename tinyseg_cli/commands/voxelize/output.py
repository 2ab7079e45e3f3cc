"""The schemas of the voxel table and the point map (SPEC §3), which ``voxelize`` streams tile
by tile through :func:`tinyseg_cli.io.table_stream.table_stream`."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def voxel_schema(features: tuple[str, ...], split: bool) -> pa.Schema:
    fields = [
        pa.field("scene", pa.string()),
        pa.field("tile", pa.int32()),
        *(pa.field(name, pa.int32()) for name in ("vx", "vy", "vz")),
        *(pa.field(name, pa.float32()) for name in features),
        pa.field("label", pa.int16()),
        pa.field("n_points", pa.int32()),
    ]
    if split:
        fields.append(pa.field("split", pa.string()))
    return pa.schema(fields)


POINT_SCHEMA = pa.schema(
    [
        pa.field("scene", pa.string()),
        pa.field("point_index", pa.int64()),
        pa.field("tile", pa.int32()),
        pa.field("voxel_row", pa.int64()),
    ]
)
POINT_DELTA = ("point_index", "tile", "voxel_row")


def constant_strings(value: str, length: int) -> pa.Array:
    """A string column of one repeated value (built as a dictionary, decoded in C++)."""
    indices = pa.array(np.zeros(length, np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([value])).cast(pa.string())
