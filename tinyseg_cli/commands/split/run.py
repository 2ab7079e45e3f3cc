"""``split`` end to end: open the manifest, group its rows, assign the groups (ratios,
folds, image regions, an nnU-Net file, or the table's own split) and keep the record of how
(SPEC §4.1). Reading and writing tables is in ``manifest``, the assignment in
:mod:`tinyseg_cli.prep.folds`, reports and the leakage check in ``report``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyseg_cli.commands.split.folders import FolderLayout
from tinyseg_cli.commands.split.manifest import (
    ASSIGNMENT_COLUMNS,
    Manifest,
    binarised,
    check_files,
    count_rows,
    group_keys,
    manifest_from_dirs,
    manifest_from_folders,
    read_manifest,
    region_rows,
)
from tinyseg_cli.commands.split.nnunet import assignment_from_splits, read_splits
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.palette import Palette
from tinyseg_cli.prep.folds import (
    Assignment,
    Plan,
    assign,
    assignment_from_table,
    held_out_groups,
    select_fold,
)
from tinyseg_cli.prep.splits import find_leak
from tinyseg_cli.scoring.pairs import CountOptions

MODES = ("ratios", "folds", "region", "nnunet", "keep")
Progress = Callable[[str, int], AbstractContextManager[Callable[[Any], None]]]
Warn = Callable[[str], None]


@dataclass(frozen=True)
class SplitRequest:
    """What to split and how; ``mode`` is one of :data:`MODES` (keep: the table's own)."""

    mode: str
    manifest: str | None = None
    from_dir: str | None = None
    masks: str | None = None
    folders: FolderLayout | None = None  # --class-from-folder / --background-folder
    mask_suffix: str = ""
    mask_threshold: int | None = None
    plan: Plan = field(default_factory=Plan)
    region: tuple[str, float] | None = None
    test_ids: str | None = None  # 'a,b' or a file of ids
    group: str | None = None
    fold: int | None = None
    from_nnunet: str | None = None
    count: bool = True
    class_map: ClassMap | None = None
    palette: Palette | None = None
    ignore_index: int | None = 255
    jobs: int = 1


@dataclass
class SplitResult:
    """The split rows, their groups and class counts, and the record of the split."""

    manifest: Manifest
    assignment: Assignment
    keys: list[str]
    counts: np.ndarray | None
    class_map: ClassMap | None
    record: dict[str, Any]
    inputs: list[str]


def make_split(request: SplitRequest, progress: Progress, warn: Warn) -> SplitResult:
    """Read, validate and assign; ``progress`` makes a progress callback, ``warn`` warns."""
    source, inputs = _open_source(request, warn)
    class_map = request.class_map or source.class_map
    check_files(source)
    group = group_column(source, request.group, request.mode)
    keys = group_keys(source, group)
    replaced = [c for c in ASSIGNMENT_COLUMNS if c in source.table.column_names]
    if replaced and request.mode != "keep":
        warn(f"replacing the manifest's column(s) {', '.join(map(repr, replaced))}")
    held = set()
    if request.test_ids is not None:
        held = held_out_groups(keys, parse_test_ids(request.test_ids), source.name)
    options = CountOptions(
        n_classes=len(class_map) if class_map else None,
        ignore_index=request.ignore_index,
        palette=request.palette,
    )
    if request.region is not None:
        side, fraction = request.region
        whole = [key in held for key in keys]
        with progress(f"reading {source.name}", len(keys)) as advance:
            source, assignment, counts, rows = region_rows(
                source, side, fraction, whole, options, request.count, request.jobs, advance
            )
        _check_numbered(source, counts, class_map)
        keys = [keys[row] for row in rows]
    else:
        counts = None
        if request.count:
            with progress(f"counting {source.name}", len(keys)) as advance:
                counts = count_rows(source.refs, options, request.jobs, advance)
            _check_numbered(source, counts, class_map)
        assignment = _assignment(request, source, keys, held, counts, warn)
    if request.fold is not None:
        assignment = select_fold(assignment, request.fold)
    if request.mode != "region":  # only tables and nnU-Net files made elsewhere can leak
        leak = find_leak(source.sample_ids, assignment.labels(), keys)
        if leak is not None:
            raise TinysegError(f"{request.from_nnunet or source.name}: {leak}")
    record = split_record(request, source, None if request.region else group, held)
    files = [v for v in (request.from_nnunet, request.test_ids) if v and Path(v).is_file()]
    return SplitResult(source, assignment, keys, counts, class_map, record, inputs + files)


def _open_source(request: SplitRequest, warn: Warn) -> tuple[Manifest, list[str]]:
    """The manifest to split, and the inputs to record in the provenance."""
    threshold = request.mask_threshold
    if request.folders is not None:
        source, without_mask = manifest_from_folders(request.folders, request.class_map, threshold)
        _left_out(warn, "image(s) of class folders without a mask", without_mask)
        inputs = [str(request.folders.images)]
        return source, inputs + ([str(request.folders.masks)] if request.folders.masks else [])
    if request.from_dir is None or request.masks is None:
        assert request.manifest is not None
        source, inputs = read_manifest(request.manifest), [request.manifest]
    else:
        source, images_only, masks_only = manifest_from_dirs(
            request.from_dir, request.masks, request.mask_suffix
        )
        _left_out(warn, "image(s) without a mask", images_only)
        _left_out(warn, "mask(s) without an image", masks_only)
        inputs = [request.from_dir, request.masks]
    return (source if threshold is None else binarised(source, threshold)), inputs


def _left_out(warn: Warn, what: str, names: list[str]) -> None:
    if names:
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        warn(f"{len(names)} {what}, left out: {', '.join(names[:5])}{more}")


# Without a class map, classes are numbered up to the largest label found; a mask with more
# values than this is grey levels (soft 0–255 edges), not that many unnamed classes.
MAX_NUMBERED = 32


def _check_numbered(
    source: Manifest, counts: np.ndarray | None, class_map: ClassMap | None
) -> None:
    """Refuse soft masks taken for a many-class problem: labels up to 254 (255 is the ignore
    index) and no class map naming them."""
    if class_map is not None or counts is None or counts.shape[1] <= MAX_NUMBERED:
        return
    present = np.flatnonzero(counts.sum(axis=0))
    raise TinysegError(
        f"{source.name}: masks hold {present.size} distinct labels up to {int(present[-1])} "
        "and no class map names them: soft 0–255 masks? binarise them with --mask-threshold "
        "128 (pixels >= 128 are foreground), or name the classes with --classes"
    )


def group_column(source: Manifest, group: str | None, mode: str) -> str | None:
    """``group``, else the manifest's ``group`` column when it has one, else None (each
    sample alone). Keeping a table's split uses the group column its record names."""
    columns = source.table.column_names
    if group is None and mode == "keep":
        record = source.metadata.get("split")
        if isinstance(record, dict) and "group" in record:
            group = record["group"]
            return group if group in columns else None
    if group is None:
        return "group" if "group" in columns else None
    if group not in columns:
        raise TinysegError(
            f"{source.name}: no column {group!r} for --group (columns: {', '.join(columns)})"
        )
    return group


def parse_test_ids(text: str) -> list[str]:
    """``--test-ids``: ``a,b``, or a file with one id per line (``#`` starts a comment)."""
    path = Path(text)
    if path.is_file():
        lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
        ids = [line for line in lines if line]
    else:
        ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise TinysegError(f"--test-ids {text!r}: names no group")
    return ids


def _assignment(
    request: SplitRequest,
    source: Manifest,
    keys: list[str],
    held: set[str],
    counts: np.ndarray | None,
    warn: Warn,
) -> Assignment:
    if request.mode in ("ratios", "folds"):
        return assign(keys, request.plan, held, counts)
    if request.mode == "nnunet":
        assert request.from_nnunet is not None
        splits = read_splits(request.from_nnunet)
        found, unlisted = assignment_from_splits(splits, source.sample_ids, request.from_nnunet)
        if unlisted:
            more = " …" if len(unlisted) > 5 else ""
            warn(
                f"{len(unlisted)} sample(s) not in {request.from_nnunet}, set to test: "
                f"{', '.join(unlisted[:5])}{more}"
            )
        return found
    return assignment_from_table(source.table, source.name)


def split_record(
    request: SplitRequest, source: Manifest, group: str | None, held: set[str]
) -> dict[str, Any]:
    """How the split was made, stored as the ``tinyseg.split`` metadata of the table.

    ``group`` is kept even when None: ``split --check`` reads it (a region split names no
    group, as its groups cross splits on purpose).
    """
    if request.mode == "keep":
        found = source.metadata.get("split")
        record = dict(found) if isinstance(found, dict) else {"mode": "table", "group": group}
        if request.fold is not None:
            record["fold"] = request.fold
        return record
    plan = request.plan
    randomised = request.mode in ("ratios", "folds")
    given = {
        "ratios": list(plan.ratios) if plan.ratios and request.mode == "ratios" else None,
        "folds": plan.folds if request.mode == "folds" else None,
        "val_fraction": plan.val_fraction if request.mode == "folds" else None,
        "region": None if request.region is None else "{}:{:g}".format(*request.region),
        "stratify": True if plan.stratify and randomised else None,
        "seed": plan.seed if randomised else None,
        "test_ids": sorted(held) or None,
        "fold": request.fold,
        "nnunet": request.from_nnunet,
    }
    return {
        "mode": request.mode,
        "group": group,
        **{k: v for k, v in given.items() if v is not None},
    }
