"""``score``'s input modes: which of --truth/--pred, --run and --counts go together, and
the parsed ``--run NAME=PATH`` values (usage errors, exit 2, before any file is read)."""

from __future__ import annotations

import typer


def check_modes(
    tables: list[str], truth: str | None, pred: str | None, counts: bool, runs: list[str]
) -> list[tuple[str, str]]:
    """Usage errors between the input modes; the parsed ``--run`` values."""
    if counts:
        if not tables:
            raise typer.BadParameter("--counts needs at least one counts table ('-' for stdin)")
        if truth or pred or runs:
            raise typer.BadParameter(
                "--counts reduces tables; it takes no --truth, --pred or --run"
            )
        return []
    if tables:
        raise typer.BadParameter(
            f"unexpected argument {tables[0]!r}: maps are given with --truth and --pred, and "
            "counts tables need --counts"
        )
    if runs:
        if pred:
            raise typer.BadParameter("--run replaces --pred (use --run NAME=PREDICTIONS)")
        return parse_runs(runs)
    if not truth or not pred:
        raise typer.BadParameter("give --truth and --pred, or --run NAME=PATH, or --counts TABLE")
    return []


def parse_runs(runs: list[str]) -> list[tuple[str, str]]:
    parsed = []
    for value in runs:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"{value!r} is not NAME=PATH", param_hint="--run")
        parsed.append((name, path))
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise typer.BadParameter("run names must differ", param_hint="--run")
    return parsed
