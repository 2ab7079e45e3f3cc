"""One sample of ``tinyseg overlay``: read its image, truth and prediction, count and match
them as ``score --objects`` does, and write its overlay, thumbnail, crops and panel."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.image_rows import check_roi
from tinyseg_cli.io.images import check_finite, read_pixels
from tinyseg_cli.io.png import write_png
from tinyseg_cli.io.rasters import LabelMap
from tinyseg_cli.io.sources import MapRef
from tinyseg_cli.metrics.counts import one_vs_rest
from tinyseg_cli.metrics.functional import fbeta, recall
from tinyseg_cli.metrics.objects import Matching, ObjectOptions, match_objects, object_counts
from tinyseg_cli.review import layout
from tinyseg_cli.review.crops import render_crop, worst_objects
from tinyseg_cli.review.legend import (
    LegendRow,
    caption_strip,
    legend_strip,
    stack,
    titles_strip,
)
from tinyseg_cli.review.render import (
    blend,
    block_max,
    block_mean,
    display_range,
    error_layers,
    label_colours,
    outline_mask,
    pool_factor,
    pool_labels,
    side_by_side,
    to_display,
    with_outline,
)
from tinyseg_cli.scoring.pairs import CountOptions, Pair, open_pair, pair_confusion

PANEL_GAP = 4  # pixels between the views of a panel
GAP_COLOUR = (96, 96, 96)  # lighter than the black of the label maps on either side
LEGEND_ALL_CLASSES = 8  # with more foreground classes, the legend lists only those present


@dataclass(frozen=True)
class ReviewOptions:
    """What ``tinyseg overlay`` draws, and how maps become labels and objects."""

    counting: CountOptions = field(default_factory=CountOptions)
    objects: ObjectOptions = field(default_factory=ObjectOptions)
    class_names: tuple[str, ...] = ()
    crops: int = 6
    max_size: int = 2048
    thumb_size: int = 256
    alpha: float = 0.7
    outlines: bool = False
    panel: bool = False


@dataclass(frozen=True)
class ReviewSample:
    """The image, truth and prediction of one sample."""

    sample_id: str
    image: MapRef
    truth: MapRef
    pred: MapRef


@dataclass(frozen=True)
class Crop:
    """A written crop: its name relative to OUT_DIR and what it shows."""

    name: str
    caption: str


@dataclass(frozen=True)
class SampleSummary:
    """What the gallery shows of a sample; per-class arrays are indexed by class."""

    sample_id: str
    shape: tuple[int, int]
    factor: int  # the overlay shows 1 pixel per factor × factor image pixels
    pixels: np.ndarray  # (K, 3): TP, FP, FN
    objects: np.ndarray  # (K, 3): true objects, matched, predicted objects
    crops: tuple[Crop, ...] = ()
    panel: bool = False

    def _foreground(self, table: np.ndarray, column: int) -> int:
        return int(table[1:, column].sum())

    @property
    def tp(self) -> int:
        return self._foreground(self.pixels, 0)

    @property
    def fp(self) -> int:
        return self._foreground(self.pixels, 1)

    @property
    def fn(self) -> int:
        return self._foreground(self.pixels, 2)

    @property
    def true_objects(self) -> int:
        return self._foreground(self.objects, 0)

    @property
    def missed(self) -> int:
        return self.true_objects - self._foreground(self.objects, 1)

    @property
    def false(self) -> int:
        return self._foreground(self.objects, 2) - self._foreground(self.objects, 1)

    @property
    def object_recall(self) -> float:
        """Detected / true objects over the foreground classes; NaN without true objects."""
        found = self._foreground(self.objects, 1)
        return float(recall(found, 0, self.true_objects - found, 0))

    @property
    def pixel_f2(self) -> float:
        """Pixel F2 over the foreground classes (micro, SPEC §5); NaN with no TP, FP or FN."""
        return float(fbeta(self.tp, self.fp, self.fn, 2.0))


def _read_image(sample: ReviewSample, truth: LabelMap) -> np.ndarray:
    """The image as stored, (H, W, 1 or 3), inside its ROI (or the truth's, when the image
    is full size), alpha dropped; it must match the truth's size."""
    path = sample.image.path
    raw = read_pixels(path)
    if raw.shape[2] not in (1, 3, 4) or raw.dtype.kind not in "buif":
        raise TinysegError(
            f"{path}: expected a grey, RGB or RGBA image, found shape {raw.shape} of {raw.dtype}"
        )
    roi = sample.image.roi
    if roi is None and truth.roi is not None and raw.shape[:2] == truth.full_shape:
        roi = truth.roi
    check_roi(roi, raw.shape[0], raw.shape[1], path)
    if roi is not None:
        raw = raw[roi[0] : roi[2], roi[1] : roi[3]]
    if raw.shape[:2] != truth.shape:
        raise TinysegError(
            f"shape mismatch: image {path} is {raw.shape[0]}×{raw.shape[1]}, truth "
            f"{sample.truth.path} is {truth.shape[0]}×{truth.shape[1]}"
        )
    if raw.dtype.kind == "f":
        check_finite(raw, path, (roi[0], roi[1]) if roi else (0, 0))
    return raw[:, :, :3]


def render_sample(sample: ReviewSample, out_dir: Path, options: ReviewOptions) -> SampleSummary:
    """Read, count, match and draw one sample; errors name the sample."""
    try:
        return _render(sample, out_dir, options)
    except TinysegError as error:
        prefix = f"sample {sample.sample_id}: "
        if str(error).startswith(prefix):
            raise
        raise TinysegError(f"{prefix}{error}") from None


@dataclass
class _Measured:
    """A sample read and counted: its image as stored, labels, layer map and objects."""

    summary: SampleSummary
    image: np.ndarray
    labels: tuple[np.ndarray, np.ndarray]
    layers: np.ndarray
    matching: Matching
    n_classes: int


def _measure(sample: ReviewSample, options: ReviewOptions) -> _Measured:
    """Open and check the three files, count pixels and objects, and find the error layers."""
    counting = options.counting
    pair = Pair(sample.sample_id, sample.truth, sample.pred)
    truth, pred = open_pair(pair, counting)
    image = _read_image(sample, truth)
    matrix = pair_confusion(pair, truth, pred, counting)
    height, width = truth.shape
    labels = (truth[0:height], pred[0:height])
    n_classes = max(matrix.shape[0], counting.n_classes or 0, 2)
    matching = match_objects(*labels, options.objects, counting.ignore_index)
    found = object_counts(matching, n_classes, options.objects.size_bins)
    tp, fp, fn, _ = one_vs_rest(_grown(matrix, n_classes))
    summary = SampleSummary(
        sample.sample_id,
        (height, width),
        pool_factor(height, width, options.max_size),
        np.stack([tp, fp, fn], axis=1),
        np.stack([found.true, found.matched, found.pred], axis=1),
        panel=options.panel,
    )
    layers = error_layers(*labels, counting.ignore_index)
    if options.outlines:
        layers = with_outline(layers, outline_mask(labels[0], _foreground(n_classes, counting)))
    return _Measured(summary, image, labels, layers, matching, n_classes)


def _foreground(n_classes: int, counting: CountOptions) -> list[int]:
    return [c for c in range(1, n_classes) if c != counting.ignore_index]


def _render(sample: ReviewSample, out_dir: Path, options: ReviewOptions) -> SampleSummary:
    measured = _measure(sample, options)
    summary, image, layers = measured.summary, measured.image, measured.layers
    foreground = _foreground(measured.n_classes, options.counting)
    display = display_range(image)
    factor = summary.factor
    base = to_display(block_mean(image, factor) if factor > 1 else image, *display)
    view_layers = block_max(layers, factor)
    overlay = blend(base, view_layers, options.alpha)
    legend = legend_strip(_title(summary), _legend_rows(summary, foreground, options))
    write_png(out_dir / layout.overlay_name(sample.sample_id), stack(overlay, legend))
    _write_thumb(out_dir / layout.thumb_name(sample.sample_id), base, view_layers, options)
    if options.panel:
        ignore = options.counting.ignore_index
        panel = _panel(base, measured.labels, factor, measured.n_classes, ignore)
        write_png(out_dir / layout.panel_name(sample.sample_id), panel)
    crops = []
    for number, target in enumerate(worst_objects(measured.matching, options.crops), 1):
        picture = render_crop(image, display, layers, target, options.alpha)
        y0, x0, y1, x1 = target.bbox
        caption = (
            f"{number}. {target.kind} {_class_name(options, target.class_index)}: "
            f"{target.area:,} px at y {_span(y0, y1)}, x {_span(x0, x1)}"
        )
        name = layout.crop_name(sample.sample_id, number)
        write_png(out_dir / name, stack(picture, caption_strip(caption, picture.shape[1])))
        crops.append(Crop(name, caption))
    return replace(summary, crops=tuple(crops))


def _span(start: int, stop: int) -> str:
    return str(start) if stop - start == 1 else f"{start}-{stop - 1}"


def _grown(matrix: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, size), np.int64)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def _class_name(options: ReviewOptions, index: int) -> str:
    names = options.class_names
    return names[index] if index < len(names) else f"class {index}"


def _title(summary: SampleSummary) -> str:
    recall_, f2 = summary.object_recall, summary.pixel_f2
    parts = [
        summary.sample_id,
        f"object recall {'n/a' if math.isnan(recall_) else f'{recall_:.3f}'}",
        f"pixel F2 {'n/a' if math.isnan(f2) else f'{f2:.3f}'}",
    ]
    if summary.factor > 1:
        parts.append(f"shown at 1:{summary.factor} (errors max-pooled)")
    return "  ·  ".join(parts)


def _legend_rows(
    summary: SampleSummary, foreground: list[int], options: ReviewOptions
) -> list[LegendRow]:
    """One row per foreground class (only those with pixels or objects when there are many)."""
    rows = []
    for style, index in enumerate(foreground):
        tp, fp, fn = (int(v) for v in summary.pixels[index])
        true, matched, predicted = (int(v) for v in summary.objects[index])
        if len(foreground) > LEGEND_ALL_CLASSES and not (tp or fp or fn or true or predicted):
            continue
        rows.append(
            LegendRow(
                _class_name(options, index),
                (tp, fp, fn),
                (true, true - matched, predicted - matched),
                style if options.outlines else None,
            )
        )
    return rows


def _write_thumb(path: Path, base: np.ndarray, layers: np.ndarray, options: ReviewOptions) -> None:
    """The overlay shrunk to ``thumb_size``, its errors max-pooled again."""
    factor = pool_factor(*base.shape[:2], options.thumb_size)
    small = to_display(block_mean(base, factor), 0.0, 255.0) if factor > 1 else base
    write_png(path, blend(small, block_max(layers, factor), options.alpha))


def _panel(
    base: np.ndarray,
    labels: tuple[np.ndarray, np.ndarray],
    factor: int,
    n_classes: int,
    ignore: int | None,
) -> np.ndarray:
    """Image | truth | prediction at the overlay's scale, titled."""
    views = [base] + [
        label_colours(pool_labels(side, factor, ignore), n_classes, ignore) for side in labels
    ]
    row = side_by_side(views, PANEL_GAP, GAP_COLOUR)
    widths = [view.shape[1] for view in views]
    return stack(titles_strip(["image", "truth", "prediction"], widths, PANEL_GAP), row)
