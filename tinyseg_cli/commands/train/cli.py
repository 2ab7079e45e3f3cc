"""``tinyseg train``: train a 2D segmentation network on a split manifest, or the sparse 3D
U-Net on a voxel table (SPEC §4.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    output_dir,
)
from tinyseg_cli.losses.names import LOSS_NAMES

EXAMPLES = """\
Examples:

  tinyseg train split.parquet --arch half-unet --patch-size 8 -b 4 -o run

  tinyseg train split.parquet --resume --epochs 12 -o run

  tinyseg train split.parquet --resize 64 64 --loss focal --dry-run --json
"""

DATA = "Data"
MODEL = "Model and loss"
OPTIM = "Optimisation"
RUN = "Run"
SPARSE = "3D (voxel tables)"


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
        output_dir(
            "Run directory: last.pt, best.pt, step-N.pt, log.parquet.",
            "RUN_DIR",
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
    from tinyseg_cli.commands.train.run import train_run

    console.configure(verbose, quiet)
    train_run(ctx, manifest, output, resume=resume, dry_run=dry_run, force=force, json_=json_)
