"""Paths and names that come from input (SPEC §9): what to say when a path is not a file,
which folder entries are inputs, and which sample ids a table can store or an output file
can be named after. Checked before any work, so no run stops half done on a name."""

from __future__ import annotations

import os
from pathlib import Path

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import TEMPORARY_EXTRA

NAME_MAX = 255  # bytes, where the file system does not say
SHOWN = 40  # characters of a long name shown in a message


def not_a_file(path: str | Path, what: str = "file") -> TinysegError:
    """The error for ``path`` that is not a file: absent, or a folder."""
    if Path(path).is_dir():
        article = "an" if what[0] in "aeiou" else "a"
        return TinysegError(f"{path}: is a folder, expected {article} {what}")
    return TinysegError(f"{path}: no such {what}")


def visible(path: Path) -> bool:
    """Whether a folder entry is an input: hidden files (``.name``, such as the ``._a.png``
    that macOS leaves on shared drives) are skipped, as most tools do."""
    return not path.name.startswith(".")


def undecodable(text: str) -> bool:
    """Whether ``text`` holds bytes of a name that was not UTF-8 (``os.fsdecode`` keeps them
    as surrogate escapes, which no table or UTF-8 stream can hold)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_storable(name: str, where: str, what: str = "sample ids") -> None:
    """A sample id (scene) taken from a file name must be text a table can store (UTF-8)."""
    if undecodable(name):
        raise TinysegError(
            f"{where}: the file name is not valid UTF-8, and {what} are stored as text "
            "(rename the file)"
        )


def name_limit(folder: Path) -> int:
    """The longest file name, in bytes, that the file system of ``folder`` (or of its
    nearest existing parent) takes."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        return os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def check_file_name(
    name: str, where: str, suffix: str, limit: int, what: str = "sample_id"
) -> None:
    """``name`` (a sample id or scene) can name the output ``<name><suffix>`` and its
    temporary file in a folder whose names take at most ``limit`` bytes: a single,
    printable, not hidden name that a table can store."""
    shown = name if len(name) <= SHOWN else name[:SHOWN] + "…"
    if not name:
        raise TinysegError(f"{where}: empty {what} cannot name an output file")
    if undecodable(name):
        raise TinysegError(f"{where}: {what} '{shown}' is not valid UTF-8")
    if "/" in name or "\\" in name:
        raise TinysegError(
            f"{where}: {what} '{shown}' holds '/' or '\\'; it names an output file, which "
            "stays in the output folder"
        )
    control = next((char for char in name if not char.isprintable()), None)
    if control is not None:
        raise TinysegError(
            f"{where}: {what} '{shown}' holds the control character {control!r}, which "
            "cannot be part of an output file name"
        )
    if name.startswith("."):
        raise TinysegError(
            f"{where}: {what} '{shown}' starts with '.'; it would name a hidden file"
        )
    size = len(os.fsencode(name))
    room = limit - len(os.fsencode(suffix)) - TEMPORARY_EXTRA
    if size > room:
        raise TinysegError(
            f"{where}: {what} '{shown}' is too long for a file name ({size} bytes; the limit "
            f"here is {room})"
        )
