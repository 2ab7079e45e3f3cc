"""``tinyseg report``: Markdown tables of tinyseg's scores tables and tune-oii logs, for
results files written from Makefiles (SPEC §4.9; issue 13: no Python glue in a
reproduction)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    Force,
    Quiet,
    Verbose,
    classes_choice,
    metric_option,
    repeated_names,
    table_labels,
)
from tinyseg_cli.io.atomic import STDIO, atomic_path, check_outputs
from tinyseg_cli.plots.tables import (
    choose_metrics,
    choose_series,
    is_network_summary,
    open_network_summaries,
    open_sources,
    parse_names,
    resolve_kind,
)

RUNS = "tinyseg score --truth t --run a=run_a/pred --run b=run_b/pred -o"
TUNE = "tinyseg tune-oii split.parquet --arch half-unet --patch-size 8 -b 4 --iterations 2"
SIZE = "tinyseg train split.parquet --arch unet-64 --resize 512 512 --dry-run --json -q"
EXAMPLES = f"""\
Examples:

  {RUNS} runs.parquet && tinyseg report runs.parquet --metric f2,iou,miou --each-run

  {TUNE} --loss tversky --grid 2 -o grid && tinyseg report grid --title 'Tversky, grid'

  {SIZE} > u.json && tinyseg report u.json
"""


class ReportKind(StrEnum):
    auto = "auto"
    runs = "runs"
    tune = "tune"
    networks = "networks"


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``tinyseg`` group."""
    app.command(
        "report",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Markdown tables of scores tables (mean ± std of runs) and tune-oii searches.",
    )(report)


def report(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Scores tables of 'tinyseg score' (with --run or not), tune-oii logs (a "
            "TUNE_DIR or its steps.parquet), or the .json summaries of 'tinyseg train "
            "--dry-run --json'. '-' reads a table from stdin.",
            metavar="TABLE...",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="The Markdown file; '-' (default) is stdout.", metavar="FILE"
        ),
    ] = STDIO,
    kind: Annotated[
        ReportKind,
        typer.Option(
            "--kind",
            help="auto: by the tables' columns (.json: networks); runs: one row per scores "
            "table; tune: one table of steps per tune-oii log; networks: one row per dry-run "
            "summary (parameters, FLOPs).",
        ),
    ] = ReportKind.auto,
    metric: Annotated[
        list[str] | None,
        metric_option(
            "Score columns, in order: f2, iou, oii, recall, precision, fpr, f1, rw_f1, "
            "rw_iou, …, and oa, miou (one column each: every class); repeat or separate by "
            "commas. Default: f2, iou, oii (runs); oii, iou, precision (tune).",
        ),
    ] = None,
    classes: Annotated[
        str | None,
        classes_choice(
            "Which classes (runs): names or indices, and micro or macro, e.g. "
            "'crack,pore,macro'. Default: the foreground classes (all but index 0).",
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        table_labels(
            "Name of each TABLE in the report, once per TABLE in order. Default: the "
            "file stem (a TUNE_DIR's name), with parent folders when they clash.",
        ),
    ] = None,
    each_run: Annotated[
        bool,
        typer.Option(
            "--each-run",
            help="Scores tables with several runs (folds, seeds): a row per run before the "
            "table's mean ± std.",
        ),
    ] = False,
    best: Annotated[
        bool,
        typer.Option(
            "--best",
            help="Print only the label of the scores table with the highest mean of the first "
            "--metric for the first of --classes (a Makefile's choice between steps).",
        ),
    ] = False,
    digits: Annotated[
        int,
        typer.Option("--digits", help="Decimals of the scores.", min=0, max=12, metavar="N"),
    ] = 3,
    title: Annotated[
        str | None, typer.Option("--title", help="A '## TITLE' heading first.", metavar="TEXT")
    ] = None,
    force: Force = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Write tinyseg's tables as Markdown: the numbers of a results file.

    Scores tables (--kind runs): one row per TABLE, then per metric and class its mean ±
    standard deviation over the TABLE's runs ('tinyseg score --run': ddof = 1, null scores
    left out), or its value when it holds one run. A 0/0 score is shown as '–'.

    tune-oii logs (--kind tune): per log, one row per step with the searched value, the
    scores (OII, IoU and precision by default) and whether the OII fell in the target band,
    then the number of trainings.

    Dry-run summaries (--kind networks, any .json TABLE): one row per network with its
    input size, parameters (millions) and FLOPs (billions, 2 per multiply-add).

    Everything else is up to the shell: a Makefile writes a results file as
    '{ cat header.md; tinyseg report a.parquet b.parquet; } > results.md'.
    """
    console.configure(verbose, quiet)
    check_outputs({"-o": output}, force, {"TABLE": [p for p in inputs if p != STDIO]})
    if kind == ReportKind.networks or any(is_network_summary(p) for p in inputs):
        text = _networks_report(inputs, kind, label, best, title)
    else:
        text = _tables_report(inputs, kind, label, metric, classes, best, (digits, title, each_run))
        if text is None:
            return
    if output == STDIO:
        typer.echo(text, nl=False)
        return
    with atomic_path(output) as temporary:
        temporary.write_text(text, encoding="utf-8")
    if not console.STATE.quiet:
        console.stderr.print(f"wrote {console.safe(output)}", soft_wrap=True)


def _networks_report(
    inputs: list[str], kind: ReportKind, label: list[str] | None, best: bool, title: str | None
) -> str:
    """The Markdown of dry-run summaries: one row per network."""
    from tinyseg_cli.plots.markdown import networks_markdown

    others = [p for p in inputs if not is_network_summary(p)]
    if others or kind not in (ReportKind.auto, ReportKind.networks):
        shown = others[0] if others else inputs[0]
        raise typer.BadParameter(
            f"{shown}: dry-run summaries (.json) are reported alone, as --kind networks; "
            "give scores tables or tune-oii logs in another report",
            param_hint="TABLE",
        )
    if best:
        raise typer.BadParameter("chooses among scores tables, not networks", param_hint="--best")
    return networks_markdown(open_network_summaries(inputs, label), title)


def _tables_report(
    inputs: list[str],
    kind: ReportKind,
    label: list[str] | None,
    metric: list[str] | None,
    classes: str | None,
    best: bool,
    layout: tuple[int, str | None, bool],
) -> str | None:
    """The Markdown of scores tables or tune-oii logs; None when --best printed its choice."""
    from tinyseg_cli.plots.markdown import (
        TUNE_METRICS,
        ReportOptions,
        best_table,
        report_markdown,
    )

    sources = open_sources(inputs, label)
    found = resolve_kind(sources, kind.value if kind != ReportKind.auto else "auto")
    if found not in ("runs", "tune"):
        raise typer.BadParameter(
            f"{sources[0].path} is a training log: report reads scores tables and tune-oii "
            "logs (score the run's predictions, or draw the log with 'tinyseg plot')",
            param_hint="TABLE",
        )
    wanted = repeated_names(metric)
    if found == "tune":
        metrics, series = wanted or list(TUNE_METRICS), [[] for _ in sources]
    else:
        metrics = choose_metrics(sources, wanted, summary=True)
        series = choose_series(sources, parse_names(classes))
    if best:
        if found != "runs":
            raise typer.BadParameter(
                "chooses among scores tables, not tune-oii logs", param_hint="--best"
            )
        typer.echo(best_table(sources, series, metrics[0]))
        return None
    return report_markdown(found, sources, series, ReportOptions(metrics, *layout))
