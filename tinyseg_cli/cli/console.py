"""Console output on stderr: messages, warnings, progress bars and tables (SPEC §2)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from tinyseg_cli.text import printable


class _Console(Console):
    """A rich console that prints no control character from its text: a value that reaches
    a table or message without :func:`safe` still cannot move the cursor or retitle the
    terminal (SPEC §9). Line breaks stay; rich adds its own styling codes afterwards."""

    def render_str(self, text: str, **options: Any) -> Text:
        if not text.isprintable():
            text = "\n".join(printable(line) for line in text.split("\n"))
        return super().render_str(text, **options)


stderr = _Console(stderr=True, highlight=False)


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
    root = logging.getLogger()
    if not any(isinstance(handler, _LibraryLog) for handler in root.handlers):
        root.addHandler(_LibraryLog())


class _LibraryLog(logging.Handler):
    """Libraries' log records (tifffile's notes on each bad tag of a damaged TIFF, laspy's):
    shown only with -v, as escaped warnings; without it our own one-line error says what is
    wrong (SPEC §2). Python prints records nobody handles raw on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if STATE.verbose:
            with contextlib.suppress(Exception):  # a malformed record is not worth a traceback
                warn(f"{record.name}: {record.getMessage()}")


def safe(text: object) -> str:
    """``text`` from input (a name, a path, a table value) for a rich table, title or
    message: non-printable characters escaped (:func:`printable`) and rich markup too, so a
    class named ``[red]`` prints as it is."""
    return escape(printable(str(text)))


def warn(message: str) -> None:
    """``warning: MESSAGE`` on one line of stderr (unless -q)."""
    if not STATE.quiet:
        stderr.print(f"[yellow]warning:[/yellow] {escape(printable(message))}", soft_wrap=True)


def error(message: str) -> None:
    """``error: MESSAGE`` on one line of stderr."""
    stderr.print(f"[red]error:[/red] {escape(printable(message))}", soft_wrap=True)


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
        task = bar.add_task(safe(description), total=total)
        yield lambda _item: bar.advance(task)
