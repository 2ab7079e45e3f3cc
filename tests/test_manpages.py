"""The man pages say what ``--help`` says (SPEC §2), for every command of the app."""

from __future__ import annotations

import re
import shutil
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from unittest import mock

import pytest
import typer
import typer.main
import typer.rich_utils
from typer.testing import CliRunner

from tinyseg_cli.cli import manpage
from tinyseg_cli.cli.main import app

MAN_DIR = Path(__file__).resolve().parents[1] / "man"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
GROUP = typer.main.get_command(app)
ROOT = typer.Context(GROUP, info_name="tinyseg", **GROUP.context_settings)
COMMANDS = [name for name in GROUP.list_commands(ROOT) if not GROUP.get_command(ROOT, name).hidden]
# (page file, the arguments before --help) for the group and every subcommand
PAGES = [("tinyseg.1", ()), *((f"tinyseg-{name}.1", (name,)) for name in COMMANDS)]
STALE = "run `make man` (python -m tinyseg_cli.cli.manpage man) and commit man/"


def help_text(*args: str) -> str:
    """``tinyseg ARGS --help`` on a wide terminal (even if TERMINAL_WIDTH is set), no colours."""
    with mock.patch.object(typer.rich_utils, "MAX_WIDTH", 200):
        result = CliRunner().invoke(
            app, [*args, "--help"], env={"COLUMNS": "200"}, terminal_width=200
        )
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.output)


def flags(args: tuple[str, ...]) -> list[str]:
    """Every flag, long and short, of the group (no args) or of one subcommand."""
    ctx = ROOT
    if args:
        command = GROUP.get_command(ROOT, args[0])
        ctx = typer.Context(command, info_name=args[0], parent=ROOT, **command.context_settings)
    options = [
        p for p in ctx.command.get_params(ctx) if p.param_type_name == "option" and not p.hidden
    ]
    return [flag for p in options for flag in [*p.opts, *p.secondary_opts]]


def roff_flag(flag: str) -> str:
    """A flag as the OPTIONS section must write it: bold, hyphens as \\-."""
    return "\\fB" + flag.replace("-", "\\-") + "\\fR"


def has_token(text: str, flag: str) -> bool:
    """``flag`` stands alone in ``text``: ``--counts`` is not found inside ``--counts-out``."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def section(page: str, title: str) -> str:
    """The roff source of one ``.SH`` section of a page."""
    match = re.search(rf'^\.SH "?{title}"?\n(.*?)(?=^\.SH |\Z)', page, re.M | re.S)
    assert match, f"no {title} section"
    return match.group(1)


def help_examples(text: str) -> list[str]:
    """The non-blank lines after the last "Examples:" line of a help text."""
    lines = [line.strip() for line in text.splitlines()]
    assert "Examples:" in lines, "--help has no 'Examples:' section"
    start = len(lines) - lines[::-1].index("Examples:")
    return [line for line in lines[start:] if line]


def committed(name: str) -> str:
    path = MAN_DIR / name
    assert path.is_file(), f"{path} is missing: {STALE}"
    return path.read_text(encoding="utf-8")


def test_every_command_has_a_page() -> None:
    assert COMMANDS, "the app has no subcommand"
    assert set(manpage.render_pages()) == {name for name, _ in PAGES}


@pytest.mark.parametrize(("page", "args"), PAGES, ids=[name for name, _ in PAGES])
def test_flags_in_help_and_page(page: str, args: tuple[str, ...]) -> None:
    text, options = help_text(*args), section(committed(page), "OPTIONS")
    missing_help = [flag for flag in flags(args) if not has_token(text, flag)]
    missing_page = [flag for flag in flags(args) if roff_flag(flag) not in options]
    assert not missing_help, f"not in `tinyseg {' '.join(args)} --help`: {missing_help}"
    assert not missing_page, f"not in man/{page}: {missing_page}; {STALE}"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_ends_with_examples(name: str) -> None:
    examples = help_examples(help_text(name))
    assert 1 <= len(examples) <= 3, examples
    assert all(line.startswith("tinyseg ") for line in examples), examples


@pytest.mark.parametrize("name", COMMANDS)
def test_page_examples_are_the_help_examples(name: str) -> None:
    source = section(committed(f"tinyseg-{name}.1"), "EXAMPLES")
    body = re.search(r"^\.EX\n(.*?)^\.EE$", source, re.M | re.S)
    assert body, "EXAMPLES holds no .EX/.EE block"
    lines = [manpage_unescape(line) for line in body.group(1).splitlines() if line]
    assert lines == help_examples(help_text(name))


def manpage_unescape(line: str) -> str:
    """Undo the escapes the generator uses in examples."""
    for escaped, char in (
        (r"\&", ""),
        (r"\-", "-"),
        (r"\(aq", "'"),
        (r"\(ga", "`"),
        (r"\(ti", "~"),
        (r"\(ha", "^"),
        (r"\e", "\\"),
    ):
        line = line.replace(escaped, char)
    return line


def test_committed_pages_are_up_to_date() -> None:
    problems = manpage.stale_pages(MAN_DIR)
    assert not problems, "man pages differ from --help:\n" + "\n".join(problems) + f"\n{STALE}"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", [name for name, _ in PAGES])
def test_page_renders_without_warnings(page: str) -> None:
    run = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN_DIR / page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and not run.stderr, run.stderr


def test_check_mode_names_stale_missing_and_orphan_pages(tmp_path: Path) -> None:
    assert manpage.main([str(tmp_path)]) == 0
    assert manpage.main(["--check", str(tmp_path)]) == 0
    page = tmp_path / "tinyseg.1"
    page.write_text(page.read_text() + '.\\" edited\n')
    (tmp_path / f"tinyseg-{COMMANDS[0]}.1").unlink()
    (tmp_path / "tinyseg-gone.1").write_text(manpage.MARKER + "\n")
    problems = "\n".join(manpage.stale_pages(tmp_path))
    assert "tinyseg.1: differs" in problems
    assert f"tinyseg-{COMMANDS[0]}.1: missing" in problems
    assert "tinyseg-gone.1: no such command" in problems
    assert manpage.main(["--check", str(tmp_path)]) == 1
    manpage.main([str(tmp_path)])
    assert manpage.stale_pages(tmp_path) == []


class Mode(StrEnum):
    fast = "fast"
    slow = "slow"


def toy_app() -> typer.Typer:
    """A small app with the awkward cases: roff specials, a metavar over choices, a \\b block."""
    toy = typer.Typer(name="tinyseg", help="Toy group.")

    @toy.command(
        "demo",
        epilog="Note: see [bold]below[/bold].\n\nExamples:\n\n"
        "  tinyseg demo 'a b' \\\n    --mode slow\n",
    )
    def demo(
        item: Annotated[str, typer.Argument(help=".dot and 'quote' lead; back\\slash.")],
        mode: Annotated[
            Mode, typer.Option("--mode", "-m", metavar="MODE", help="Speed.")
        ] = Mode.fast,
        keep: Annotated[bool, typer.Option("--keep/--no-keep", help="Keep.")] = True,
    ) -> None:
        """Do a demo.

        .starts with a dot

        'starts with a quote

        \b
        kept   as
          it is
        """

    @toy.command("other")
    def other() -> None:
        """Another command."""

    return toy


def test_generator_escapes_roff_specials() -> None:
    page = manpage.render_pages(toy_app())["tinyseg-demo.1"]
    assert "\n\\&.starts with a dot" in page and "\n\\(aqstarts with a quote" in page
    assert "\\&.dot and \\(aqquote\\(aq lead; back\\eslash." in page
    assert ".nf\nkept   as\n  it is\n.fi" in page
    assert "\\fB\\-m\\fR, \\fB\\-\\-mode\\fR \\fIMODE\\fR" in page
    assert "\\fIitem\\fR\n" in page
    assert "Speed. One of: fast, slow. [default: fast]" in page
    assert "\\fB\\-\\-keep\\fR, \\fB\\-\\-no\\-keep\\fR" in page
    assert "Note: see below." in page and "[bold]" not in page
    assert ".EX\ntinyseg demo \\(aqa b\\(aq \\e\n  \\-\\-mode slow\n.EE" in page
    assert "\\fBtinyseg\\fR(1),\n\\fBtinyseg\\-other\\fR(1)" in page
    assert all(ord(char) < 127 for char in page)
