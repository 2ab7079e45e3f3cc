"""``tinyseg tune-oii``: bisection of a loss's FP/FN balance on the validation OII (SPEC §4.8)."""

from __future__ import annotations

import math
import shutil
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    FINITE,
    Json,
    Quiet,
    Verbose,
    in_range,
    output_dir,
)
from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.atomic import check_distinct, check_output_dir

if TYPE_CHECKING:
    from click import Command

    from tinyseg_cli.commands.tune_oii.search import SearchResult, Step

TINY = "split.parquet --arch half-unet --patch-size 8 -b 4 --iterations 2"  # one line each
EXAMPLES = f"""\
Examples:

  tinyseg tune-oii {TINY} --loss tversky --tol 0.4 -o tune

  tinyseg tune-oii {TINY} --loss tversky --grid 1 -o grid --json

  tinyseg tune-oii {TINY} --loss dibe-dis --max-steps 2 --warm-start --warm-epochs 1 -o warm
"""
SEARCH = "Search"
# Options of ``train`` that tune-oii does not take: it has its own MANIFEST, -o, --json,
# --force, -v and -q, and it always trains (no --dry-run) and resumes by itself.
NOT_BORROWED = frozenset(
    {"manifest", "output", "resume", "dry_run", "json_", "force", "verbose", "quiet"}
)


class DirectionChoice(StrEnum):
    auto = "auto"
    raises = "raises"
    lowers = "lowers"


def register(app: typer.Typer) -> None:
    app.command(
        "tune-oii",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Search a loss parameter (Tversky α, …) until the val OII is in a band.",
    )(tune_oii)


def extend(command: Command) -> None:
    """Give ``tune-oii`` every option of ``train``, passed through to each step unchanged."""
    from tinyseg_cli.cli.main import load_command

    own = {param.name for param in command.params}
    borrowed = [p for p in load_command("train").params if p.name not in NOT_BORROWED | own]
    command.params.extend(borrowed)
    names = {p.name for p in borrowed}
    inner = command.callback
    assert inner is not None

    def callback(**values: Any) -> Any:  # the train options are read from ctx.params
        return inner(**{k: v for k, v in values.items() if k not in names})

    command.callback = callback


def _pair(text: str, option: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not two numbers a,b", param_hint=option) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise typer.BadParameter(f"{text!r}: expected two finite numbers", param_hint=option)
    return low, high


def tune_oii(
    ctx: typer.Context,
    manifest: Annotated[
        str,
        typer.Argument(
            help="Split manifest: train rows train every step, val rows are predicted and "
            "scored (or --fold N).",
            metavar="MANIFEST",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        output_dir(
            "TUNE_DIR: steps.parquet (one row per step), tune.json, step-K/ (run/, "
            "pred/, scores.parquet, counts.parquet).",
            "TUNE_DIR",
        ),
    ] = None,
    param: Annotated[
        str,
        typer.Option(
            help="The loss parameter searched (alpha, beta, gamma, focal-lambda, theta, …).",
            metavar="NAME",
            rich_help_panel=SEARCH,
        ),
    ] = "alpha",
    value_range: Annotated[
        str,
        typer.Option(
            "--range", help="Interval [a, b] searched.", metavar="A,B", rich_help_panel=SEARCH
        ),
    ] = "0.1,0.9",
    target: Annotated[
        str,
        typer.Option(
            help="Target band (m0, m1) of the validation OII, inside (-1, 1).",
            metavar="M0,M1",
            rich_help_panel=SEARCH,
        ),
    ] = "0.3,0.4",
    tol: Annotated[
        float,
        typer.Option(
            help="Stop when the bracket is no wider than T (> 0): at most ⌈log2((b − a)/T)⌉ "
            "trainings (+1 after a direction flip).",
            metavar="T",
            callback=in_range(0, open_low=True),
            rich_help_panel=SEARCH,
        ),
    ] = 0.05,
    max_steps: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many trainings.", rich_help_panel=SEARCH),
    ] = None,
    direction: Annotated[
        DirectionChoice,
        typer.Option(
            help="How a larger value moves the OII: raises, lowers, or auto (SPEC §6.4's "
            "expectation, flipped once with a warning when the OII moves the other way "
            "beyond --noise).",
            rich_help_panel=SEARCH,
        ),
    ] = DirectionChoice.auto,
    noise: Annotated[
        float,
        typer.Option(
            min=0.0,
            callback=FINITE,
            help="OII changes up to this size say nothing about the direction.",
            rich_help_panel=SEARCH,
        ),
    ] = 0.02,
    oii_of: Annotated[
        str | None,
        typer.Option(
            "--oii-of",
            help="Read the OII of CLASS, or micro/macro over the foreground classes "
            "(default: the one foreground class; needed with several).",
            metavar="CLASS|micro|macro",
            rich_help_panel=SEARCH,
        ),
    ] = None,
    grid: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Instead of bisecting, train the K + 1 equally spaced values of [a, b] "
            "(the grid the bisection replaces, for comparison).",
            metavar="K",
            rich_help_panel=SEARCH,
        ),
    ] = None,
    warm_start: Annotated[
        bool,
        typer.Option(
            help="Steps after the first fine-tune the previous step's best.pt for "
            "--warm-epochs epochs instead of training from scratch.",
            rich_help_panel=SEARCH,
        ),
    ] = False,
    warm_epochs: Annotated[
        int,
        typer.Option(min=1, help="Epochs of a warm-started step.", rich_help_panel=SEARCH),
    ] = 2,
    tie_beta: Annotated[
        bool,
        typer.Option(
            help="When alpha is searched on a loss with beta: beta = 1 − alpha.",
            rich_help_panel=SEARCH,
        ),
    ] = True,
    json_: Json = False,
    force: Annotated[
        bool, typer.Option("--force", help="Start over: remove the search TUNE_DIR holds.")
    ] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Find the value of a loss parameter whose model balances FP and FN as asked.

    Bisection on the validation OII (SPEC §5: negative when a model makes more false
    positives than false negatives, positive when it makes more false negatives): step 1
    trains at the middle of [a, b]; the sign of the OII relative to the target band says
    which half to keep. Every step is a full `tinyseg train` with the options given here
    (any option of `train`; the searched parameter is set per step), `tinyseg infer` of the
    val rows with the step's best.pt, and `tinyseg score`. The band is reached in at most
    ⌈log2((b − a)/tol)⌉ trainings where a grid of the same resolution needs (b − a)/tol + 1.

    The result is the step inside the band; if none is, the step closest to it (exit 0,
    `"inside": false` in --json and a line on stderr). Rerun the same command to continue an
    interrupted search: finished steps are not trained again, an interrupted one continues
    from its last.pt; other search options on an existing TUNE_DIR are an error.
    Under torchrun, `--distributed` trains each step with DDP.
    """
    from tinyseg_cli.commands.train.args import train_options
    from tinyseg_cli.commands.tune_oii import settings as tune_settings

    console.configure(verbose, quiet)
    if output is None:
        raise typer.BadParameter("a TUNE_DIR is needed", param_hint="--output")
    check_output_dir(output)
    low, high = _pair(value_range, "--range")
    m0, m1 = _pair(target, "--target")
    tune_settings.check_target(m0, m1)
    options = train_options(ctx.params, "")
    from tinyseg_cli.commands.tune_oii.log import LOG_NAME

    inputs = ("patches", "class_weights", "classes", "palette", "encoder_weights")
    check_distinct(
        {"-o": [output / LOG_NAME, output / tune_settings.RECORD]},
        {
            "MANIFEST": options.manifest,
            **{"--" + name.replace("_", "-"): ctx.params.get(name) for name in inputs},
        },
    )
    from tinyseg_cli.io.voxels import voxel_table_path

    if voxel_table_path(options.manifest) is not None:  # its objective infers and scores 2D
        raise TinysegError(
            f"{options.manifest}: tune-oii takes a 2D split manifest; voxel tables are not "
            "supported yet"
        )
    searched = tune_settings.searched_param(options.loss, param, tie_beta, ctx.params)
    tune_settings.check_range(searched, low, high)
    if grid is None and (high - low) <= tol:
        raise UsageError(f"--tol {tol:g} is not smaller than the range {low:g},{high:g}")
    search = {
        "param": searched.name,
        "range": [low, high],
        "target": [m0, m1],
        "tol": None if grid else tol,
        "max_steps": None if grid else max_steps,
        "direction": direction.value,
        "noise": noise,
        "oii_of": oii_of,
        "grid": grid,
        "warm_start": warm_start,
        "warm_epochs": warm_epochs if warm_start else None,
        "tie_beta": searched.tie_beta,
    }
    train_record = {k: v for k, v in options.to_config().items() if k != "manifest"}
    record = {"search": search, "train": {**train_record, "manifest": manifest}}
    _run_search(output, record, options, searched, force, json_)


def _run_search(
    tune_dir: Path,
    record: dict[str, Any],
    options: Any,
    searched: Any,
    force: bool,
    json_: bool,
) -> None:
    import time

    from tinyseg_cli.commands.train.modality import prepare
    from tinyseg_cli.commands.train.run import run_with_progress
    from tinyseg_cli.commands.tune_oii import log as tune_log
    from tinyseg_cli.commands.tune_oii import report
    from tinyseg_cli.commands.tune_oii import settings as tune_settings
    from tinyseg_cli.commands.tune_oii.objective import StepObjective, TuneJob
    from tinyseg_cli.data.samples import split_rows
    from tinyseg_cli.io.tables import read_table
    from tinyseg_cli.runtime.device import resolve_device
    from tinyseg_cli.runtime.distributed import Distributed
    from tinyseg_cli.runtime.parallel import default_jobs

    search = record["search"]
    dist = Distributed.start(options.distributed, options.device)
    try:
        val = split_rows(read_table(options.manifest), options.manifest, "val", options.fold)
        plan = prepare(options, jobs=default_jobs())
        of = tune_settings.oii_classes(search["oii_of"], plan.class_map)
        continuing = _prepare_tune_dir(tune_dir, record, force, dist.is_main)
        dist.barrier()  # every process has read TUNE_DIR before the main one writes to it
        expected = tune_settings.expected_direction(options.loss, searched.name)
        direction = expected if search["direction"] == "auto" else search["direction"]
        if direction is None:
            console.warn(
                f"SPEC §6.4 gives no direction for {searched.name} of loss {options.loss}: "
                "assuming a larger value raises the OII until two steps measure it"
            )
            direction = "raises"
        if dist.is_main:
            tune_settings.write_record(tune_dir, record)
        log_path = tune_dir / tune_log.LOG_NAME
        replay = tune_log.read_log(log_path, searched.name) if continuing else []
        if replay:
            console.stderr.print(
                f"continuing {console.safe(tune_dir)}: {len(replay)} finished step(s) kept"
            )
        job = TuneJob(
            plan=plan,
            param=searched,
            tune_dir=tune_dir,
            val=val,
            device=resolve_device(dist.device_name(options.device)),
            dist=dist,
            warm_epochs=search["warm_epochs"],
            jobs=default_jobs(),
            argv=console.STATE.argv,
        )

        def train(trainer: Any, number: int) -> None:
            value = trainer.plan.options.loss_params[searched.name]
            if dist.is_main and not console.STATE.quiet:
                console.stderr.print(f"step {number}: training with {searched.name} = {value:g}")
            run_with_progress(trainer, dist, label=f"tune step {number}: train")

        objective = StepObjective(job, train, replay)
        display = report.StepsDisplay(searched.name, dist.is_main and not console.STATE.quiet)
        schema = tune_log.log_schema(searched.name, searched.tie_beta)
        metadata = _log_metadata(record, plan, options)
        rows: list[dict[str, Any]] = []

        def on_step(step: Step) -> None:
            rows.append(tune_log.log_row(step, searched.name, searched.tie_beta))
            if dist.is_main:
                tune_log.write_log(tune_dir / tune_log.LOG_NAME, rows, schema, metadata)
            display.add(step)

        started = time.perf_counter()
        try:
            result = _search(objective, search, of, direction, on_step)
        except ValueError as error:  # an OII that cannot be read (nothing to measure)
            raise TinysegError(f"{tune_dir}: {error}") from None
        except KeyboardInterrupt:
            console.error(
                f"interrupted in step {objective.calls}; rerun the same command to continue "
                f"the search in {tune_dir}"
            )
            raise typer.Exit(130) from None
        if dist.is_main:
            report.print_result(result, search, searched.name, time.perf_counter() - started, json_)
    finally:
        dist.close()


def _search(
    objective: Any, search: dict[str, Any], of: Any, direction: str, on_step: Any
) -> SearchResult:
    """The grid (``--grid K``) or the bisection, over ``objective``."""
    from tinyseg_cli.commands.tune_oii import search as tune_search

    low, high = search["range"]
    target = tuple(search["target"])
    if search["grid"]:
        values = tune_search.grid_values(low, high, search["grid"])
        return tune_search.grid(objective, values, target, of, search["noise"], on_step)
    settings = tune_search.Bisection(
        low=low,
        high=high,
        target=target,  # type: ignore[arg-type]
        tol=search["tol"],
        max_steps=search["max_steps"],
        direction=direction,  # type: ignore[arg-type]
        auto=search["direction"] == "auto",
        noise=search["noise"],
    )
    return tune_search.bisect(objective, settings, of, on_step, console.warn)


def _prepare_tune_dir(tune_dir: Path, record: dict[str, Any], force: bool, main: bool) -> bool:
    """Whether TUNE_DIR continues this search; with --force an earlier search is removed."""
    from tinyseg_cli.commands.tune_oii import log as tune_log
    from tinyseg_cli.commands.tune_oii import settings as tune_settings

    if tune_dir.exists() and not tune_dir.is_dir():
        raise TinysegError(f"{tune_dir}: exists and is not a directory")
    ours = [tune_dir / tune_log.LOG_NAME, tune_dir / tune_settings.RECORD]
    steps = sorted(tune_dir.glob("step-*")) if tune_dir.is_dir() else []
    if force:
        if main:
            for path in ours:
                path.unlink(missing_ok=True)
            for path in steps:
                shutil.rmtree(path)
        return False
    if tune_settings.check_record(tune_dir, record):
        return True
    if steps or ours[0].exists():
        raise TinysegError(
            f"{tune_dir}: holds steps of a search without its tune.json; pass --force to start over"
        )
    if main:
        tune_dir.mkdir(parents=True, exist_ok=True)
    return False


def _log_metadata(record: dict[str, Any], plan: Any, options: Any) -> dict[str, Any]:
    from tinyseg_cli.io.provenance import provenance

    return {
        "provenance": provenance([options.manifest], console.STATE.argv),
        "tune": record,
        "classes": plan.class_map.to_metadata(),
    }
