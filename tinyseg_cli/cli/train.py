"""``tinyseg train``: train a 2D segmentation network on a split manifest (SPEC §4.5)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    Classes,
    Device,
    Force,
    IgnoreIndex,
    Json,
    Palette,
    Quiet,
    Verbose,
)
from tinyseg_cli.engine.parallel import default_jobs
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.losses.names import LOSS_NAMES

if TYPE_CHECKING:  # torch-heavy modules load when the command runs, not with every --help
    from tinyseg_cli.engine.train import Trainer
    from tinyseg_cli.engine.train_setup import TrainOptions

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
# Parameters that shape no training, so --resume takes them without a warning.
NOT_TRAINING = ("resume", "output", "manifest", "verbose", "quiet", "force", "json_")


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Train a 2D segmentation network; checkpoints and a log in RUN_DIR.",
    )(train)


def train(
    ctx: typer.Context,
    manifest: Annotated[
        str,
        typer.Argument(
            help="Split manifest (column 'split': train/val rows; or 'fold' with --fold).",
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
            help="Train on whole images resized to H W (masks nearest); infer resizes back.",
            metavar="H W",
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
            "deeplabv3plus, pan, …) or a seed network (unet-baseline, half-unet, "
            "multiresunet, …).",
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
            help="Patches per step (per process under DDP).",
            rich_help_panel=OPTIM,
        ),
    ] = 8,
    optimizer: Annotated[
        str, typer.Option(help="adam, adamw or sgd.", rich_help_panel=OPTIM)
    ] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=OPTIM)] = 1e-3,
    weight_decay: Annotated[float, typer.Option(rich_help_panel=OPTIM)] = 0.0,
    momentum: Annotated[float, typer.Option(help="SGD momentum.", rich_help_panel=OPTIM)] = 0.9,
    schedule: Annotated[
        str,
        typer.Option(
            help="constant, exponential (lr·decay^⌊step/every⌋) or cosine.", rich_help_panel=OPTIM
        ),
    ] = "constant",
    lr_decay: Annotated[float, typer.Option(rich_help_panel=OPTIM)] = 0.96,
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
            help="Validation images above this many pixels are tiled.", rich_help_panel=RUN
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
        int, typer.Option(help="Seed of every random choice.", rich_help_panel=RUN)
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

    Several GPUs or machines: PyTorch DDP under torchrun, e.g. `torchrun --nproc_per_node 4
    -m tinyseg_cli train split.parquet --distributed -o run`.
    """
    from tinyseg_cli.engine.device import resolve_device
    from tinyseg_cli.engine.distributed import Distributed
    from tinyseg_cli.engine.train import Trainer
    from tinyseg_cli.engine.train_setup import prepare

    console.configure(verbose, quiet)
    if output is None and not dry_run:
        raise typer.BadParameter("a run directory is needed", param_hint="--output")
    options = train_options(ctx.params, str(output or ""))
    checkpoint = None
    if resume:
        checkpoint, options = _resumed(ctx, options)
    dist = Distributed.start(options.distributed, options.device)
    try:
        if checkpoint is None and output is not None and not dry_run and dist.is_main:
            _prepare_run_dir(output, force)
        dist.barrier()
        plan = prepare(options, jobs=default_jobs())
        torch_device = resolve_device(dist.device_name(options.device))
        trainer = Trainer(plan, torch_device, dist)
        if dry_run:
            summary = dry_run_summary(trainer)
            if not console.STATE.quiet:
                _print_dry_run(summary)
        else:
            if checkpoint is not None:
                trainer.restore(checkpoint)
            else:
                trainer.initialise_weights()
            try:
                run_with_progress(trainer, dist)
            except KeyboardInterrupt:
                console.error(
                    f"interrupted at step {trainer.position.step}; "
                    f"{trainer.run_dir / 'last.pt'} holds the run: continue it with --resume"
                )
                raise typer.Exit(130) from None
            summary = run_summary(trainer)
            if dist.is_main and not console.STATE.quiet:
                _print_done(summary)
        if json_ and dist.is_main:
            typer.echo(json.dumps(summary, indent=2))
    finally:
        dist.close()


def train_options(values: Mapping[str, Any], run_dir: str) -> TrainOptions:
    """The options of a run from the parsed command line (``train``, and every step of
    ``tune-oii``, which passes these options through); bad loss values fail here."""
    from tinyseg_cli.engine.train_setup import TrainOptions
    from tinyseg_cli.engine.validate import parse_select
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
    )
    resolve_params(options.loss, options.loss_params)  # bad values fail before any work
    return options


def _resumed(ctx: typer.Context, options: TrainOptions) -> tuple[Any, TrainOptions]:
    """The options a run started with, and its last checkpoint; only RESUMABLE may change."""
    from tinyseg_cli.engine.checkpoint import load_checkpoint
    from tinyseg_cli.engine.train_setup import TrainOptions

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


def _prepare_run_dir(run_dir: Path, force: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise TinysegError(f"{run_dir}: exists and is not a directory")
    present = [p for p in run_dir.glob("*") if p.name in RUN_FILES or _numbered(p)]
    if present and not force:
        raise TinysegError(
            f"{run_dir}: already holds a run ({present[0].name}); pass --resume to continue "
            "it or --force to start over"
        )
    for path in present:
        path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def _numbered(path: Path) -> bool:
    return path.name.startswith("step-") and path.suffix == ".pt"


def run_with_progress(trainer: Trainer, dist: Any, label: str = "train") -> None:
    """Train with a progress bar on stderr (a terminal, not --quiet) and a line per
    validation; Ctrl-C leaves a resumable ``last.pt`` and raises KeyboardInterrupt."""
    from tinyseg_cli.engine.train import Hooks, StepReport
    from tinyseg_cli.engine.validate import Validation

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


def run_summary(trainer: Trainer) -> dict[str, Any]:
    """What a finished run did (the ``--json`` summary)."""
    p = trainer.position
    return {
        "run_dir": str(trainer.run_dir),
        "steps": p.step,
        "epochs": p.epoch,
        "select": trainer.plan.options.select,
        "best": p.best,
        "best_step": p.best_step,
        "checkpoints": {
            "last": str(trainer.run_dir / "last.pt"),
            "best": str(trainer.run_dir / "best.pt"),
        },
        "log": str(trainer.run_dir / "log.parquet"),
    }


def _print_done(summary: dict[str, Any]) -> None:
    best = summary["best"]
    best_text = "—" if best is None else f"{best:.4f} at step {summary['best_step']}"
    console.stderr.print(
        f"trained {summary['steps']} steps ({summary['epochs']} epochs); best val "
        f"{summary['select']}: {best_text}; run in {summary['run_dir']}"
    )


def dry_run_summary(trainer: Trainer) -> dict[str, Any]:
    """The model's size and cost and the data an epoch draws (the ``--dry-run`` summary)."""
    from tinyseg_cli.engine.train import epoch_patches
    from tinyseg_cli.models import describe

    plan = trainer.plan
    o = plan.options
    size = tuple(o.resize) if o.resize else (o.patch_size, o.patch_size)
    if plan.patch_table is not None:
        first = plan.patch_table[0][0]
        size = (first.h, first.w)
    info = describe(trainer.model, trainer.spec, size)
    patches = len(epoch_patches(plan, 0))
    return {
        "arch": o.arch,
        "encoder": o.encoder,
        "parameters": int(info["parameters"]),
        "trainable": int(info["trainable"]),
        "flops": int(info["flops"]),
        "input_size": list(size),
        "train_samples": len(plan.train),
        "val_samples": len(plan.val),
        "patches_epoch_0": patches,
        "steps_epoch_0": patches // o.batch_size,
        "total_steps": trainer.total,
        "loss": o.loss,
        "loss_params": o.loss_params or None,
        "mean": [float(v) for v in plan.mean],
        "std": [float(v) for v in plan.std],
        "classes": [
            {
                "index": index,
                "name": name,
                "pixels": int(plan.pixels[index]),
                "weight": None if plan.class_weights is None else float(plan.class_weights[index]),
            }
            for index, name in enumerate(plan.class_map.names)
        ],
    }


def _print_dry_run(summary: dict[str, Any]) -> None:
    s = summary
    height, width = s["input_size"]
    table = Table(title=f"dry run: {s['arch']} / {s['encoder']}", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in (
        ("parameters", f"{s['parameters']:,}"),
        ("trainable", f"{s['trainable']:,}"),
        (f"FLOPs per {height}×{width} image", f"{s['flops']:,}"),
        ("train samples", str(s["train_samples"])),
        ("val samples", str(s["val_samples"])),
        ("patches in epoch 0", str(s["patches_epoch_0"])),
        ("steps in epoch 0", str(s["steps_epoch_0"])),
        ("total steps", str(s["total_steps"])),
        ("loss", f"{s['loss']} {s['loss_params'] or ''}".strip()),
        ("normalisation mean", ", ".join(f"{v:.4f}" for v in s["mean"])),
        ("normalisation std", ", ".join(f"{v:.4f}" for v in s["std"])),
    ):
        table.add_row(label, value)
    console.stderr.print(table)
    classes = Table(title="training pixels per class", title_justify="left")
    for header in ("index", "class", "pixels", "share", "weight"):
        classes.add_column(header, justify="left" if header == "class" else "right")
    total = max(sum(c["pixels"] for c in s["classes"]), 1)
    for c in s["classes"]:
        weight = "—" if c["weight"] is None else f"{c['weight']:.4f}"
        share = f"{100 * c['pixels'] / total:.3f} %"
        classes.add_row(str(c["index"]), c["name"], f"{c['pixels']:,}", share, weight)
    console.stderr.print(classes)
