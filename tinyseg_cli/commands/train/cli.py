"""``tinyseg train``: train a 2D segmentation network on a split manifest, or the sparse 3D
U-Net on a voxel table (SPEC §4.5)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    FINITE,
    Classes,
    Device,
    Force,
    IgnoreIndex,
    Json,
    Palette,
    Quiet,
    Verbose,
    in_range,
)
from tinyseg_cli.commands.train import report as train_report
from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.atomic import check_distinct, check_output_dir, output_folder
from tinyseg_cli.losses.names import LOSS_NAMES
from tinyseg_cli.runtime.parallel import default_jobs

if TYPE_CHECKING:  # torch-heavy modules load when the command runs, not with every --help
    from tinyseg_cli.commands.train.image.plan import TrainOptions
    from tinyseg_cli.commands.train.loop import Trainer

EXAMPLES = """\
Examples:

  tinyseg train split.parquet --arch half-unet --patch-size 8 -b 4 -o run

  tinyseg train split.parquet --resume --epochs 12 -o run

  tinyseg train split.parquet --resize 64 64 --loss focal --dry-run --json
"""

RUN_FILES = ("last.pt", "best.pt", "log.parquet")
DATA = "Data"
MODEL = "Model and loss"
OPTIM = "Optimisation"
RUN = "Run"
SPARSE = "3D (voxel tables)"
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


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Train a 2D network (or the 3D sparse U-Net); checkpoints and a log in RUN_DIR.",
    )(train)


def train(
    ctx: typer.Context,
    manifest: Annotated[
        str,
        typer.Argument(
            help="Split manifest (column 'split': train/val rows; or 'fold' with --fold), or "
            "a voxel table of 'tinyseg voxelize' (or its folder) for the 3D network.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Run directory: last.pt, best.pt, step-N.pt, log.parquet.",
            metavar="RUN_DIR",
            show_default=False,
        ),
    ] = None,
    # -- data ------------------------------------------------------------------------------
    fold: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Cross-validation fold: its rows validate, the other folds train.",
            rich_help_panel=DATA,
        ),
    ] = None,
    patches: Annotated[
        str | None,
        typer.Option(
            help="Patch table of 'tinyseg resample'; draw d trains epochs d·E…",
            rich_help_panel=DATA,
            metavar="TABLE",
        ),
    ] = None,
    refresh_every: Annotated[
        int, typer.Option(min=1, help="E: epochs per patch-table draw.", rich_help_panel=DATA)
    ] = 1,
    patch_size: Annotated[
        int,
        typer.Option(
            min=8,
            help="Size of random patches (without --patches or --resize).",
            rich_help_panel=DATA,
        ),
    ] = 256,
    patches_per_image: Annotated[
        int, typer.Option(min=1, help="Random patches per image and epoch.", rich_help_panel=DATA)
    ] = 4,
    resize: Annotated[
        tuple[int, int] | None,
        typer.Option(
            help="Train on whole images resized to H W, each >= 8 (masks nearest); infer "
            "resizes back.",
            metavar="H W",
            callback=in_range(8),  # as --patch-size
            rich_help_panel=DATA,
        ),
    ] = None,
    augment: Annotated[
        str | None,
        typer.Option(
            help="e.g. flip,rot90,rotate:45,shift:0.2 (fill: the dataset mean).",
            rich_help_panel=DATA,
        ),
    ] = None,
    binary: Annotated[
        str | None,
        typer.Option(
            help="Train a one-vs-rest model of class C.", metavar="C", rich_help_panel=DATA
        ),
    ] = None,
    class_weights: Annotated[
        str | None,
        typer.Option(
            help="Weights table of 'tinyseg classweights' (wce, focal, …).",
            metavar="TABLE",
            rich_help_panel=DATA,
        ),
    ] = None,
    classes: Classes = None,
    palette: Palette = None,
    ignore_index: IgnoreIndex = 255,
    in_channels: Annotated[
        int,
        typer.Option(
            min=1,
            help="Image channels the network takes (grey is repeated, alpha dropped).",
            rich_help_panel=DATA,
        ),
    ] = 3,
    # -- model and loss --------------------------------------------------------------------
    arch: Annotated[
        str,
        typer.Option(
            help="smp architecture (unet, unetplusplus, "
            "deeplabv3plus, pan, …) or a seed network (unet-baseline, unet-64, half-unet, "
            "multiresunet, half-multiresunet, quarter-multiresunet); sparse-unet for a voxel "
            "table (its default).",
            rich_help_panel=MODEL,
        ),
    ] = "unet",
    encoder: Annotated[
        str,
        typer.Option(
            help="smp encoder (resnet34, resnet50, mobilenet_v2, efficientnet-b0, …).",
            rich_help_panel=MODEL,
        ),
    ] = "mobilenet_v2",
    encoder_weights: Annotated[
        str,
        typer.Option(
            help="none, imagenet (DOWNLOADS the weights "
            "from the internet), or PATH to a local encoder state dict.",
            rich_help_panel=MODEL,
        ),
    ] = "none",
    loss: Annotated[
        str,
        typer.Option(
            help="Loss of SPEC §6.3: " + ", ".join(LOSS_NAMES) + ".", rich_help_panel=MODEL
        ),
    ] = "ce",
    alpha: Annotated[
        float | None,
        typer.Option(
            help="α: tversky FP weight; dibe-dis "
            "missed-foreground α; dibe shared α (β = 1 − α). Default per loss.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    beta: Annotated[
        float | None,
        typer.Option(help="β: tversky FN weight; dibe-dis FP term.", rich_help_panel=MODEL),
    ] = None,
    gamma: Annotated[
        float | None,
        typer.Option(
            help="γ: focal exponent (focal 2, focal-tversky 0.75, dibe-reg 1.5).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    focal_lambda: Annotated[
        float | None,
        typer.Option(
            "--focal-lambda",
            "--lambda",
            help="λ: weight of foreground pixels in dibe-dis/dibe (0.75).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    theta: Annotated[
        float | None,
        typer.Option(
            help="θ: share of the first term of combo, el, hf, dibe.", rich_help_panel=MODEL
        ),
    ] = None,
    smooth: Annotated[
        float | None, typer.Option(help="ε of the region losses (1).", rich_help_panel=MODEL)
    ] = None,
    gamma_ce: Annotated[
        float | None, typer.Option(help="el: exponent of the CE term.", rich_help_panel=MODEL)
    ] = None,
    gamma_dice: Annotated[
        float | None, typer.Option(help="el: exponent of the Dice term.", rich_help_panel=MODEL)
    ] = None,
    gamma_tversky: Annotated[
        float | None, typer.Option(help="hf: focal-tversky exponent.", rich_help_panel=MODEL)
    ] = None,
    loss_classes: Annotated[
        str | None,
        typer.Option(
            help="Classes the region losses average over (names or indices, comma-separated).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    # -- 3D ----------------------------------------------------------------------------------
    features: Annotated[
        str | None,
        typer.Option(
            help="Feature columns of the voxel table the network takes (default: all of "
            "x,y,z,red,green,blue,intensity present).",
            metavar="A,B,…",
            rich_help_panel=SPARSE,
        ),
    ] = None,
    channels: Annotated[
        str,
        typer.Option(
            help="sparse-unet widths per stage (the last is the bridge's).",
            rich_help_panel=SPARSE,
        ),
    ] = "32,64,128,256",
    aspp: Annotated[
        bool,
        typer.Option(
            help="sparse-unet bridge: ASPP of dilated submanifold branches, or one residual block.",
            rich_help_panel=SPARSE,
        ),
    ] = True,
    aspp_dilations: Annotated[
        str,
        typer.Option(help="Dilations of the ASPP branches, in voxels.", rich_help_panel=SPARSE),
    ] = "6,12,18",
    sparse_backend: Annotated[
        str,
        typer.Option(
            help="Sparse convolution: auto (spconv on CUDA when installed, else torch), "
            "spconv, torch, or torchsparse (v2.0 built from source; no dilation: --no-aspp).",
            rich_help_panel=SPARSE,
        ),
    ] = "auto",
    # -- optimisation ----------------------------------------------------------------------
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs to train (default 10).", rich_help_panel=OPTIM)
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option(
            min=1, help="Optimiser steps to train, instead of --epochs.", rich_help_panel=OPTIM
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            "-b",
            min=1,
            help="Patches (3D: tiles) per step (per process under DDP).",
            rich_help_panel=OPTIM,
        ),
    ] = 8,
    optimizer: Annotated[
        str, typer.Option(help="adam, adamw or sgd.", rich_help_panel=OPTIM)
    ] = "adam",
    lr: Annotated[
        float,
        typer.Option(
            help="Learning rate, > 0.", callback=in_range(0, open_low=True), rich_help_panel=OPTIM
        ),
    ] = 1e-3,
    weight_decay: Annotated[
        float, typer.Option(min=0.0, callback=FINITE, rich_help_panel=OPTIM)
    ] = 0.0,
    momentum: Annotated[
        float,
        typer.Option(
            help="SGD momentum, in [0, 1).",
            callback=in_range(0, 1, open_high=True),
            rich_help_panel=OPTIM,
        ),
    ] = 0.9,
    schedule: Annotated[
        str,
        typer.Option(
            help="constant, exponential (lr·decay^⌊step/every⌋) or cosine.", rich_help_panel=OPTIM
        ),
    ] = "constant",
    lr_decay: Annotated[
        float,
        typer.Option(
            help="Factor of the exponential schedule, in (0, 1].",
            callback=in_range(0, 1, open_low=True),
            rich_help_panel=OPTIM,
        ),
    ] = 0.96,
    decay_every: Annotated[int, typer.Option(min=1, rich_help_panel=OPTIM)] = 800,
    # -- run -------------------------------------------------------------------------------
    val_every: Annotated[
        int, typer.Option(min=0, help="Validate every N epochs (0: never).", rich_help_panel=RUN)
    ] = 1,
    select: Annotated[
        str,
        typer.Option(
            help="Score that picks best.pt: METRIC (macro over "
            "foreground classes) or micro:METRIC.",
            rich_help_panel=RUN,
        ),
    ] = "f2",
    max_pixels: Annotated[
        int,
        typer.Option(
            min=1, help="Validation images above this many pixels are tiled.", rich_help_panel=RUN
        ),
    ] = 4096 * 4096,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            min=0, help="Also keep step-N.pt every N steps (0: never).", rich_help_panel=RUN
        ),
    ] = 0,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0, help="DataLoader worker processes (default: cores - 1).", rich_help_panel=RUN
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of every random choice.", rich_help_panel=RUN)
    ] = 0,
    device: Device = "auto",
    amp: Annotated[
        bool, typer.Option(help="bfloat16 autocast on GPU.", rich_help_panel=RUN)
    ] = True,
    distributed: Annotated[
        bool, typer.Option(help="Train with DDP under torchrun.", rich_help_panel=RUN)
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in RUN_DIR from last.pt.", rich_help_panel=RUN)
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Print the model's parameters and FLOPs and the data summary, then exit.",
            rich_help_panel=RUN,
        ),
    ] = False,
    json_: Json = False,
    force: Force = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Train a segmentation network that does not ignore the rare classes.

    Reads the train (and val) rows of MANIFEST, samples patches (random, or a `tinyseg
    resample` table), trains with the chosen loss and validates on whole val images with
    the metrics of `tinyseg score`. RUN_DIR receives `last.pt` (resumable), `best.pt` (by
    --select), `step-N.pt` (with --checkpoint-every) and `log.parquet`. Ctrl-C stops after
    the current step and leaves a resumable `last.pt`; run again with --resume.

    A voxel table of `tinyseg voxelize` (or its folder) trains the sparse 3D U-Net on batches
    of tiles: rows with split == train train, split == val validate (without a split column
    every tile trains and nothing validates); features are normalised with the training
    voxels' mean and std; validation counts voxels and averages over all classes.

    Several GPUs or machines: PyTorch DDP under torchrun, e.g. `torchrun --nproc_per_node 4
    -m tinyseg_cli train split.parquet --distributed -o run`.
    """
    from tinyseg_cli.commands.train.image.plan import prepare
    from tinyseg_cli.commands.train.loop import Trainer
    from tinyseg_cli.runtime.device import resolve_device
    from tinyseg_cli.runtime.distributed import Distributed

    console.configure(verbose, quiet)
    if output is None and not dry_run:
        raise typer.BadParameter("a run directory is needed", param_hint="--output")
    options = train_options(ctx.params, str(output or ""))
    voxels = _voxel_input(manifest)
    _check_modality_options(ctx, voxels)
    if _is_default(ctx, "arch") and voxels:
        options.arch = "sparse-unet"
    checkpoint = None
    if resume:
        checkpoint, options = _resumed(ctx, options)
    fresh = checkpoint is None and output is not None and not dry_run
    if fresh:
        _check_run_dir(output, force, ctx.params)  # type: ignore[arg-type]
    dist = Distributed.start(options.distributed, options.device)
    try:
        plan = prepare(options, jobs=default_jobs())
        if dist.is_main:
            for note in getattr(plan, "notes", ()):
                console.warn(note)
        torch_device = resolve_device(dist.device_name(options.device))
        trainer = Trainer(plan, torch_device, dist)
        if dry_run:
            summary = train_report.dry_run_summary(trainer)
            if not console.STATE.quiet:
                train_report.print_dry_run(summary)
        else:
            if checkpoint is not None:
                trainer.restore(checkpoint)
            else:
                trainer.initialise_weights()
            run_dir = _run_dir(output, dist) if fresh else contextlib.nullcontext()  # type: ignore[arg-type]
            with run_dir:
                try:
                    run_with_progress(trainer, dist)
                except KeyboardInterrupt:
                    console.error(
                        f"interrupted at step {trainer.position.step}; "
                        f"{trainer.run_dir / 'last.pt'} holds the run: continue it with --resume"
                    )
                    raise typer.Exit(130) from None
            summary = train_report.run_summary(trainer)
            if dist.is_main and not console.STATE.quiet:
                train_report.print_done(summary)
        if json_ and dist.is_main:
            typer.echo(json.dumps(summary, indent=2))
    finally:
        dist.close()


def train_options(values: Mapping[str, Any], run_dir: str) -> TrainOptions:
    """The options of a run from the parsed command line (``train``, and every step of
    ``tune-oii``, which passes these options through); bad loss values fail here."""
    from tinyseg_cli.commands.train.image.plan import TrainOptions
    from tinyseg_cli.commands.train.image.validate import parse_select
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


def _is_default(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is None or source.name != "COMMANDLINE"


IMAGE_ONLY = (
    "encoder", "encoder_weights", "in_channels", "fold", "patches", "refresh_every",
    "patch_size", "patches_per_image", "resize", "augment", "max_pixels", "binary",
)  # fmt: skip
VOXEL_ONLY = ("features", "channels", "aspp", "aspp_dilations", "sparse_backend")


def _check_modality_options(ctx: typer.Context, voxels: bool) -> None:
    """An option of the other modality given on the command line is a usage error, not
    silently ignored (e.g. --augment on a voxel table, --channels on an image manifest)."""
    for name in IMAGE_ONLY if voxels else VOXEL_ONLY:
        if name in ctx.params and not _is_default(ctx, name):
            raise typer.BadParameter(
                "for image manifests only; a voxel table trains the sparse U-Net without it"
                if voxels
                else "for voxel tables only (3D); the input is an image manifest",
                param_hint="--" + name.replace("_", "-"),
            )


def _voxel_input(manifest: str) -> bool:
    from tinyseg_cli.io.voxels import voxel_table_path

    return voxel_table_path(manifest) is not None


def _resumed(ctx: typer.Context, options: TrainOptions) -> tuple[Any, TrainOptions]:
    """The options a run started with, and its last checkpoint; only RESUMABLE may change."""
    from tinyseg_cli.commands.train.image.plan import TrainOptions
    from tinyseg_cli.io.checkpoint import load_checkpoint

    last = Path(options.run_dir) / "last.pt"
    if not last.is_file():
        raise TinysegError(f"{last}: nothing to resume (no last.pt in {options.run_dir})")
    checkpoint = load_checkpoint(last)
    stored = TrainOptions.from_config(checkpoint.config["train"])
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


def _run_files(run_dir: Path) -> list[Path]:
    """The files of an earlier run in ``run_dir``."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.glob("*") if p.name in RUN_FILES or _numbered(p))


def _check_run_dir(run_dir: Path, force: bool, params: Mapping[str, Any]) -> None:
    """Before any work: RUN_DIR can be made or written, none of its run files is an input,
    and it holds no earlier run (unless --force)."""
    check_output_dir(run_dir)
    present = _run_files(run_dir)
    inputs = ("manifest", "patches", "class_weights", "classes", "palette", "encoder_weights")
    check_distinct(
        {"-o": list(dict.fromkeys([*(run_dir / name for name in RUN_FILES), *present]))},
        {_flag(name): params.get(name) for name in inputs},
    )
    if present and not force:
        raise TinysegError(
            f"{run_dir}: already holds a run ({present[0].name}); pass --resume to continue "
            "it or --force to start over"
        )


@contextlib.contextmanager
def _run_dir(run_dir: Path, dist: Any) -> Iterator[None]:
    """RUN_DIR, made by the main process once the run is set up (an earlier run's files
    removed: --force); removed again when the run fails before writing to it."""
    with output_folder(run_dir) if dist.is_main else contextlib.nullcontext():
        if dist.is_main:
            for path in _run_files(run_dir):
                path.unlink()
        dist.barrier()  # the folder is there before any process writes to it
        yield


def _flag(name: str) -> str:
    return "MANIFEST" if name == "manifest" else "--" + name.replace("_", "-")


def _numbered(path: Path) -> bool:
    return path.name.startswith("step-") and path.suffix == ".pt"


def run_with_progress(trainer: Trainer, dist: Any, label: str = "train") -> None:
    """Train with a progress bar on stderr (a terminal, not --quiet) and a line per
    validation; Ctrl-C leaves a resumable ``last.pt`` and raises KeyboardInterrupt."""
    from tinyseg_cli.commands.train.image.validate import Validation
    from tinyseg_cli.commands.train.loop import Hooks, StepReport

    show = dist.is_main and not console.STATE.quiet
    bar = Progress(
        TextColumn(f"[bold]{label}[/] step {{task.completed}}/{{task.fields[of]}}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]} img/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console.stderr,
        disable=not show or not console.stderr.is_terminal,
    )
    task = bar.add_task("train", total=None, of="?", loss="-", lr="-", speed="-")

    def on_start(total: int | None) -> None:
        bar.update(task, total=total, of=str(total or "?"), completed=trainer.position.step)

    def on_step(report: StepReport) -> None:
        bar.update(
            task,
            completed=report.step,
            loss=f"{report.loss:.4f}",
            lr=f"{report.lr:.2e}",
            speed=f"{report.images_per_s:.1f}",
        )

    def on_validation(step: int, result: Validation, best: bool) -> None:
        if show:
            score = "null" if result.score is None else f"{result.score:.4f}"
            mark = "  [green]best[/]" if best else ""
            bar.console.print(f"{label} step {step}: val {result.select} = {score}{mark}")

    hooks = Hooks(on_start=on_start, on_step=on_step, on_validation=on_validation)
    with bar:
        trainer.run(hooks)
