"""Options shared by several commands, defined once (SPEC §2)."""

from __future__ import annotations

from typing import Annotated

import typer

Output = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Output file; '-' writes to stdout.", metavar="PATH"),
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
Json = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="More detail; tracebacks on errors.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summaries.")]
Classes = Annotated[
    str | None,
    typer.Option(
        "--classes",
        help="Class names in index order: 'background,crack,pore', a classes.json, or a table.",
        metavar="NAMES|FILE",
    ),
]
IgnoreIndex = Annotated[
    int,
    typer.Option("--ignore-index", help="Label excluded from counts and scores.", metavar="INT"),
]
Palette = Annotated[
    str | None,
    typer.Option(
        "--palette",
        help="JSON mapping mask colours to class indices, for RGB masks.",
        metavar="FILE",
    ),
]
Jobs = Annotated[
    int,
    typer.Option("--jobs", "-j", help="Worker processes; 0 uses every core.", min=0, metavar="N"),
]
Shard = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="Process every N-th item starting at K (0-based), for job arrays.",
        metavar="K/N",
    ),
]


def parse_shard(value: str | None) -> tuple[int, int]:
    """``K/N`` -> (K, N); no shard is (0, 1)."""
    if value is None:
        return 0, 1
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not K/N", param_hint="--shard") from None
    if count < 1 or not 0 <= index < count:
        raise typer.BadParameter(f"{value!r}: need 0 <= K < N", param_hint="--shard")
    return index, count


def single_stdout(**targets: str | bool | None) -> None:
    """At most one output may go to stdout (``-`` or ``--json``)."""
    on_stdout = [name for name, value in targets.items() if value in ("-", True)]
    if len(on_stdout) > 1:
        raise typer.BadParameter(f"only one output can go to stdout, got {', '.join(on_stdout)}")


Device = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto (a GPU when there is one), cpu, cuda or cuda:N.",
        metavar="DEVICE",
    ),
]
Seed = Annotated[
    int,
    typer.Option(
        "--seed", help="Seed of the random draws: same inputs and seed, same output.", min=0
    ),
]
