"""The ``tinyseg`` group: version, verbosity, error handling; each command lives in its module.

Commands are loaded lazily: ``tinyseg score`` imports ``tinyseg_cli.commands.score.cli`` and what
it needs, not the training stack or the other commands. Start-up is paid on every
call of a Unix-style tool (a Makefile may run thousands); importing every command cost
about 0.16 s per call.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import traceback
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from tinyseg_cli import __version__
from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import Quiet, Verbose
from tinyseg_cli.errors import TinysegError, UsageError

# Subcommands, each defined by ``tinyseg_cli.commands.<name>.cli`` (``tune-oii`` by
# ``tune_oii``; ``register(app)``, and ``extend(command)`` where a command borrows another's
# options), in the order ``tinyseg --help`` lists them.
COMMANDS = (
    "score",
    "classweights",
    "resample",
    "split",
    "infer",
    "train",
    "tune-oii",
    "voxelize",
    "overlay",
    "plot",
    "report",
)
SETTINGS: dict[str, Any] = {
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": "markdown",
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


class TinysegGroup(TyperGroup):
    """Turns library errors into one-line messages and exit status 1 (SPEC §2, §9)."""

    def main(
        self, args: Any = None, *rest: Any, standalone_mode: bool = True, **kwargs: Any
    ) -> Any:
        """Usage errors as one line (``error: Invalid value for '--lr': …``) and exit status 2,
        instead of click's usage text and typer's boxed panel."""
        arguments = list(sys.argv[1:] if args is None else args)
        console.STATE.argv = ["tinyseg", *arguments]
        if not standalone_mode:
            return super().main(arguments, *rest, standalone_mode=False, **kwargs)
        try:
            code = super().main(arguments, *rest, standalone_mode=False, **kwargs)
        except typer.Abort:
            console.error("aborted")
            sys.exit(1)
        except typer.TyperException as error:  # click's usage errors (typer vendors click)
            if type(error).__name__ == "NoArgsIsHelpError":  # bare `tinyseg`: the help
                error.show()  # type: ignore[attr-defined]
                sys.exit(2)
            context = getattr(error, "ctx", None)
            where = f" (see '{context.command_path} --help')" if context else ""
            text = error.format_message() if hasattr(error, "format_message") else str(error)
            console.error(
                "; ".join(line.strip() for line in text.splitlines() if line.strip()) + where
            )
            sys.exit(getattr(error, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> TyperCommand | None:  # type: ignore[override]
        if cmd_name not in COMMANDS:
            return None
        return load_command(cmd_name)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:
            console.error(str(error))
            ctx.exit(2)
        except TinysegError as error:
            if console.STATE.verbose:
                console.stderr.print(traceback.format_exc(), markup=False)
            console.error(str(error))
            ctx.exit(1)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:  # Ctrl-C: outputs are atomic, so nothing is half written
            console.error("interrupted; no output was left half written")
            ctx.exit(130)
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
    **SETTINGS,
)


@functools.cache
def load_command(name: str) -> TyperCommand:
    """The click command ``name``, built by typer from its module (imported on first use)."""
    module = importlib.import_module(f"tinyseg_cli.commands.{name.replace('-', '_')}.cli")
    single = typer.Typer(**SETTINGS)
    module.register(single)
    command = typer.main.get_command(single)
    if hasattr(module, "extend"):
        module.extend(command)
    return command  # type: ignore[return-value]


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


def run() -> None:
    """Console-script entry point (also ``python -m tinyseg_cli``)."""
    try:
        app(prog_name="tinyseg")
    except SystemExit as done:
        _leave(done.code)
    _leave(0)


def _leave(code: object) -> None:
    """Flush stdout and stderr and end the process with ``code`` without running C++ static
    destructors: pyarrow's thread pools can abort the interpreter at its normal exit
    ("terminate called without an active exception", exit 134; apache/arrow#33975), seen
    in ~1 run in 100 of a busy machine even after a clean command. Every output is already
    closed by then (atomic renames, context managers), so nothing is lost."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        # a closed pipe (`| head`) or stream: nothing left to deliver
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
