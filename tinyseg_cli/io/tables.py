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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from tinyseg_cli.errors import TinysegError, library_reason
from tinyseg_cli.io.atomic import STDIO, atomic_path
from tinyseg_cli.io.paths import not_a_file

META_PREFIX = "tinyseg."
TABLE_SUFFIXES = frozenset({".parquet", ".pq", ".csv", ".arrow", ".feather", ".ipc"})


def is_table_path(path: str | Path) -> bool:
    """Whether ``path`` names a table by its suffix (or is ``-``, a table on stdin)."""
    return str(path) == STDIO or Path(path).suffix.lower() in TABLE_SUFFIXES


# Columns that hold names, never numbers: CSV type inference would read sample id "042" as
# the integer 42 (and split "073" from its group), so they are read as text.
TEXT_COLUMNS = ("sample_id", "group", "image", "mask", "prediction", "probs", "split", "scene")
CSV_TEXT = pa_csv.ConvertOptions(column_types=dict.fromkeys(TEXT_COLUMNS, pa.string()))


def read_table_bytes(data: bytes, name: str, suffix: str = "") -> pa.Table:
    """A table from bytes already read (a pipe), by its magic bytes; CSV by suffix or stdin."""
    try:
        if data[:4] == b"PAR1":
            # One thread: pyarrow 2x's reader pool can abort the interpreter at exit
            # ("terminate called without an active exception", apache/arrow#33975) when the
            # command then fails; tinyseg's tables are small enough that threads gain nothing.
            return pq.read_table(io.BytesIO(data), use_threads=False)
        if data[:6] == b"ARROW1":
            return pa_ipc.open_file(io.BytesIO(data)).read_all()
        if data[:4] == b"\xff\xff\xff\xff":
            return pa_ipc.open_stream(io.BytesIO(data)).read_all()
        if suffix == ".csv" or name == "<stdin>":
            _check_text(data, name)
            return pa_csv.read_csv(io.BytesIO(data), convert_options=CSV_TEXT)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise TinysegError(f"{name}: unreadable table ({library_reason(error)})") from error
    raise TinysegError(f"{name}: not a Parquet, Arrow or CSV table")


def _check_text(data: bytes, name: str) -> None:
    """CSV is text: bytes that are not UTF-8 (an image, a checkpoint piped by mistake) are
    no table, said in one line rather than as a parse error full of binary."""
    head = data[: 1 << 16]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3 or b"\0" in head:  # not a character cut at the end
            raise TinysegError(
                f"{name}: not a Parquet, Arrow or CSV table (binary data, byte "
                f"{error.start} is not UTF-8 text)"
            ) from None


# stdin can be read once: the table it held is kept for a command that looks at a table
# before reading it (score --counts: thresholds or confusion counts?), keyed by the stream so
# that a new stdin is read afresh
_stdin_table: tuple[Any, pa.Table] | None = None


def read_table(path: str | Path) -> pa.Table:
    """Read a table, detecting Parquet, Arrow IPC file/stream or CSV by content."""
    global _stdin_table
    if str(path) == STDIO:
        if _stdin_table is not None and _stdin_table[0] is sys.stdin:
            return _stdin_table[1]
        data = sys.stdin.buffer.read()
        if not data:
            raise TinysegError("<stdin>: empty input, expected a table")
        table = _table_of(data, "<stdin>", "")
        _stdin_table = (sys.stdin, table)
        return table
    p = Path(path)
    if not p.is_file():
        raise not_a_file(p)
    data = p.read_bytes()
    if not data:
        raise TinysegError(f"{p}: empty file, expected a table")
    return _table_of(data, str(p), p.suffix.lower())


def _table_of(data: bytes, name: str, suffix: str) -> pa.Table:
    try:
        return read_table_bytes(data, name, suffix)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise TinysegError(f"{name}: unreadable table ({library_reason(error)})") from error


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
        raise not_a_file(p)
    try:
        with p.open("rb") as handle:
            magic = handle.read(6)
        if magic[:4] == b"PAR1":
            return pq.read_schema(p)
        if magic == b"ARROW1":
            with pa.memory_map(str(p)) as source:
                return pa_ipc.open_file(source).schema
    except (pa.ArrowException, OSError, ValueError) as error:
        raise TinysegError(f"{p}: unreadable table ({library_reason(error)})") from error
    return read_table(p).schema  # CSV and Arrow streams have no footer to read alone


def read_columns(path: str | Path, columns: list[str]) -> pa.Table:
    """Those of ``columns`` a table file has (a Parquet file reads no other column)."""
    present = [name for name in columns if name in file_schema(path).names]
    with Path(path).open("rb") as handle:
        parquet = handle.read(4) == b"PAR1"
    if not parquet:
        return read_table(path).select(present)
    try:
        return pq.read_table(path, columns=present, use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise TinysegError(f"{path}: unreadable table ({library_reason(error)})") from error


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


INT64_LIMIT = 2**63  # values at or beyond it do not fit the int64 the counts are added in


def integer_column(
    table: pa.Table,
    column: str,
    name: str,
    *,
    minimum: int | None = None,
    noun: str | None = None,
    nullable: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Column ``column`` of ``table`` as int64 values and a mask of the present ones, checked
    row by row before any work (SPEC §9). Integer-valued floats and numeric text are
    accepted; an empty value (unless ``nullable``), NaN, inf, a fraction, other text or a
    value below ``minimum`` is an error naming the table, row, column and value, e.g.
    ``counts.parquet: row 0: tp is 10.5 (counts must be integers)``. ``noun`` names what
    the values are in that message ("counts"); without it, "expected an integer"."""
    chunked = table[column]
    kind = chunked.type
    if pa.types.is_dictionary(kind):
        chunked, kind = chunked.cast(kind.value_type), kind.value_type
    present = pc.is_valid(chunked).to_numpy(zero_copy_only=False).astype(bool)
    rows = len(present)
    values = np.zeros(rows, np.int64)
    bad = np.zeros(rows, bool)  # a value that is not an integer
    shown: dict[int, str] = {}  # how a bad value is shown, for text
    if pa.types.is_null(kind):
        pass
    elif pa.types.is_integer(kind):
        values = chunked.fill_null(0).to_numpy().astype(np.int64)
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        floats = chunked.cast(pa.float64()).fill_null(0).to_numpy().astype(np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(floats) | (floats != np.floor(floats))
            bad |= np.abs(floats) >= INT64_LIMIT
        values = np.where(bad, 0, floats).astype(np.int64)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        for row, text in enumerate(chunked.to_pylist()):
            if text is None:
                continue
            number = _integer_text(text)
            if number is None:
                bad[row], shown[row] = True, repr(text)
            else:
                values[row] = number
    else:
        raise TinysegError(f"{name}: column {column!r} holds {kind} values, expected integers")
    bad &= present
    low = present & ~bad & (values < minimum) if minimum is not None else np.zeros(rows, bool)
    wrong = bad | low | (np.zeros(rows, bool) if nullable else ~present)
    if not wrong.any():
        return values, present
    row = int(np.argmax(wrong))
    if low[row]:
        found = str(values[row])
        rule = f"{noun} must be >= {minimum}" if noun else f"expected >= {minimum}"
    else:
        found = "empty" if not present[row] else shown.get(row) or _float_text(chunked[row])
        rule = f"{noun} must be integers" if noun else "expected an integer"
    raise TinysegError(f"{name}: row {row}: {column} is {found} ({rule})")


def _integer_text(text: str) -> int | None:
    """The integer written in ``text`` ("12", " 12 ", "12.0"), or None."""
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    if not np.isfinite(number) or number != int(number) or abs(number) >= INT64_LIMIT:
        return None
    return int(number)


def _float_text(value: pa.Scalar) -> str:
    number = float(value.as_py())
    if np.isnan(number):
        return "NaN"
    return repr(number) if np.isfinite(number) else ("inf" if number > 0 else "-inf")
