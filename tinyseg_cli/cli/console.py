"""Console output on stderr: messages, warnings, progress bars and tables (SPEC §2)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rich.console import Console

stderr = Console(stderr=True, highlight=False)


@dataclass
class Verbosity:
    verbose: bool = False
    quiet: bool = False
    argv: list[str] = field(default_factory=lambda: ["tinyseg"])  # for provenance records


STATE = Verbosity()


def configure(verbose: bool = False, quiet: bool = False) -> None:
    """Apply ``-v``/``-q``; a flag given to the group stays on for the command."""
    STATE.verbose = STATE.verbose or verbose
    STATE.quiet = STATE.quiet or quiet


def warn(message: str) -> None:
    if not STATE.quiet:
        stderr.print(f"[yellow]warning:[/yellow] {message}")


def error(message: str) -> None:
    stderr.print(f"[red]error:[/red] {message}", soft_wrap=True, markup=True)


@contextlib.contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr, shown only on a terminal and without ``--quiet``."""
    if STATE.quiet or not stderr.is_terminal:
        yield lambda _item: None
        return
    from rich.progress import (  # imported only when a bar is shown (start-up of every call)
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda _item: bar.advance(task)
