"""LAS/LAZ point clouds through laspy (LAZ decoded by lazrs): headers checked before any work,
then points read in chunks so memory stays bounded by the chunk size (SPEC §4.4, §9)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyseg_cli.errors import TinysegError, library_reason
from tinyseg_cli.io.las_meta import Unit, header_unit
from tinyseg_cli.io.paths import not_a_file

RGB = ("red", "green", "blue")
WRITE_CHUNK = 1_000_000  # points per chunk when copying a file


@dataclass(frozen=True)
class LasInfo:
    """What a LAS/LAZ header says: enough to plan the work before reading any point."""

    path: Path
    point_count: int
    dimensions: tuple[str, ...]
    mins: tuple[float, float, float]
    maxs: tuple[float, float, float]
    compressed: bool
    unit: Unit | None = None  # horizontal unit of the CRS the file carries, if it says

    def has(self, dimension: str) -> bool:
        return dimension in self.dimensions


@dataclass(frozen=True)
class LasChunk:
    """``len(xyz)`` consecutive points of a file, the first one being point ``start``."""

    start: int
    xyz: np.ndarray  # (n, 3) float64, scaled coordinates
    dimensions: dict[str, np.ndarray]  # the other dimensions asked for, as stored

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def _laspy_errors() -> tuple[type[BaseException], ...]:
    import laspy

    return (laspy.errors.LaspyException, OSError, ValueError, EOFError, RuntimeError)


def read_header(path: str | Path) -> LasInfo:
    """The header of a LAS/LAZ file; a missing, empty or non-LAS file is a one-line error."""
    import laspy

    p = Path(path)
    if not p.is_file():
        raise not_a_file(p)
    try:
        with laspy.open(p) as reader:
            header = reader.header
            names = tuple(header.point_format.dimension_names)
            info = LasInfo(
                p,
                int(header.point_count),
                names,
                tuple(float(v) for v in header.mins),  # type: ignore[arg-type]
                tuple(float(v) for v in header.maxs),  # type: ignore[arg-type]
                bool(header.are_points_compressed),
                header_unit(header),
            )
            scales, offsets = np.asarray(header.scales), np.asarray(header.offsets)
    except _laspy_errors() as error:
        raise TinysegError(f"{p}: not a readable LAS/LAZ file ({first_line(error)})") from None
    if not (np.isfinite(scales).all() and np.isfinite(offsets).all()):
        raise TinysegError(f"{p}: header scale or offset is not finite (NaN/Inf coordinates)")
    if not all(np.isfinite(info.mins + info.maxs)):
        raise TinysegError(f"{p}: header bounds are not finite (NaN/Inf coordinates)")
    if info.point_count == 0:
        raise TinysegError(f"{p}: holds no points")
    return info


def require_dimension(info: LasInfo, dimension: str, what: str, hint: str = "") -> None:
    """A one-line error unless the file has ``dimension`` (for ``what``, e.g. "the labels")."""
    if not info.has(dimension):
        raise TinysegError(
            f"{info.path}: no dimension {dimension!r} for {what} "
            f"(dimensions: {', '.join(info.dimensions)}{hint})"
        )


def iter_chunks(
    info: LasInfo, size: int, dimensions: tuple[str, ...], parallel: bool = False
) -> Iterator[LasChunk]:
    """The points of ``info.path`` in chunks of ``size``, with the given extra dimensions;
    ``parallel``: LAZ decoded on every core (:func:`_laz_backend`)."""
    for start, points in _point_chunks(info, size, parallel):
        xyz = np.empty((len(points), 3), np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite: checked later
            xyz[:, 0], xyz[:, 1], xyz[:, 2] = points.x, points.y, points.z
        yield LasChunk(start, xyz, {name: np.asarray(points[name]) for name in dimensions})


def iter_dimensions(
    info: LasInfo, size: int, dimensions: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(first point, values) of the given dimensions in chunks of ``size``, without the
    coordinates (scoring needs labels only)."""
    for start, points in _point_chunks(info, size):
        yield start, {name: np.asarray(points[name]) for name in dimensions}


def _point_chunks(info: LasInfo, size: int, parallel: bool = False) -> Iterator[tuple[int, Any]]:
    """laspy's chunks of ``info.path`` with their first point; read errors and a point count
    that differs from the header's become one-line errors."""
    import laspy

    start = 0
    try:
        with laspy.open(info.path, laz_backend=_laz_backend(parallel)) as reader:
            for points in reader.chunk_iterator(size):
                yield start, points
                start += len(points)
    except _laspy_errors() as error:
        where = f"near point {start}" if start else "reading points"
        raise TinysegError(f"{info.path}: unreadable ({where}: {first_line(error)})") from None
    if start != info.point_count:
        raise TinysegError(
            f"{info.path}: header says {info.point_count} points, the file holds {start}"
        )


def _laz_backend(parallel: bool = False):
    """lazrs; ``parallel``: decoding each chunk on every core, which took voxelize's first
    pass over 10 M LAZ points from 4.5 s to 2.9 s on two cores (the one-thread decoder alone
    takes 4.0 s). Only for work in the main process: its thread pool does not survive a
    fork, so a forked worker (``score``'s) that used it would wait forever."""
    import laspy

    backend = laspy.LazBackend.LazrsParallel if parallel else laspy.LazBackend.Lazrs
    return backend if backend in laspy.LazBackend.detect_available() else None


def first_line(error: BaseException) -> str:
    return library_reason(error)


def point_count(path: Path) -> int:
    """The number of points a LAS/LAZ header declares."""
    import laspy

    try:
        with laspy.open(path, laz_backend=_laz_backend()) as reader:
            return int(reader.header.point_count)
    except Exception as error:  # laspy raises its own types for corrupt files
        raise TinysegError(f"{path}: unreadable LAS file ({library_reason(error)})") from error


def write_with_dimension(source: Path, target: Path, name: str, values: np.ndarray) -> None:
    """A copy of ``source`` with an extra dimension ``name`` (replaced when present), written
    atomically to ``target`` (compressed when ``target`` is .laz), chunk by chunk: memory
    holds ``values`` and one chunk, not the point cloud."""
    import copy

    import laspy

    from tinyseg_cli.io.atomic import atomic_path

    try:
        with laspy.open(source, laz_backend=_laz_backend()) as reader:
            if reader.header.point_count != values.size:
                raise TinysegError(
                    f"{source}: holds {reader.header.point_count} points, the predictions "
                    f"{values.size}"
                )
            header = copy.deepcopy(reader.header)
            if name not in header.point_format.dimension_names:
                header.add_extra_dim(laspy.ExtraBytesParams(name=name, type=values.dtype))
            compress = target.suffix.lower() == ".laz"
            with (
                atomic_path(target) as temporary,
                laspy.open(
                    temporary,
                    mode="w",
                    header=header,
                    do_compress=compress,
                    laz_backend=_laz_backend() if compress else None,
                ) as writer,
            ):
                start = 0
                for points in reader.chunk_iterator(WRITE_CHUNK):
                    record = laspy.ScaleAwarePointRecord.zeros(len(points), header=header)
                    for field in points.array.dtype.names:  # raw fields: an exact copy
                        record.array[field] = points.array[field]
                    record[name] = values[start : start + len(points)]
                    writer.write_points(record)
                    start += len(points)
    except _laspy_errors() as error:
        raise TinysegError(f"{source}: not a readable LAS/LAZ file ({first_line(error)})") from None
