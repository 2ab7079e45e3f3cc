"""``overlay`` end to end: gather each sample's image, truth and prediction by sample id, check
them and every output before any work, draw the samples over worker processes, and write the
gallery (SPEC §4.9). A run that fails part way removes the files it wrote (SPEC §9)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.atomic import atomic_path, check_outputs
from tinyseg_cli.io.image_rows import check_roi, image_size
from tinyseg_cli.io.paths import check_file_name, name_limit
from tinyseg_cli.io.sources import MapRef, resolve_maps
from tinyseg_cli.io.tables import is_table_path
from tinyseg_cli.review import layout
from tinyseg_cli.review.gallery import gallery_html
from tinyseg_cli.review.sample import ReviewOptions, ReviewSample, SampleSummary, render_sample
from tinyseg_cli.runtime.parallel import parallel_map
from tinyseg_cli.scoring.pairs import pair_maps

SHOWN = 5  # sample names an error lists


def _is_table(spec: str) -> bool:
    return spec == "-" or (is_table_path(spec) and Path(spec).is_file())


def _single_file(spec: str) -> bool:
    return Path(spec).is_file() and not is_table_path(spec)


def _names(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def gather_samples(
    image: str, truth: str, pred: str, split: str | None = None, missing: str = "error"
) -> tuple[list[ReviewSample], dict[str, list[str]]]:
    """Samples with an image, a truth and a prediction, by sample id (stem or manifest
    ``sample_id``; three single files pair whatever their names), and the ids skipped for
    lack of one of them (``missing`` ``skip``; ``error`` stops instead). ``split`` keeps
    the rows of that split of whichever of ``image`` and ``truth`` is a manifest."""
    if split is not None and not (_is_table(image) or _is_table(truth)):
        raise UsageError(f"--split {split}: neither --image nor --truth is a manifest table")
    truths = resolve_maps(truth, columns=("mask",), split=split if _is_table(truth) else None)
    preds = resolve_maps(pred, columns=("prediction", "mask"))
    images = resolve_maps(
        image, columns=("image",), split=split if _is_table(image) else None, images=True
    )
    single = _single_file(truth) and _single_file(pred)
    pairing = pair_maps(truths, preds, missing, single)  # type: ignore[arg-type]
    if single and _single_file(image):
        only = pairing.pairs[0].sample_id
        images = {only: MapRef(only, next(iter(images.values())).path)}
    samples, no_image = [], []
    for pair in pairing.pairs:
        found = images.get(pair.sample_id)
        if found is None:
            no_image.append(pair.sample_id)
        else:
            samples.append(ReviewSample(pair.sample_id, found, pair.truth, pair.pred))
    if no_image and missing == "error":
        raise TinysegError(
            f"--image {image}: no image for {len(no_image)} sample(s): {_names(no_image)} "
            "(pass --missing skip to draw the rest)"
        )
    if not samples:
        raise TinysegError("no sample has an image, a ground truth and a prediction")
    skipped = {"prediction": pairing.truth_only, "ground truth": pairing.pred_only}
    return samples, {**skipped, "image": no_image}


def planned_outputs(
    samples: Sequence[ReviewSample], out_dir: Path, options: ReviewOptions
) -> list[Path]:
    """Every file the run may write: the gallery and each sample's pictures."""
    names = [layout.INDEX]
    for sample in samples:
        names += layout.sample_files(sample.sample_id, options.crops, options.panel)
    return [out_dir / name for name in names]


def check_run(
    samples: Sequence[ReviewSample],
    out_dir: Path,
    options: ReviewOptions,
    force: bool,
    sources: dict[str, str | None],
) -> list[Path]:
    """Before any work: sample ids can name the output files, every image header is
    readable (and holds its ROI), and no output exists (without ``force``) or is an input
    (``sources``: option -> path as given, such as ``--image`` or ``--classes``). The
    outputs planned."""
    limit = name_limit(out_dir)
    longest = f"_{options.crops}.png" if options.crops else ".png"
    for sample in samples:
        check_file_name(sample.sample_id, sample.truth.where, longest, limit)
    for sample in samples:
        height, width = image_size(sample.image.path)
        check_roi(sample.image.roi, height, width, sample.image.path)
    planned = planned_outputs(samples, out_dir, options)
    files = {
        "--image": [s.image.path for s in samples],
        "--truth": [s.truth.path for s in samples],
        "--pred": [s.pred.path for s in samples],
    }
    inputs = {
        option: [*filter(None, [spec]), *files.get(option, [])] for option, spec in sources.items()
    }
    check_outputs({"-o": planned}, force, inputs)
    return planned


@contextlib.contextmanager
def removed_on_failure(out_dir: Path, planned: Sequence[Path]) -> Iterator[None]:
    """When the body fails (Ctrl-C too), remove the planned files and the subfolders that
    were not there before it, so a failed run leaves nothing half done behind."""
    before = {path for path in planned if os.path.lexists(path)}
    folders = [out_dir / name for name in layout.FOLDERS if not os.path.lexists(out_dir / name)]
    try:
        yield
    except BaseException:
        for path in planned:
            if path not in before:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
        for folder in folders:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never another tool's files
        raise


def draw_samples(
    samples: Sequence[ReviewSample],
    out_dir: Path,
    options: ReviewOptions,
    jobs: int = 1,
    on_done: Callable[[SampleSummary], None] | None = None,
) -> list[SampleSummary]:
    """Draw every sample (over ``jobs`` worker processes), in sample order."""
    draw = partial(render_sample, out_dir=out_dir, options=options)
    return parallel_map(draw, list(samples), jobs, on_done)


def write_gallery(
    summaries: Sequence[SampleSummary], out_dir: Path, options: ReviewOptions
) -> Path:
    """``OUT_DIR/index.html``, written atomically."""
    notes = [
        "Sorted by object recall (ascending), then pixel F2 (ascending): worst first; samples "
        "without true objects come after the others.",
        f"Objects: connected components per class ({options.objects.connectivity}-"
        f"connectivity), matched one to one by '{options.objects.rule}' as in "
        "'tinyseg score --objects'. Counts are over the foreground classes.",
        "Pictures larger than the view are shrunk with their error pixels max-pooled: a "
        "block holding one error pixel shows it.",
    ]
    if options.counting.ignore_index is not None:
        notes.append(f"Truth label {options.counting.ignore_index} is ignored (not drawn).")
    if options.class_names:
        notes.append("Classes: " + ", ".join(options.class_names) + ".")
    text = gallery_html(summaries, notes, options.thumb_size, options.outlines)
    target = out_dir / layout.INDEX
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return target
