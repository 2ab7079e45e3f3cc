"""The voxel table and the point map (SPEC §3), streamed tile by tile into Parquet row groups
so that neither is ever whole in memory, each written atomically (a temporary file renamed
into place only when the whole run succeeds)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tinyseg_cli.io.atomic import atomic_path
from tinyseg_cli.io.tables import with_metadata

ROW_GROUP = 1 << 19  # rows buffered before a row group is written


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


class TableStream:
    """Row groups appended to one Parquet file; ``columns`` name the schema's arrays."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema):
        self.writer = writer
        self.schema = schema
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def append(self, columns: dict[str, Any]) -> None:
        arrays = [_array(columns[field.name], field.type) for field in self.schema]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.writer.write_table(pa.Table.from_batches(self._pending, self.schema))
        self._pending, self._pending_rows = [], 0


def _array(values: Any, type_: pa.DataType) -> pa.Array:
    return values if isinstance(values, pa.Array) else pa.array(values, type_)


@contextlib.contextmanager
def table_stream(
    path: Path, schema: pa.Schema, metadata: dict[str, Any], delta: tuple[str, ...] = ()
) -> Iterator[TableStream]:
    """A :class:`TableStream` onto ``path``, renamed into place when the block succeeds;
    ``delta`` names integer columns to delta-encode."""
    schema = with_metadata(schema.empty_table(), metadata).schema
    with atomic_path(path) as temporary:
        # Dictionaries only for the string columns: on float features pyarrow tries one,
        # finds too many values and falls back, at a third of the writing time. Delta
        # encoding halves the time and size of the point map's ascending integer columns.
        strings = [field.name for field in schema if pa.types.is_string(field.type)]
        writer = pq.ParquetWriter(
            temporary,
            schema,
            compression="zstd",
            use_dictionary=strings,
            column_encoding={name: "DELTA_BINARY_PACKED" for name in delta},
        )
        try:
            stream = TableStream(writer, schema)
            yield stream
            stream.flush()
        finally:
            writer.close()
