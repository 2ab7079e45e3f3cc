"""Man pages (man(7) roff) generated from the typer app, so that they say what ``--help`` says.

``python -m tinyseg_cli.cli.manpage DIR`` writes ``tinyseg.1`` and one ``tinyseg-<command>.1``
per subcommand into DIR (``make man``); ``--check DIR`` writes nothing, and exits 1 naming the
pages that differ from freshly generated ones. Every text comes from the app: the group's and
the commands' help, their options (flags, metavar or choices, default, help) and the epilogs,
whose "Examples:" block becomes the EXAMPLES section verbatim.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
import typer.main
from rich.text import Text

from tinyseg_cli import __version__

PROG = "tinyseg"
MARKER = r'.\" Generated from the --help texts by tinyseg_cli.cli.manpage: run "make man".'
EXIT_STATUS = (
    ("0", "Success."),
    ("1", "Data or runtime error: an unreadable or inconsistent input, a failed write."),
    ("2", "Usage error: an unknown option, a missing or invalid argument."),
)
_SPECIAL = {"\\": r"\e", "-": r"\-", "'": r"\(aq", "`": r"\(ga", "~": r"\(ti", "^": r"\(ha"}


def escape(text: str) -> str:
    """Plain text -> roff: backslash, hyphen-minus, quotes, ~ and ^; non-ASCII as ``\\[uXXXX]``.

    Control characters other than tab (click's ``\\b`` markers, newlines) are dropped.
    """
    out = []
    for char in text:
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif ord(char) < 32 and char != "\t":
            continue
        elif ord(char) > 126:
            out.append(f"\\[u{ord(char):04X}]")
        else:
            out.append(char)
    return "".join(out)


def text_line(text: str) -> str:
    """One roff input line of plain text, protected from being read as a request."""
    escaped = escape(text)
    return "\\&" + escaped if escaped.startswith((".", "'")) else escaped


def filled(text: str) -> list[str]:
    """Prose as short roff input lines (roff refills them); whitespace runs become one space."""
    lines = textwrap.wrap(
        " ".join(text.split()), width=72, break_long_words=False, break_on_hyphens=False
    )
    return [text_line(line) for line in lines]


def bold(text: str) -> str:
    """Escaped text in bold, back to roman after it."""
    return f"\\fB{escape(text)}\\fR"


def italic(text: str) -> str:
    """Escaped text in italics, back to roman after it."""
    return f"\\fI{escape(text)}\\fR"


def plain(text: str, command: Any) -> str:
    """Help text as ``--help`` shows it: rich markup removed when the command renders it."""
    if getattr(command, "rich_markup_mode", None) == "rich":
        return Text.from_markup(text).plain
    return text


def prose(text: str, command: Any) -> list[str]:
    """Roff lines for help prose: ``.PP`` between paragraphs; ``\\b`` ones are not refilled."""
    lines: list[str] = []
    for paragraph in (p.strip("\n") for p in text.split("\n\n") if p.strip()):
        lines += [".PP"] if lines else []
        if paragraph.startswith("\b"):
            body = plain(paragraph[1:].strip("\n"), command).splitlines()
            lines += [".nf", *(text_line(line) for line in body), ".fi"]
        else:
            lines += filled(plain(paragraph, command))
    return lines


def summary(command: Any) -> str:
    """The one-line help of the commands list: short help, else the first paragraph of help."""
    text = inspect.cleandoc(command.short_help or command.help or "").partition("\f")[0]
    return " ".join(plain(text.split("\n\n")[0], command).split())


def split_epilog(command: Any) -> tuple[str, list[str]]:
    """Epilog -> (raw prose before an "Examples:" line, the plain lines after it, dedented)."""
    lines = inspect.cleandoc(command.epilog or "").splitlines()
    for index, line in enumerate(lines):
        if line.strip().lower() == "examples:":
            examples = textwrap.dedent("\n".join(lines[index + 1 :])).strip("\n")
            return "\n".join(lines[:index]), plain(examples, command).splitlines()
    return "\n".join(lines), []


def option_term(param: Any, ctx: typer.Context) -> str:
    """``-o, --output PATH``: short forms first, as in ``--help``, with the value's metavar."""
    flags = sorted(param.opts, key=lambda flag: flag.startswith("--")) + param.secondary_opts
    term = ", ".join(bold(flag) for flag in flags)
    if not (param.is_flag or param.count):
        term += " " + italic(param.make_metavar(ctx=ctx))
    return term


def argument_term(param: Any) -> str:
    """An argument's name as ``--help`` lists it: its metavar, or its name."""
    if param.metavar is not None:
        return italic(param.metavar)
    return italic(param.name + ("..." if param.nargs != 1 else ""))


def param_help(param: Any, ctx: typer.Context) -> str:
    """Help text, plus what ``--help`` appends: default, range, required; choices if hidden."""
    raw = param.help or ""
    record = param.get_help_record(ctx)
    full = record[1] if record else raw
    parts = [" ".join(plain(raw, ctx.command).split())]
    choices = getattr(param.type, "choices", None)
    if param.metavar is not None and choices:
        choices = (str(getattr(choice, "value", choice)) for choice in choices)
        parts.append(f"One of: {', '.join(choices)}.")
    parts.append(full[len(raw) :].strip() if full.startswith(raw) else "")
    return " ".join(part for part in parts if part)


def params_section(title: str, ctx: typer.Context, kind: str) -> list[str]:
    """ARGUMENTS or OPTIONS: a ``.TP`` entry per visible parameter of that kind."""
    lines: list[str] = []
    for param in ctx.command.get_params(ctx):
        if param.param_type_name != kind or getattr(param, "hidden", False):
            continue
        term = option_term(param, ctx) if kind == "option" else argument_term(param)
        lines += [".TP", term, *filled(param_help(param, ctx))]
    return [f".SH {title}", *lines] if lines else []


def header(name: str, ctx: typer.Context) -> list[str]:
    """Marker comment, ``.TH`` (no date: pages change only when the help does), NAME."""
    title = escape(name.upper())
    return [
        MARKER,
        f'.TH "{title}" 1 "" "{escape(f"{PROG} {__version__}")}" "User Commands"',
        ".SH NAME",
        text_line(f"{name} - {summary(ctx.command).rstrip('.')}"),
    ]


def synopsis(ctx: typer.Context) -> list[str]:
    """SYNOPSIS: the usage line of ``--help``."""
    pieces = " ".join(ctx.command.collect_usage_pieces(ctx))
    return [".SH SYNOPSIS", f"{bold(ctx.command_path)} {escape(pieces)}"]


def description(ctx: typer.Context, epilog_prose: str) -> list[str]:
    """DESCRIPTION: the full help text, then any epilog prose that is not examples."""
    text = inspect.cleandoc(ctx.command.help or "").partition("\f")[0]
    lines = prose(f"{text}\n\n{epilog_prose}", ctx.command)
    return [".SH DESCRIPTION", *lines] if lines else []


def examples(lines: list[str]) -> list[str]:
    """EXAMPLES: the epilog's example lines, unfilled so that no command is re-wrapped."""
    if not lines:
        return []
    return [".SH EXAMPLES", ".EX", *(text_line(line) if line else "" for line in lines), ".EE"]


def exit_status() -> list[str]:
    """EXIT STATUS, the same for every command (SPEC §2)."""
    lines = ['.SH "EXIT STATUS"']
    for code, meaning in EXIT_STATUS:
        lines += [".TP", bold(code), *filled(meaning)]
    return lines


def see_also(pages: Sequence[str]) -> list[str]:
    """SEE ALSO: the other pages, as ``name(1)``."""
    refs = [f"{bold(page)}(1)" for page in pages]
    return ['.SH "SEE ALSO"', ",\n".join(refs)] if refs else []


def commands_section(ctx: typer.Context, names: Sequence[str]) -> list[str]:
    """COMMANDS: each subcommand with its one-line help."""
    lines = [".SH COMMANDS"]
    for name in names:
        lines += [".TP", bold(name), *filled(summary(ctx.command.get_command(ctx, name)))]
    return lines


def group_page(ctx: typer.Context, names: Sequence[str]) -> str:
    """``tinyseg.1``: the group, its global options and the list of commands."""
    epilog_prose, example_lines = split_epilog(ctx.command)
    lines = [
        *header(PROG, ctx),
        *synopsis(ctx),
        *description(ctx, epilog_prose),
        *params_section("OPTIONS", ctx, "option"),
        *commands_section(ctx, names),
        *examples(example_lines),
        *exit_status(),
        *see_also([f"{PROG}-{name}" for name in names]),
    ]
    return "\n".join(lines) + "\n"


def command_page(ctx: typer.Context, names: Sequence[str]) -> str:
    """``tinyseg-<command>.1``: one subcommand, its arguments, options and examples."""
    name = ctx.info_name or ""
    epilog_prose, example_lines = split_epilog(ctx.command)
    siblings = [f"{PROG}-{other}" for other in names if other != name]
    lines = [
        *header(f"{PROG}-{name}", ctx),
        *synopsis(ctx),
        *description(ctx, epilog_prose),
        *params_section("ARGUMENTS", ctx, "argument"),
        *params_section("OPTIONS", ctx, "option"),
        *examples(example_lines),
        *exit_status(),
        *see_also([PROG, *siblings]),
    ]
    return "\n".join(lines) + "\n"


def command_names(ctx: typer.Context) -> list[str]:
    """The group's visible subcommands, in the order ``--help`` lists them."""
    group = ctx.command
    names = group.list_commands(ctx)
    return [name for name in names if not getattr(group.get_command(ctx, name), "hidden", True)]


def render_pages(app: typer.Typer | None = None) -> dict[str, str]:
    """File name -> page text for the group and each of its subcommands."""
    if app is None:
        from tinyseg_cli.cli.main import app
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name=PROG, **group.context_settings)
    names = command_names(root)
    pages = {f"{PROG}.1": group_page(root, names)}
    for name in names:
        command = group.get_command(root, name)
        ctx = typer.Context(command, info_name=name, parent=root, **command.context_settings)
        pages[f"{PROG}-{name}.1"] = command_page(ctx, names)
    return pages


def orphans(directory: Path, pages: dict[str, str]) -> list[Path]:
    """Generated pages in ``directory`` of commands that no longer exist."""
    candidates = sorted(directory.glob(f"{PROG}*.1")) if directory.is_dir() else []
    return [
        path
        for path in candidates
        if path.name not in pages
        and path.read_text(encoding="utf-8", errors="replace").startswith(MARKER)
    ]


def stale_pages(directory: Path, pages: dict[str, str] | None = None) -> list[str]:
    """What differs between ``directory`` and freshly generated pages, one line per file."""
    pages = render_pages() if pages is None else pages
    problems = []
    for name, content in pages.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_bytes() != content.encode():
            problems.append(f"{path}: differs from the --help texts")
    problems += [f"{path}: no such command any more" for path in orphans(directory, pages)]
    return problems


def write_pages(directory: Path, pages: dict[str, str] | None = None) -> list[str]:
    """Write the pages that changed, remove generated pages of removed commands; report both."""
    pages = render_pages() if pages is None else pages
    directory.mkdir(parents=True, exist_ok=True)
    done = []
    for name, content in pages.items():
        path = directory / name
        if not path.is_file() or path.read_bytes() != content.encode():
            path.write_bytes(content.encode())
            done.append(f"wrote {path}")
    for path in orphans(directory, pages):
        path.unlink()
        done.append(f"removed {path}")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tinyseg_cli.cli.manpage [--check] DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m tinyseg_cli.cli.manpage",
        description="Write the tinyseg man pages into DIR, or check that they are up to date.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming the pages that are out of date",
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_pages(args.directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("man pages are stale: run 'make man'", file=sys.stderr)
        return 1 if problems else 0
    for message in write_pages(args.directory):
        print(message, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
