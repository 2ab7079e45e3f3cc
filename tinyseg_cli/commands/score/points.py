"""The 3D side of ``tinyseg score``: per-point inputs (LAS/LAZ or tables) to counts, with the
label map and class map they carry (SPEC §4.7, §5)."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from tinyseg_cli.cli import console
from tinyseg_cli.commands.score.point_counts import PointOptions, count_scenes, pair_scenes
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.label_map import LabelMap, label_map_from_metadata, parse_label_map
from tinyseg_cli.io.points import IGNORE, is_point_input, open_points, point_table_metadata
from tinyseg_cli.runtime.parallel import shard
from tinyseg_cli.scoring.counts import CountsSet, counts_from_matrices

MODALITY = "points"
CONVENTION = (
    "3D benchmark convention: OA = sum of TP / labelled points and mIoU = mean IoU over all "
    "classes; micro and macro average every class too unless --foreground-only"
)


@dataclass
class PointInputs:
    """How ``score`` reads per-point inputs, and what it left out on the way."""

    truth_dim: str | None
    pred_dim: str | None
    las_truth_dim: str | None  # the dimension voxelize read the labels from, if recorded
    options: PointOptions
    jobs: int
    part: tuple[int, int]
    without_prediction: int = 0
    without_truth: int = 0
    skipped_scenes: list[str] = field(default_factory=list)

    def report(self) -> dict[str, object]:
        """What the JSON summary and table metadata say about 3D scoring."""
        return {
            "modality": MODALITY,
            "convention": CONVENTION,
            "skipped_points": {
                "without_prediction": self.without_prediction,
                "without_truth": self.without_truth,
            },
        }


def any_point_input(specs: list[str | None]) -> bool:
    """Whether the inputs are per-point labels (3D) rather than 2D maps."""
    return any(is_point_input(spec) for spec in specs)


def check_point_usage(
    split: str | None,
    palette: str | None,
    threshold: float | None,
    pred_palette: str | None,
    pred_classes: str | None,
) -> None:
    """2D-only options given with 3D inputs: a usage error."""
    given = {
        "--split": split,
        "--palette": palette,
        "--threshold": threshold,
        "--pred-palette": pred_palette,
        "--pred-classes": pred_classes,
    }
    for name, value in given.items():
        if value is not None:
            raise typer.BadParameter(f"{name} applies to 2D maps, not to per-point labels")


def check_map_usage(truth_dim: str | None, pred_dim: str | None, label_map: str | None) -> None:
    """3D-only options given with 2D inputs: a usage error."""
    for name, value in (("--truth-dim", truth_dim), ("--pred-dim", pred_dim)):
        if value is not None:
            raise typer.BadParameter(f"{name} applies to per-point labels (LAS or tables)")
    if label_map is not None:
        raise typer.BadParameter("--label-map applies to LAS/LAZ point clouds")


def point_labels_map(
    spec: str | None, class_map: ClassMap | None, preds: list[str]
) -> tuple[LabelMap | None, ClassMap | None, dict[str, object]]:
    """The label map (``--label-map``, else the one the predictions table records), the class
    map completed from it, and the voxelize record found with the predictions."""
    recorded: dict[str, object] = {}
    for pred in preds:
        recorded = point_table_metadata(pred).get("voxelize") or {}
        if recorded:
            break
    label_map = None
    if spec is not None:
        label_map = parse_label_map(spec, class_map)
    elif recorded.get("label_map"):
        label_map = label_map_from_metadata(recorded["label_map"], class_map)  # type: ignore[arg-type]
    if class_map is None and label_map is not None:
        class_map = label_map.names
        if class_map is None and (label_map.indices >= 0).any():
            class_map = ClassMap.numbered(int(label_map.indices.max()) + 1)
    return label_map, class_map, recorded


def point_inputs(
    dims: tuple[str | None, str | None],
    label_map: str | None,
    class_map: ClassMap | None,
    preds: list[str],
    ignore_index: int | None,
    missing: str,
    jobs: int,
    part: tuple[int, int],
) -> tuple[PointInputs, ClassMap | None]:
    """How every per-point pair of this call is read: ``dims`` (``--truth-dim``,
    ``--pred-dim``), the label map; and the class map completed from the label map."""
    found_map, class_map, recorded = point_labels_map(label_map, class_map, preds)
    options = PointOptions(
        n_classes=len(class_map) if class_map else None,
        label_map=found_map,
        missing=missing,  # type: ignore[arg-type]
        ignore_index=IGNORE if ignore_index is None else ignore_index,
    )
    recorded_dim = recorded.get("label_dim")
    las_truth_dim = recorded_dim if isinstance(recorded_dim, str) else None
    return PointInputs(*dims, las_truth_dim, options, jobs, part), class_map


def count_points(truth: str | None, pred: str, inputs: PointInputs) -> CountsSet:
    """Counts per scene of one prediction source against the truth."""
    if truth is None:
        raise typer.BadParameter("--run with per-point predictions needs --truth")
    truth_source = open_points(truth, inputs.truth_dim, "truth", inputs.las_truth_dim)
    pred_source = open_points(pred, inputs.pred_dim, "prediction")
    pairing = pair_scenes(truth_source, pred_source, inputs.options.missing)
    for side, names in (("prediction", pairing.truth_only), ("ground truth", pairing.pred_only)):
        if names:
            console.warn(f"skipped {len(names)} scene(s) with no {side}: {', '.join(names[:5])}")
            inputs.skipped_scenes += names
    pairs = shard(pairing.pairs, *inputs.part)
    if not pairs:
        raise TinysegError(f"shard {inputs.part[0]}/{inputs.part[1]} holds no scene")
    with console.progress(f"scoring {pred}", len(pairs)) as advance:
        scenes = count_scenes(pairs, inputs.options, inputs.jobs, lambda done: advance(done.scene))
    without_prediction = sum(scene.without_prediction for scene in scenes)
    without_truth = sum(scene.without_truth for scene in scenes)
    if without_prediction or without_truth:
        console.warn(
            f"{pred}: skipped {without_prediction} point(s) without a prediction and "
            f"{without_truth} prediction(s) without a ground truth"
        )
    inputs.without_prediction += without_prediction
    inputs.without_truth += without_truth
    matrices = [(scene.scene, scene.matrix) for scene in scenes]
    return counts_from_matrices(matrices, inputs.options.n_classes)
