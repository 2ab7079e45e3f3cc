"""2D ``infer`` end to end: images in, one prediction TIFF per image and a table of them out
(SPEC §4.6).

Everything is checked before the first image is predicted (SPEC §9): the checkpoints, the
sample ids as file names, every input image's header (type, channels, ROI, a file cut
short), and what ``OUT_DIR`` already holds. What only decoding finds (a NaN pixel, damaged
compressed data) stops the run at that image; the images before it are kept (resume).

Resuming. Each TIFF is written atomically and carries a record of what it was made from
(checkpoint contents, image size and mtime, ROI, classes, tiling options). A rerun with the
same record skips it; an existing TIFF with another record, or a file tinyseg did not write
(empty, unreadable, cut short: its writes are atomic, so it never leaves such a file), is an
error without ``--force``; the temporary files a killed writer left are removed. An image
predicted in several bands (tiled) keeps its finished bands in
``OUT_DIR/.partial/<sample_id>/`` until its TIFFs are written, so an interrupted run
resumes at the first unfinished row of tiles.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from tinyseg_cli import __version__
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.model import load_model
from tinyseg_cli.inference.predict import TileOptions
from tinyseg_cli.inference.stream import Ensemble, image_bands, make_ensemble, plan_image
from tinyseg_cli.io.atomic import check_distinct, check_location
from tinyseg_cli.io.image_rows import ImageRows, image_info
from tinyseg_cli.io.paths import check_file_name, name_limit, undecodable
from tinyseg_cli.io.predictions import (
    RowReader,
    Staging,
    read_record,
    remove_temporaries,
    write_prediction,
)
from tinyseg_cli.io.provenance import fingerprint
from tinyseg_cli.io.rasters import Roi
from tinyseg_cli.io.sources import MapRef, manifest_maps, resolve_maps
from tinyseg_cli.io.tables import is_table_path, read_table_bytes, table_metadata
from tinyseg_cli.runtime.parallel import shard

PROBS_DIR = "probs"
PARTIAL_DIR = ".partial"
TABLE_MAGIC = (b"PAR1", b"ARROW1", b"\xff\xff\xff\xff")


@dataclass(frozen=True)
class InferOptions:
    """The command's options that shape the outputs."""

    tiles: TileOptions = field(default_factory=TileOptions)
    threshold: float | None = None
    probs: bool = False
    force: bool = False


@dataclass(frozen=True)
class Target:
    """One image to predict (or already predicted) and where its outputs go."""

    sample_id: str
    image: Path
    roi: Roi | None
    shape: tuple[int, int]
    labels: Path
    probs: Path | None
    record: dict[str, Any]
    done: bool = False


@dataclass(frozen=True)
class InferJob:
    """A validated run: the models, the targets, and where the table goes."""

    ensemble: Ensemble
    targets: list[Target]
    out_dir: Path
    options: InferOptions
    run_key: dict[str, Any]
    table: Path

    def bands(self, target: Target) -> int:
        """Progress steps of ``target``: its output bands."""
        return plan_image(self.ensemble, *target.shape, self.options.tiles).bands


def load_ensemble(
    checkpoints: Sequence[str | Path], device: torch.device, threshold: float | None
) -> Ensemble:
    """Every checkpoint on ``device``; several must be binary models to fuse one-vs-rest."""
    return make_ensemble([load_model(path, device, threshold) for path in checkpoints])


def _stdin_refs(data: bytes, split: str | None) -> tuple[dict[str, MapRef], bool]:
    """A manifest table (Parquet or Arrow) or image paths, one per line."""
    if data.startswith(TABLE_MAGIC):
        return manifest_maps(read_table_bytes(data, "<stdin>", ""), "-", ("image",), split), True
    refs: dict[str, MapRef] = {}
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():  # decoded as the file system does: any file name is found
            path = Path(os.fsdecode(line.strip()))
            origin = f"<stdin>: line {number}"
            _add(refs, {path.stem: MapRef(path.stem, path, origin=origin)}, "<stdin>")
    if not refs:
        raise TinysegError("<stdin>: empty input, expected image paths (one per line) or a table")
    return refs, False


def _add(refs: dict[str, MapRef], found: dict[str, MapRef], source: str) -> None:
    for sample_id, ref in found.items():
        if sample_id in refs:
            raise TinysegError(
                f"{source}: sample {sample_id!r} is already given ({refs[sample_id].path})"
            )
        refs[sample_id] = ref


def gather_inputs(inputs: Sequence[str], split: str | None, stdin: BinaryIO) -> list[MapRef]:
    """The images of every INPUT: manifests (rows of ``split``), folders, globs, files, and
    ``-`` (a manifest table or paths on stdin)."""
    refs: dict[str, MapRef] = {}
    manifests = 0
    if list(inputs).count("-") > 1:
        raise TinysegError("'-' (stdin) can be given once")
    for spec in inputs:
        if spec == "-":
            found, is_table = _stdin_refs(stdin.read(), split)
            manifests += is_table
        elif is_table_path(spec) and Path(spec).is_file():
            found = resolve_maps(spec, columns=("image",), split=split, images=True)
            manifests += 1
        else:
            found = resolve_maps(spec, columns=("image",), images=True)
        if not found:  # folders, globs and paths on stdin fail on their own when empty
            raise TinysegError(f"{'<stdin>' if spec == '-' else spec}: the manifest holds no image")
        _add(refs, found, "<stdin>" if spec == "-" else spec)
    if split is not None and not manifests:
        raise TinysegError(f"--split {split}: no manifest among the inputs")
    return list(refs.values())


def _check_sample_id(ref: MapRef, limit: int) -> None:
    """Sample ids name output files: one printable name, short enough for the file
    system, inside OUT_DIR (SPEC §9); the message names the manifest row or the file."""
    check_file_name(ref.sample_id, ref.where, ".tif", limit)


def run_key(ensemble: Ensemble, tiles: TileOptions) -> dict[str, Any]:
    """What every prediction of a run depends on, besides its image."""
    checkpoints = []
    for model in ensemble.models:
        content = {k: v for k, v in fingerprint(model.path).items() if k != "path"}
        checkpoints.append(content)
    return {
        "checkpoints": checkpoints,
        "thresholds": [m.head.threshold if m.head.binary else None for m in ensemble.models],
        "classes": list(ensemble.classes),
        "max_pixels": tiles.max_pixels,
        "tile": tiles.tile,
        "overlap": tiles.overlap,
        "blend": tiles.blend,
    }


def _record(key: dict[str, Any], ref: MapRef, shape: tuple[int, int]) -> dict[str, Any]:
    stat = ref.path.stat()
    return {
        **key,
        "sample_id": ref.sample_id,
        "image": {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "roi": list(ref.roi) if ref.roi else None,
        "shape": list(shape),
        "version": __version__,
    }


def _same(found: dict[str, Any], record: dict[str, Any]) -> bool:
    def strip(value: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in value.items() if k != "version"}

    return strip(found) == strip(record)


def _check_ours(path: Path) -> None:
    """An existing output must be a prediction TIFF of tinyseg. Its writes are atomic, so an
    empty, unreadable or cut-short file, or a TIFF without its record, is someone else's:
    not replaced without --force."""
    if not os.path.lexists(path):
        return
    if path.is_dir():
        raise TinysegError(f"{path}: is a folder where a prediction goes (remove it)")
    found = read_record(path)
    if found:
        return
    if path.stat().st_size == 0:
        why = "an empty file"
    elif found is None:
        why = "not a readable TIFF"
    else:
        why = "a TIFF without tinyseg's record"
    raise TinysegError(
        f"{path}: already exists and is {why}, not a prediction of tinyseg (pass --force to "
        "overwrite it)"
    )


def _status(target: Target, force: bool) -> Target:
    """Done (same record) or to do; another run's file, or a file that is not a prediction
    of tinyseg, fails without ``force``."""
    if force:
        return target
    for path in (target.labels, target.probs):
        if path is not None:
            _check_ours(path)
    if not target.labels.exists():
        return target
    found = read_record(target.labels)
    if found is None or not _same(found, target.record):
        raise TinysegError(
            f"{target.labels}: already exists and was not made from the same checkpoint, "
            "image and options (pass --force to overwrite)"
        )
    if target.probs is not None:
        probs = read_record(target.probs) if target.probs.exists() else None
        if probs is None or not _same(probs, target.record):
            return target
    return replace(target, done=True)


def _check_table(path: Path, key: dict[str, Any], force: bool) -> None:
    if force or not path.exists():
        return
    try:
        found = table_metadata(pq.read_schema(path).empty_table()).get("run")
    except (OSError, pa.ArrowException):
        raise TinysegError(
            f"{path}: already exists and is not a Parquet table, not one of tinyseg (pass "
            "--force to overwrite it)"
        ) from None
    if found != key:
        raise TinysegError(
            f"{path}: already exists and lists another run's predictions (pass --force to "
            "overwrite)"
        )


def prepare(
    ensemble: Ensemble,
    refs: Sequence[MapRef],
    out_dir: Path,
    options: InferOptions,
    part: tuple[int, int] = (0, 1),
    sources: Sequence[str | Path] = (),
) -> InferJob:
    """Check every input and existing output before any work starts; ``sources`` are the
    inputs as given (a manifest that no output may overwrite)."""
    limit = name_limit(out_dir)
    for ref in refs:  # names first, in input order: they fail without reading any image
        _check_sample_id(ref, limit)
    chosen = shard(refs, *part)
    if not chosen:
        if part == (0, 1):
            raise TinysegError("the inputs hold no image")
        raise TinysegError(f"shard {part[0]}/{part[1]} holds no image (of {len(refs)})")
    key = run_key(ensemble, options.tiles)
    targets = []
    for ref in chosen:
        if undecodable(_image_column(ref.path, out_dir)):  # the table stores it as text
            raise TinysegError(f"{ref.path}: the path is not valid UTF-8 (rename its folder)")
        info = image_info(ref.path, ensemble.channels, ref.roi)
        shape = (info.height, info.width)
        plan_image(ensemble, *shape, options.tiles)  # tile options that cannot work fail here
        probs = out_dir / PROBS_DIR / f"{ref.sample_id}.tif" if options.probs else None
        target = Target(
            ref.sample_id,
            ref.path,
            ref.roi,
            shape,
            out_dir / f"{ref.sample_id}.tif",
            probs,
            _record(key, ref, shape),
        )
        targets.append(target)
    name = (
        "predictions.parquet" if part == (0, 1) else f"predictions-{part[0]}-of-{part[1]}.parquet"
    )
    table = out_dir / name
    outputs = [path for target in targets for path in (target.labels, target.probs) if path]
    # before _status: an input in OUT_DIR is not a foreign file that --force may overwrite
    check_distinct(
        {"-o": [*outputs, table]},
        {
            "INPUT": [*sources, *(ref.path for ref in refs)],
            "--checkpoint": [m.path for m in ensemble.models],
        },
    )
    for path in (*outputs, table):
        check_location(path, "-o")
    targets = [_status(target, options.force) for target in targets]
    _check_table(table, key, options.force)
    return InferJob(ensemble, targets, out_dir, options, key, table)


def _rows_of(array: np.ndarray) -> RowReader:
    """Rows ``a:b`` of an (H, W) array, or of each plane's (C, H, W) rows when 3D."""
    return lambda a, b: array[..., a:b, :]


def _predict(job: InferJob, target: Target, on_band: Callable[[str], None]) -> int | None:
    """Predict one image and write its TIFFs: whole in memory when it is one band, else
    band by band through the staging files (resumable). Returns the class of a map that
    holds one class only (None otherwise)."""
    ensemble, tiles = job.ensemble, job.options.tiles
    height, width = target.shape
    plan = plan_image(ensemble, height, width, tiles)
    image = ImageRows(target.image, ensemble.channels, target.roi)
    planes = len(ensemble.classes) if target.probs is not None else 0
    staging = None
    if plan.bands == 1:
        band = next(image_bands(ensemble, image, plan, tiles, probs=bool(planes)))
        on_band(target.sample_id)
        label_rows = _rows_of(band.labels)
        prob_rows = [_rows_of(plane) for plane in band.probs] if band.probs is not None else []
    else:
        folder = job.out_dir / PARTIAL_DIR / target.sample_id
        staging = Staging(folder, target.record, target.shape, ensemble.dtype, planes)
        start = staging.start()
        for _ in range(plan.bands - plan.bands_from(start)):  # done before an interruption
            on_band(target.sample_id)
        for band in image_bands(ensemble, image, plan, tiles, probs=bool(planes), start_row=start):
            staging.append(band.y0, band.y1, band.labels, band.probs)
            on_band(target.sample_id)
        label_rows, prob_rows = staging.label_rows(), staging.prob_rows()
    if target.probs is not None:  # labels last: a label TIFF means the image is complete
        float16 = np.dtype(np.float16)
        write_prediction(target.probs, prob_rows, height, width, float16, target.record)
    write_prediction(target.labels, [label_rows], height, width, ensemble.dtype, target.record)
    only = _only_class(label_rows, height)
    if staging is not None:
        staging.remove()
    return only


def _only_class(label_rows: RowReader, height: int, rows: int = 1024) -> int | None:
    """The one class a label map holds, or None when it holds several."""
    low, high = None, None
    for start in range(0, height, rows):
        block = label_rows(start, min(start + rows, height))
        block_low, block_high = int(block.min()), int(block.max())
        low = block_low if low is None else min(low, block_low)
        high = block_high if high is None else max(high, block_high)
        if low != high:
            return None
    return low


@dataclass(frozen=True)
class InferResult:
    """One table row per target, and what was done."""

    rows: list[dict[str, Any]]
    predicted: int
    kept: int
    tiled: int
    one_class: list[tuple[str, int]] = field(default_factory=list)  # (sample, its only class)


def run(job: InferJob, on_band: Callable[[str], None] = lambda _: None) -> InferResult:
    """Predict every target not done yet, in sample-id order; one row per target."""
    rows, predicted, tiled, one_class = [], 0, 0, []
    for target in job.targets:
        mode = plan_image(job.ensemble, *target.shape, job.options.tiles).mode
        for path in (target.labels, target.probs):
            if path is not None:
                remove_temporaries(path)
        if target.done:
            for _ in range(job.bands(target)):
                on_band(target.sample_id)
        else:
            only = _predict(job, target, on_band)
            if only is not None:
                one_class.append((target.sample_id, only))
            predicted += 1
        tiled += mode == "tiled"
        rows.append(_row(job, target, mode))
    return InferResult(rows, predicted, len(job.targets) - predicted, tiled, one_class)


def _image_column(image: Path, out_dir: Path) -> str:
    """The image's path in the predictions table: relative to the table's folder."""
    return Path(os.path.relpath(image.resolve(), out_dir.resolve())).as_posix()


def _row(job: InferJob, target: Target, mode: str) -> dict[str, Any]:
    roi = target.roi or (None, None, None, None)
    probs = None if target.probs is None else target.probs.relative_to(job.out_dir).as_posix()
    return {
        "sample_id": target.sample_id,
        "image": _image_column(target.image, job.out_dir),
        "prediction": target.labels.name,
        "probs": probs,
        "height": target.shape[0],
        "width": target.shape[1],
        "mode": mode,
        "roi_y0": roi[0],
        "roi_x0": roi[1],
        "roi_y1": roi[2],
        "roi_x1": roi[3],
    }


PREDICTION_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("image", pa.string()),
        ("prediction", pa.string()),
        ("probs", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("mode", pa.string()),
        ("roi_y0", pa.int32()),
        ("roi_x0", pa.int32()),
        ("roi_y1", pa.int32()),
        ("roi_x1", pa.int32()),
    ]
)


def predictions_table(result: InferResult) -> pa.Table:
    """The table of SPEC §4.6: one row per image, paths relative to the table."""
    return pa.Table.from_pylist(result.rows, schema=PREDICTION_SCHEMA)


def table_entries(job: InferJob) -> dict[str, Any]:
    """Schema metadata besides provenance: classes, the run key, and how labels were made."""
    models = job.ensemble.models
    return {
        "classes": list(job.ensemble.classes),
        "run": job.run_key,
        "checkpoints": [str(model.path) for model in models],
        "fusion": "one-vs-rest" if job.ensemble.fused else None,
        "binary": [m.config.get("binary") for m in models] if models[0].head.binary else None,
        "probs": job.options.probs,
    }


def write_predictions(
    job: InferJob, result: InferResult, inputs: Sequence[str | Path], argv: list[str]
) -> None:
    """Write the table of what ``job`` wrote, with provenance and the run's metadata."""
    from tinyseg_cli.io.provenance import provenance
    from tinyseg_cli.io.tables import write_table

    metadata = {"provenance": provenance(list(inputs), argv), **table_entries(job)}
    write_table(predictions_table(result), job.table, metadata)
