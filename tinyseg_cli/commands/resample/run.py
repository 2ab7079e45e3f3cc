"""``resample`` end to end: a patch table drawn from the training rows of a manifest
(SPEC §4.2).

Two passes over the masks keep memory bounded by one mask: a survey (per sample: pixels
and number of candidate patches of each class) and, once the draws are made, a resolve
pass (per sample: the drawn ranks become patch positions and per-class pixel counts).
Every random number is drawn in the parent process, in a fixed order, from
``default_rng([seed, draw])``, so the table does not depend on ``--jobs``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.commands.resample.survey import Sample, Settings, Surveys, read_labels
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.prep.patches import (
    HANDFUL,
    PixelBalancer,
    Quota,
    draw_quota,
    draw_ranks,
    fixed_quotas,
    place_patches,
)
from tinyseg_cli.runtime.parallel import parallel_map

FIRST_POOL = 16  # smallest batch of equal-pixels patches (a handful of candidates each) per class


@dataclass(frozen=True)
class Options:
    """What to draw (SPEC §4.2); ``targets`` are class indices."""

    strategy: str
    samples: int = 100
    draws: int = 1
    per_image: bool = False
    seed: int = 0
    targets: tuple[int, ...] = ()
    proportions: tuple[float, ...] | None = None
    tolerance: float = 0.10
    max_patches: int | None = None
    positive_fraction: float = 0.5
    handful: int = HANDFUL  # equal-pixels: candidates per patch (1: uniform draws)


# Peak bytes per patch row on top of its class counts and path texts: the draw arrays,
# their placement, sort orders and the table's numeric columns (measured ~290 bytes a row
# with 2 classes and 26 characters of paths).
ROW_BYTES = 256


def patch_rows(options: Options, n_targets: int, n_images: int) -> int:
    """Rows of the patch table ``options`` ask for (equal-pixels: at least), given the
    classes drawn for and the images (with ``per_image``)."""
    rows = options.samples * options.draws
    if options.strategy == "equal-samples":
        rows *= max(1, n_targets)
    return rows * (n_images if options.per_image else 1)


def memory_needed(rows: int, n_classes: int, path_chars: int) -> int:
    """Bytes that drawing and writing ``rows`` patches takes at its peak, about."""
    return rows * (ROW_BYTES + 24 * n_classes + 2 * path_chars)


def physical_memory() -> int | None:
    """The machine's memory in bytes, when the system says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_targets(strategy: str, n_classes: int) -> tuple[int, ...]:
    """Classes drawn for when no ``--class`` is given: every class for equal-samples, the
    foreground (1 …) for equal-pixels, none for random."""
    if strategy == "equal-samples":
        return tuple(range(n_classes))
    if strategy == "equal-pixels":
        return tuple(range(1, n_classes))
    return ()


_ARRAYS = ("image", "selector", "negate", "rank", "draw", "target", "ys", "xs", "pixels")


@dataclass
class Patches:
    """Drawn patches, one entry each: the sample (index), what it was drawn among
    (``selector`` a class, −1 every patch; ``negate``: the patches without it), its rank
    there, the draw and the target class; once resolved, its top-left corner in ROI
    coordinates and its pixels per class."""

    image: np.ndarray
    selector: np.ndarray
    negate: np.ndarray
    rank: np.ndarray
    draw: np.ndarray
    target: np.ndarray
    ys: np.ndarray | None = None
    xs: np.ndarray | None = None
    pixels: np.ndarray | None = None  # (patches, classes)
    spreads: list[float] | None = None  # equal-pixels: final spread of each draw

    @classmethod
    def of_quota(cls, quota: Quota, images: np.ndarray, ranks: np.ndarray, draw: int) -> Patches:
        k = images.size
        return cls(
            images,
            np.full(k, quota.selector),
            np.full(k, quota.negate),
            ranks,
            np.full(k, draw),
            np.full(k, quota.target),
        )

    @classmethod
    def concat(cls, parts: list[Patches]) -> Patches:
        arrays = {}
        for name in _ARRAYS:
            values = [getattr(part, name) for part in parts]
            arrays[name] = None if values[0] is None else np.concatenate(values)
        return cls(**arrays)

    def take(self, rows: slice | np.ndarray) -> Patches:
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        return Patches(**{k: None if v is None else v[rows] for k, v in arrays.items()})


def _pool_sizes(surveys: Surveys, quota: Quota) -> np.ndarray:
    if quota.selector < 0:
        return surveys.positions
    have = surveys.candidates[:, quota.selector]
    return surveys.positions - have if quota.negate else have


def check_feasible(surveys: Surveys, class_map: ClassMap, options: Options, size: int) -> None:
    """A class drawn for must have a candidate somewhere (binary: a patch without it too),
    and some pixel must be labelled (patches of ignored pixels train nothing)."""
    if not surveys.pixels.any():
        raise TinysegError(
            f"no labelled pixel in the {len(surveys.pixels)} training rows: every mask pixel "
            "(inside the ROIs) is the ignore label"
        )
    for c in options.targets:
        if not surveys.candidates[:, c].any():
            raise TinysegError(
                f"class {class_map.name(c)!r} has no candidate: no {size}×{size} patch "
                "inside the training ROIs holds a pixel of it"
            )
    if options.strategy == "binary" and options.positive_fraction < 1:
        c = options.targets[0]
        if not (surveys.positions - surveys.candidates[:, c]).any():
            raise TinysegError(
                f"every patch holds class {class_map.name(c)!r}: no negative patch to draw"
            )


def plan_draw(surveys: Surveys, options: Options, draw: int) -> Patches:
    """The patches of one draw of a fixed-count strategy, not yet placed."""
    rng = _rng(options, draw)
    parts = []
    for quota in fixed_quotas(
        options.strategy,
        options.samples,
        options.targets,
        options.proportions,
        options.positive_fraction,
    ):
        sizes = _pool_sizes(surveys, quota)
        images, ranks = draw_quota(sizes, quota.count, rng, options.per_image)
        parts.append(Patches.of_quota(quota, images, ranks, draw))
    return Patches.concat(parts)


@dataclass(frozen=True)
class Requests:
    """The patches to place in one sample: what each was drawn among, and its rank there."""

    sample: Sample
    selector: np.ndarray
    negate: np.ndarray
    rank: np.ndarray


def resolve_sample(
    requests: Requests, settings: Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-left (y, x) in ROI coordinates and pixels per class of each requested patch."""
    labels = read_labels(requests.sample, settings)
    return place_patches(
        labels,
        requests.selector,
        requests.negate,
        requests.rank,
        settings.size,
        settings.n_classes or 0,
        settings.ignore_index,
    )


Progress = Callable[[str, int], Any]  # console.progress: (description, total) -> context


def resolve(
    samples: list[Sample],
    patches: Patches,
    settings: Settings,
    jobs: int = 1,
    progress: Progress | None = None,
) -> Patches:
    """Place and count drawn patches, one task per sample that has any, over ``jobs``
    worker processes."""
    image = patches.image
    order = np.argsort(image, kind="stable")
    starts = np.flatnonzero(np.diff(image[order])) + 1
    groups = [g for g in np.split(order, starts) if g.size]
    tasks = [
        Requests(samples[int(image[g[0]])], patches.selector[g], patches.negate[g], patches.rank[g])
        for g in groups
    ]
    work = partial(resolve_sample, settings=settings)
    with progress("placing patches", len(tasks)) if progress else nullcontext() as advance:
        results = parallel_map(work, tasks, jobs, advance)
    ys = np.zeros(image.size, np.int64)
    xs = np.zeros(image.size, np.int64)
    pixels = np.zeros((image.size, settings.n_classes or 0), np.int64)
    for group, (group_ys, group_xs, group_pixels) in zip(groups, results, strict=True):
        ys[group], xs[group], pixels[group] = group_ys, group_xs, group_pixels
    return replace(patches, ys=ys, xs=xs, pixels=pixels)


def _rng(options: Options, draw: int) -> np.random.Generator:
    return np.random.default_rng([options.seed, draw])


def draw_patches(
    samples: list[Sample],
    surveys: Surveys,
    options: Options,
    settings: Settings,
    jobs: int = 1,
    progress: Progress | None = None,
) -> Patches:
    """Every draw of the strategy, placed and counted."""
    if options.strategy == "equal-pixels":
        return _equal_pixels(samples, surveys, options, settings, jobs, progress)
    plans = [plan_draw(surveys, options, d) for d in range(options.draws)]
    return resolve(samples, Patches.concat(plans), settings, jobs, progress)


def _equal_pixels(
    samples: list[Sample],
    surveys: Surveys,
    options: Options,
    settings: Settings,
    jobs: int,
    progress: Progress | None,
) -> Patches:
    """Greedy equal-pixels per draw (:class:`PixelBalancer`) over pools of resolved
    candidates per class, ``handful`` a patch; every draw advances together, so one resolve
    pass serves all of them, and a class's pool that runs dry gets as many patches' worth
    as it has given. Only the candidates taken are kept: the pools hold the unused ones."""
    cap = options.max_patches or 100 * options.samples
    handful = options.handful
    balancers = [
        PixelBalancer(
            options.targets,
            settings.n_classes or 0,
            options.tolerance,
            options.samples,
            cap,
            handful,
        )
        for _ in range(options.draws)
    ]
    rngs = [_rng(options, d) for d in range(options.draws)]
    pools: dict[tuple[int, int], Patches] = {}
    taken: list[Patches] = []
    first = min(cap, max(FIRST_POOL, math.ceil(options.samples / len(options.targets))))
    wanted = [(d, c, first) for d in range(options.draws) for c in options.targets]
    while wanted:
        batch = [
            Patches.of_quota(
                Quota(c, False, c, k * handful),
                *draw_ranks(surveys.candidates[:, c], k * handful, rngs[d]),
                d,
            )
            for d, c, k in wanted
        ]
        placed = resolve(samples, Patches.concat(batch), settings, jobs, progress)
        start = 0
        for d, c, k in wanted:
            part = placed.take(slice(start, start + k * handful))
            pools[d, c] = Patches.concat([pools[d, c], part]) if (d, c) in pools else part
            start += k * handful
        wanted = []
        for d, balancer in enumerate(balancers):
            need = balancer.feed({c: pools[d, c].pixels for c in options.targets})
            for c, rows in balancer.picks.items():
                taken.append(pools[d, c].take(np.asarray(rows, np.int64)))
                pools[d, c] = pools[d, c].take(slice(len(rows) * handful, None))
            if need is not None:
                more = min(max(first, balancer.drawn[need]), cap - balancer.patches)
                wanted.append((d, need, more))
    return replace(Patches.concat(taken), spreads=[b.spread for b in balancers])


def patch_table(
    samples: list[Sample],
    patches: Patches,
    class_map: ClassMap,
    size: int,
    path_text: Callable[[Path], str],
) -> pa.Table:
    """The patch table of SPEC §3, in (draw, sample, y, x) order, image coordinates."""
    assert patches.ys is not None and patches.xs is not None and patches.pixels is not None
    order = np.lexsort((patches.target, patches.xs, patches.ys, patches.image, patches.draw))
    image = patches.image[order]
    origin = np.array([(s.roi or (0, 0))[:2] for s in samples], np.int64).reshape(-1, 2)
    columns: dict[str, pa.Array] = {
        "sample_id": pa.array([samples[i].sample_id for i in image.tolist()], pa.string()),
        "image": pa.array([path_text(samples[i].image) for i in image.tolist()], pa.string()),
        "mask": pa.array([path_text(samples[i].mask) for i in image.tolist()], pa.string()),
        "y": pa.array(patches.ys[order] + origin[image, 0], pa.int64()),
        "x": pa.array(patches.xs[order] + origin[image, 1], pa.int64()),
        "h": pa.array(np.full(order.size, size), pa.int32()),
        "w": pa.array(np.full(order.size, size), pa.int32()),
        "draw": pa.array(patches.draw[order], pa.int32()),
        "target_class": pa.array(patches.target[order], pa.int32()),
    }
    for c, name in enumerate(class_map.names):
        columns[f"px_{name}"] = pa.array(patches.pixels[order, c], pa.int64())
    return pa.table(columns)
