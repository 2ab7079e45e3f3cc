"""The ``tinyseg`` group: version, verbosity, error handling; each command lives in its module."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tinyseg_cli import __version__
from tinyseg_cli.cli import classweights, console, infer, resample, score, split, train
from tinyseg_cli.cli.options import Quiet, Verbose
from tinyseg_cli.errors import TinysegError


class TinysegGroup(TyperGroup):
    """Turns library errors into one-line messages and exit status 1 (SPEC §2, §9)."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        arguments = list(sys.argv[1:] if args is None else args)
        console.STATE.argv = ["tinyseg", *arguments]
        return super().main(arguments, *rest, **kwargs)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TinysegError as error:
            if console.STATE.verbose:
                console.stderr.print(traceback.format_exc(), markup=False)
            console.error(str(error))
            ctx.exit(1)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except BrokenPipeError:  # the reader of our stdout went away (`| head`)
            sys.stderr.close()
            ctx.exit(1)
        except Exception as error:  # a bug or an environment problem: one line unless -v
            if console.STATE.verbose:
                console.stderr.print(traceback.format_exc(), markup=False)
                console.error(f"{type(error).__name__}: {error}")
            else:
                console.error(f"{type(error).__name__}: {error} (run with -v for the traceback)")
            ctx.exit(1)


app = typer.Typer(
    name="tinyseg",
    cls=TinysegGroup,
    help="Composable tools for segmentation of tiny, extremely imbalanced targets.",
    epilog="""Run 'tinyseg COMMAND --help' for a command's options and examples.

Examples:

  tinyseg score --truth masks --pred pred --classes bg,crack

  tinyseg score --truth t --pred p --counts-out - | tinyseg score --counts -
""",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tinyseg {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Composable tools for segmentation of tiny, extremely imbalanced targets."""
    console.STATE.verbose, console.STATE.quiet = verbose, quiet


score.register(app)
classweights.register(app)
resample.register(app)
split.register(app)
infer.register(app)
train.register(app)


def run() -> None:
    """Console-script entry point."""
    app(prog_name="tinyseg")
