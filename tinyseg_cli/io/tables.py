"""Tables in and out: Parquet, Arrow IPC (file or stream) and CSV; ``-`` is stdin/stdout.

Every table tinyseg writes is Parquet and carries, in its schema metadata, the provenance
record (``tinyseg.provenance``) and, where known, the class map (``tinyseg.classes``), each
as JSON.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import STDIO, atomic_path

META_PREFIX = "tinyseg."
TABLE_SUFFIXES = frozenset({".parquet", ".pq", ".csv", ".arrow", ".feather", ".ipc"})


def is_table_path(path: str | Path) -> bool:
    """Whether ``path`` names a table by its suffix (or is ``-``, a table on stdin)."""
    return str(path) == STDIO or Path(path).suffix.lower() in TABLE_SUFFIXES


def read_table_bytes(data: bytes, name: str, suffix: str = "") -> pa.Table:
    """A table from bytes already read (a pipe), by its magic bytes; CSV by suffix or stdin."""
    if data[:4] == b"PAR1":
        return pq.read_table(io.BytesIO(data))
    if data[:6] == b"ARROW1":
        return pa_ipc.open_file(io.BytesIO(data)).read_all()
    if data[:4] == b"\xff\xff\xff\xff":
        return pa_ipc.open_stream(io.BytesIO(data)).read_all()
    if suffix == ".csv" or name == "<stdin>":
        return pa_csv.read_csv(io.BytesIO(data))
    raise TinysegError(f"{name}: not a Parquet, Arrow or CSV table")


def read_table(path: str | Path) -> pa.Table:
    """Read a table, detecting Parquet, Arrow IPC file/stream or CSV by content."""
    if str(path) == STDIO:
        data = sys.stdin.buffer.read()
        name, suffix = "<stdin>", ""
        if not data:
            raise TinysegError("<stdin>: empty input, expected a table")
    else:
        p = Path(path)
        if not p.is_file():
            raise TinysegError(f"{p}: no such file")
        data, name, suffix = p.read_bytes(), str(p), p.suffix.lower()
        if not data:
            raise TinysegError(f"{p}: empty file, expected a table")
    try:
        return read_table_bytes(data, name, suffix)
    except (pa.ArrowException, OSError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TinysegError(f"{name}: unreadable table ({first_line})") from None


def table_metadata(table: pa.Table) -> dict[str, Any]:
    """The ``tinyseg.*`` schema metadata of ``table``, JSON-decoded, without the prefix."""
    out: dict[str, Any] = {}
    for key, value in (table.schema.metadata or {}).items():
        text = key.decode("utf-8", "replace")
        if text.startswith(META_PREFIX):
            try:
                out[text[len(META_PREFIX) :]] = json.loads(value)
            except ValueError:
                out[text[len(META_PREFIX) :]] = value.decode("utf-8", "replace")
    return out


def file_schema(path: str | Path) -> pa.Schema:
    """The schema of a table file without reading its rows (Parquet and Arrow files)."""
    p = Path(path)
    if not p.is_file():
        raise TinysegError(f"{p}: no such file")
    try:
        with p.open("rb") as handle:
            magic = handle.read(6)
        if magic[:4] == b"PAR1":
            return pq.read_schema(p)
        if magic == b"ARROW1":
            with pa.memory_map(str(p)) as source:
                return pa_ipc.open_file(source).schema
    except (pa.ArrowException, OSError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TinysegError(f"{p}: unreadable table ({first_line})") from None
    return read_table(p).schema  # CSV and Arrow streams have no footer to read alone


def read_columns(path: str | Path, columns: list[str]) -> pa.Table:
    """Those of ``columns`` a table file has (a Parquet file reads no other column)."""
    present = [name for name in columns if name in file_schema(path).names]
    with Path(path).open("rb") as handle:
        parquet = handle.read(4) == b"PAR1"
    if not parquet:
        return read_table(path).select(present)
    try:
        return pq.read_table(path, columns=present)
    except (pa.ArrowException, OSError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TinysegError(f"{path}: unreadable table ({first_line})") from None


def file_metadata(path: str | Path) -> dict[str, Any]:
    """The ``tinyseg.*`` metadata of a table file, read from its schema alone."""
    return table_metadata(file_schema(path).empty_table())


def with_metadata(table: pa.Table, entries: dict[str, Any]) -> pa.Table:
    """``table`` with ``entries`` stored as ``tinyseg.<key>`` JSON schema metadata."""
    metadata = dict(table.schema.metadata or {})
    for key, value in entries.items():
        if value is not None:
            metadata[(META_PREFIX + key).encode()] = json.dumps(value, sort_keys=True).encode()
    return table.replace_schema_metadata(metadata)


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` serialised as one Parquet file."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_table(table: pa.Table, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
    """Write ``table`` as Parquet to ``path`` atomically, or to stdout for ``-``."""
    if metadata:
        table = with_metadata(table, metadata)
    if str(path) == STDIO:
        sys.stdout.buffer.write(parquet_bytes(table))
        sys.stdout.buffer.flush()
        return
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary, compression="zstd")


def resolve_table_path(value: str, table_path: str | Path) -> Path:
    """A path stored in a table, resolved relative to the table's own folder (SPEC §3)."""
    p = Path(value)
    if p.is_absolute() or str(table_path) == STDIO:
        return p
    return Path(table_path).parent / p
