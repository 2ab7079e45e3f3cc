"""``train``'s command line → :class:`~tinyseg_cli.commands.train.config.TrainOptions`:
the conversion, the checks that need the parsed options (the modality's own options, loss
hyper-parameters, augmentations) and ``--resume``, which takes a run's stored options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from tinyseg_cli.cli import console
from tinyseg_cli.commands.train.common import parse_select
from tinyseg_cli.commands.train.config import TrainOptions
from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.checkpoint import Checkpoint, load_checkpoint
from tinyseg_cli.io.voxels import voxel_table_path
from tinyseg_cli.losses.names import LOSS_NAMES
from tinyseg_cli.models.build import SPARSE_UNET
from tinyseg_cli.runtime.parallel import default_jobs

# Options that may change when a run is resumed; the others come from the checkpoint.
RESUMABLE = ("epochs", "iterations", "device", "workers")
# Loss hyper-parameters among the options (``loss_params`` of the run).
LOSS_OPTIONS = (
    "alpha",
    "beta",
    "gamma",
    "focal_lambda",
    "theta",
    "smooth",
    "gamma_ce",
    "gamma_dice",
    "gamma_tversky",
    "loss_classes",
)
# Options copied as they are into TrainOptions.
PASSED_THROUGH = (
    "arch",
    "encoder",
    "encoder_weights",
    "in_channels",
    "classes",
    "palette",
    "ignore_index",
    "binary",
    "class_weights",
    "fold",
    "patches",
    "refresh_every",
    "patch_size",
    "patches_per_image",
    "augment",
    "loss",
    "optimizer",
    "lr",
    "weight_decay",
    "momentum",
    "schedule",
    "lr_decay",
    "decay_every",
    "iterations",
    "batch_size",
    "checkpoint_every",
    "val_every",
    "select",
    "max_pixels",
    "seed",
    "device",
    "amp",
    "distributed",
)
# 3D options, absent from the options of commands that pass train's through (tune-oii).
SPARSE_PASSED = ("aspp", "sparse_backend")
# Comma-separated lists of the 3D options: (option, element type).
LISTS = (("features", str), ("channels", int), ("aspp_dilations", int))
# Parameters that shape no training, so --resume takes them without a warning.
NOT_TRAINING = ("resume", "output", "manifest", "verbose", "quiet", "force", "json_")


def train_options(values: Mapping[str, Any], run_dir: str) -> TrainOptions:
    """The options of a run from the parsed command line (``train``, and every step of
    ``tune-oii``, which passes these options through); bad loss values fail here."""
    from tinyseg_cli.data.augment import parse_augment
    from tinyseg_cli.losses import LOSSES, resolve_params

    v = dict(values)
    if v["epochs"] is not None and v["iterations"] is not None:
        raise typer.BadParameter("give --epochs or --iterations, not both")
    parse_select(v["select"])
    if v["loss"] not in LOSSES:
        raise typer.BadParameter(
            f"{v['loss']!r} is not one of {', '.join(LOSS_NAMES)}", param_hint="--loss"
        )
    if v["class_weights"] and LOSSES[v["loss"]].class_weights == "unused":
        console.warn(f"loss {v['loss']} does not use class weights; --class-weights is ignored")
    lists = {name: _comma_list(v.get(name), kind, name) for name, kind in LISTS}
    params = {name: v[name] for name in LOSS_OPTIONS}
    if params["loss_classes"]:
        params["loss_classes"] = params["loss_classes"].split(",")
    epochs, iterations = v["epochs"], v["iterations"]
    options = TrainOptions(
        **{name: v[name] for name in PASSED_THROUGH},
        manifest=v["manifest"],
        run_dir=run_dir,
        loss_params={k: value for k, value in params.items() if value is not None},
        epochs=epochs if epochs or iterations else 10,
        workers=max(0, default_jobs() - 1) if v["workers"] is None else v["workers"],
        resize=tuple(v["resize"]) if v["resize"] else None,
        **{name: value for name, value in lists.items() if value is not None},
        **{name: v[name] for name in SPARSE_PASSED if name in v},
    )
    try:
        resolve_params(options.loss, options.loss_params)  # bad values fail before any work
    except TinysegError as error:  # a hyper-parameter out of its loss's range
        raise UsageError(str(error)) from None
    try:
        parse_augment(options.augment)
    except TinysegError as error:
        raise UsageError(f"--augment: {error}") from None
    return options


def _comma_list(text: str | None, kind: type, name: str) -> tuple | None:
    """``--channels 32,64`` → (32, 64); a bad element is a usage error."""
    if text is None:
        return None
    try:
        values = tuple(kind(item.strip()) for item in str(text).split(",") if item.strip())
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers, found {text!r}",
            param_hint="--" + name.replace("_", "-"),
        ) from None
    if not values or (kind is int and min(values) < 1):
        raise typer.BadParameter(
            f"expected a non-empty comma-separated list, found {text!r}",
            param_hint="--" + name.replace("_", "-"),
        )
    return values


def is_default(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is None or source.name != "COMMANDLINE"


IMAGE_ONLY = (
    "encoder", "encoder_weights", "in_channels", "fold", "patches", "refresh_every",
    "patch_size", "patches_per_image", "resize", "augment", "max_pixels", "binary",
)  # fmt: skip
VOXEL_ONLY = ("features", "channels", "aspp", "aspp_dilations", "sparse_backend")


def check_modality_options(ctx: typer.Context, voxels: bool) -> None:
    """An option of the other modality given on the command line is a usage error, not
    silently ignored (e.g. --augment on a voxel table, --channels on an image manifest)."""
    for name in IMAGE_ONLY if voxels else VOXEL_ONLY:
        if name in ctx.params and not is_default(ctx, name):
            raise typer.BadParameter(
                "for image manifests only; a voxel table trains the sparse U-Net without it"
                if voxels
                else "for voxel tables only (3D); the input is an image manifest",
                param_hint="--" + name.replace("_", "-"),
            )
    if not voxels and str(ctx.params.get("arch", "")).lower() == SPARSE_UNET:
        raise typer.BadParameter(
            f"{SPARSE_UNET} trains on voxel tables ('tinyseg voxelize'); MANIFEST is an "
            "image manifest (2D networks: unet, half-unet, …)",
            param_hint="--arch",
        )


def is_voxel_input(manifest: str) -> bool:
    """Whether MANIFEST is a voxel table (3D) or the folder ``voxelize`` wrote one to."""
    return voxel_table_path(manifest) is not None


def _check_same_input(given: str, stored: str, config: dict[str, Any], run_dir: str) -> None:
    """--resume continues a run on its own input: a voxel table for a 3D run, an image
    manifest for a 2D one, and the same file when both can be found."""
    run_3d = (config.get("input") or {}).get("modality") == "voxels"
    if is_voxel_input(given) != run_3d:
        kinds = (
            ("a 3D run (a voxel table)", "an image manifest")
            if run_3d
            else ("a 2D run (an image manifest)", "a voxel table")
        )
        raise UsageError(
            f"--resume: {run_dir} holds {kinds[0]}, but MANIFEST {given} is {kinds[1]}"
        )
    same = (
        os.path.samefile(given, stored)
        if os.path.exists(given) and os.path.exists(stored)
        else True
    )
    if not same:
        raise UsageError(
            f"--resume: {run_dir} was trained on {stored}, not on MANIFEST {given}; a run "
            "continues on its own input (start a new run with -o for another)"
        )


def resumed(ctx: typer.Context, options: TrainOptions) -> tuple[Checkpoint, TrainOptions]:
    """The options a run started with, and its last checkpoint; only RESUMABLE may change.
    MANIFEST must be the run's own: the same kind of input and the same file."""
    last = Path(options.run_dir) / "last.pt"
    if not last.is_file():
        raise TinysegError(f"{last}: nothing to resume (no last.pt in {options.run_dir})")
    checkpoint = load_checkpoint(last)
    stored = TrainOptions.from_config(checkpoint.config["train"])
    _check_same_input(options.manifest, stored.manifest, checkpoint.config, options.run_dir)
    changed = {}
    for name in RESUMABLE:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            changed[name] = getattr(options, name)
    if "iterations" in changed:  # a new length replaces the old one, of either kind
        changed["epochs"] = None
    elif "epochs" in changed:
        changed["iterations"] = None
    for key, value in changed.items():
        setattr(stored, key, value)
    ignored = [
        p.name
        for p in ctx.command.params
        if p.name not in (*RESUMABLE, *NOT_TRAINING)
        and (s := ctx.get_parameter_source(p.name)) is not None
        and s.name == "COMMANDLINE"
    ]
    if ignored:
        console.warn(f"--resume keeps the run's own options; ignoring {', '.join(ignored)}")
    return checkpoint, stored
