"""``tinyseg train`` end to end: the run folder checked before any work, the plan prepared,
then a dry-run summary or the training with its progress display (SPEC §4.5)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tinyseg_cli.cli import console
from tinyseg_cli.commands.train import report as train_report
from tinyseg_cli.commands.train.args import (
    check_modality_options,
    is_default,
    is_voxel_input,
    resumed,
    train_options,
)
from tinyseg_cli.commands.train.common import Validation
from tinyseg_cli.commands.train.loop import Hooks, StepReport, Trainer
from tinyseg_cli.commands.train.modality import prepare
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import check_distinct, check_output_dir, output_folder
from tinyseg_cli.runtime.device import resolve_device
from tinyseg_cli.runtime.distributed import Distributed
from tinyseg_cli.runtime.parallel import default_jobs

RUN_FILES = ("last.pt", "best.pt", "log.parquet")


def train_run(
    ctx: typer.Context,
    manifest: str,
    output: Path | None,
    *,
    resume: bool,
    dry_run: bool,
    force: bool,
    json_: bool,
) -> None:
    """Train (or describe, with ``--dry-run``) the run the parsed command line asks for."""
    if output is None and not dry_run:
        raise typer.BadParameter("a run directory is needed", param_hint="--output")
    options = train_options(ctx.params, str(output or ""))
    voxels = is_voxel_input(manifest)
    check_modality_options(ctx, voxels)
    if is_default(ctx, "arch") and voxels:
        options.arch = "sparse-unet"
    checkpoint = None
    if resume:
        checkpoint, options = resumed(ctx, options)
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

    def on_message(text: str) -> None:
        if dist.is_main:
            console.warn(text)

    hooks = Hooks(
        on_start=on_start, on_step=on_step, on_validation=on_validation, on_message=on_message
    )
    with bar:
        trainer.run(hooks)
