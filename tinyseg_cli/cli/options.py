"""Options shared by several commands, defined once (SPEC §2)."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer


class MissingPolicy(StrEnum):
    """What ``--missing`` does with a sample that lacks one of its inputs."""

    error = "error"
    skip = "skip"


TABLE_NAMES = (".parquet", ".pq")


def parquet_path(value: str | None) -> str | None:
    """An option callback: a table output is a Parquet file named so (or ``-``, stdout);
    ``-o x.csv`` would be Parquet under a CSV name."""
    if value is None or value == "-" or Path(value).suffix.lower() in TABLE_NAMES:
        return value
    if Path(value).is_dir():  # the output checks say "is a directory", more to the point
        return value
    raise typer.BadParameter(
        f"{value!r}: tables are written as Parquet; name the file .parquet (or '-' for stdout)"
    )


Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output table (Parquet: a .parquet name); '-' writes to stdout.",
        metavar="PATH",
        callback=parquet_path,
    ),
]


def output_dir(help: str, metavar: str = "OUT_DIR") -> Any:
    """``-o/--output`` of a command that writes a folder; ``help`` lists what goes in it:
    ``output: Annotated[Path, output_dir("Output folder: …")]``."""
    return typer.Option("--output", "-o", help=help, metavar=metavar, show_default=False)


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
        help="JSON mapping mask colours (or grey levels) to class indices, for the truth "
        "masks only.",
        metavar="FILE",
    ),
]
# score and overlay: predictions made by another tool may need their own palette and say
# their own classes.
PredPalette = Annotated[
    str | None,
    typer.Option(
        "--pred-palette",
        help="JSON mapping prediction colours (or grey levels) to class indices; --palette "
        "applies to the truth only.",
        metavar="FILE",
    ),
]
PredClasses = Annotated[
    str | None,
    typer.Option(
        "--pred-classes",
        help="The predictions' class names in index order (or a classes file), when they are "
        "not the truth's: the truth is scored in them, classes matched by name, and one "
        "prediction class the truth does not name (e.g. rest) takes all the others.",
        metavar="NAMES|FILE",
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


Parsed = TypeVar("Parsed")


def parsed(text: str | None, parse: Callable[[str], Parsed], option: str) -> Parsed | None:
    """An option's value through its parser (None stays None); the parser's ValueError is a
    usage error naming the option (exit 2)."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


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
    on_stdout = [
        "-o" if name == "output" else "--" + name.replace("_", "-")
        for name, value in targets.items()
        if value in ("-", True)
    ]
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


def in_range(
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> Callable[[Any], Any]:
    """An option callback: the value (each value of a list or tuple) is a finite number in
    the range, else a usage error naming it, e.g. ``--lr: expected a finite number > 0,
    found nan``. Click's own ``min``/``max`` let NaN through (every comparison with it is
    false): keep them for the range they show in ``--help`` and add :data:`FINITE`."""
    if low is not None and high is not None:
        rule = f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    elif low is not None:
        rule = f"{'>' if open_low else '>='} {low:g}"
    elif high is not None:
        rule = f"{'<' if open_high else '<='} {high:g}"
    else:
        rule = ""

    def check(value: Any) -> Any:
        numbers = value if isinstance(value, list | tuple) else [value]
        for number in numbers:
            if number is None:
                continue
            inside = math.isfinite(number)
            if low is not None:
                inside = inside and (number > low if open_low else number >= low)
            if high is not None:
                inside = inside and (number < high if open_high else number <= high)
            if not inside:
                raise typer.BadParameter(
                    f"expected a finite number{' ' if rule else ''}{rule}, found {number:g}"
                )
        return value

    return check


FINITE = in_range()  # no NaN or inf, beside click's min/max


# The options of the commands that read tinyseg's tables (plot, report); each command says in
# its help what it does with them.
def metric_option(help: str) -> Any:
    """``--metric NAMES``, repeatable and comma-separated (see :func:`repeated_names`)."""
    return typer.Option("--metric", help=help, metavar="NAMES", show_default=False)


def classes_choice(help: str) -> Any:
    """``--classes NAMES``: which classes (names or indices) and averages (micro, macro)."""
    return typer.Option("--classes", help=help, metavar="NAMES", show_default=False)


def table_labels(help: str) -> Any:
    """``--label NAME``, once per input table, in order."""
    return typer.Option("--label", help=help, metavar="NAME", show_default=False)


def repeated_names(given: list[str] | None) -> list[str] | None:
    """The names of a repeatable option, each occurrence possibly comma-separated
    (``--metric f2,iou --metric oii``); None when none is given."""
    names = [name.strip() for text in given or [] for name in text.split(",") if name.strip()]
    return names or None
