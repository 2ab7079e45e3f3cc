"""Outputs checked before any work and written atomically: a temporary file beside the
target, renamed into place (SPEC §2, §9)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.formats import FOLDER_TABLES, IMAGE_SUFFIXES

STDIO = "-"
TEMPORARY_EXTRA = 14  # what atomic_path's temporary name adds: ".", ".XXXXXXXX", ".tmp"

PathArg = str | Path | None
Paths = Mapping[str, PathArg | Sequence[str | Path]]  # option (or label) -> path(s)


def check_outputs(outputs: Paths, force: bool, inputs: Paths | None = None) -> None:
    """Fail before any work when an output cannot be written (:func:`check_output`), when two
    outputs are one file, or when an output is an input (usage errors).

    ``outputs`` and ``inputs`` map an option (``-o``, ``--counts-out``, ``INPUT``) to its
    path, a list of paths, or None when not given.
    """
    check_distinct(outputs, inputs)
    for option, path in _pairs(outputs):
        check_output(path, force, option)


def check_distinct(outputs: Paths, inputs: Paths | None = None) -> None:
    """Usage errors: two outputs on one file (``-`` twice included; files compared after
    resolving links), or an output that is an input, which would be overwritten."""
    given = _pairs(outputs)
    on_stdout = [option for option, path in given if str(path) == STDIO]
    if len(on_stdout) > 1:
        raise UsageError(f"only one output can go to stdout, got {', '.join(on_stdout)}")
    seen: dict[tuple, tuple[str, str | Path]] = {}
    for option, path in given:
        if str(path) == STDIO:
            continue
        key = _identity(path)
        if key in seen:
            first, first_path = seen[key]
            raise UsageError(
                f"{first} {first_path} and {option} {path} are the same file; give each "
                "output its own path"
            )
        seen[key] = (option, path)
    for source, path in _pairs(inputs or {}):
        if str(path) != STDIO and (key := _identity(path)) in seen:
            option, target = seen[key]
            raise UsageError(
                f"{option} {target} is also the input {source} {path}; an input is never "
                "overwritten, write the output elsewhere"
            )
        if str(path) != STDIO and os.path.isdir(path):
            for option, target in given:
                if str(target) != STDIO and _read_from_folder(Path(target), Path(path)):
                    raise UsageError(
                        f"{option} {target} is read as part of the input {source} {path} "
                        "(a folder); an input is never overwritten, write the output elsewhere"
                    )


def _read_from_folder(target: Path, folder: Path) -> bool:
    """Whether ``target`` is a file a command reads when given ``folder``: one of its maps
    or images, or a table tinyseg writes there for later commands (predictions, voxels)."""
    if _identity(target.parent) != _identity(folder):
        return False
    return target.name in FOLDER_TABLES or target.suffix.lower() in IMAGE_SUFFIXES


def check_output(path: str | Path, force: bool, option: str | None = None) -> None:
    """Fail before any work when ``path`` exists and ``force`` is off, or cannot be written
    (a folder, a name too long, a parent that is not a folder or not writable)."""
    if str(path) == STDIO:
        return
    target = Path(path)
    name = _name(target, option)
    if os.path.isdir(target):  # os.path: False, not an error, for a name too long
        raise TinysegError(f"{name}: is a directory, expected a file path for the output")
    if os.path.exists(target) and not force:
        raise TinysegError(f"{name}: already exists (pass --force to overwrite)")
    check_location(target, option)


def check_location(path: str | Path, option: str | None = None) -> None:
    """Fail before any work when the file ``path`` could not be written atomically: its
    name is too long, or its folder is neither a writable folder nor can be made."""
    target = Path(path)
    name = _name(target, option)
    existing = _check_location(target.parent, name)
    limit = _name_max(existing)
    if limit is not None and len(os.fsencode(target.name)) + TEMPORARY_EXTRA > limit:
        raise TinysegError(f"{name}: file name too long (at most {limit - TEMPORARY_EXTRA} bytes)")


def check_output_dir(path: str | Path, option: str | None = "-o") -> None:
    """Fail before any work when the output folder ``path`` is a file, or can neither be
    written nor made."""
    folder = Path(path)
    name = _name(folder, option)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise TinysegError(f"{name}: is a file, expected a folder for the outputs")
    _check_location(folder, name)


def _check_location(folder: Path, name: str) -> Path:
    """``folder`` is a writable folder or can be made: its nearest existing ancestor is a
    writable folder; that ancestor."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not os.path.isdir(existing):
        raise TinysegError(f"{name}: cannot be written, {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TinysegError(f"{name}: cannot be written, folder {existing} is not writable")
    return existing


def _name_max(folder: Path) -> int | None:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return None


def _name(path: Path, option: str | None) -> str:
    return f"{option} {path}" if option else str(path)


def _pairs(paths: Paths) -> list[tuple[str, str | Path]]:
    """(option, path) for every path given, lists flattened."""
    pairs: list[tuple[str, str | Path]] = []
    for option, value in paths.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(option, path) for path in values if path is not None and str(path) != ""]
    return pairs


def _identity(path: str | Path) -> tuple:
    """What tells files apart: device and inode of an existing one (hard and symbolic links
    alike), else the path with its links resolved."""
    try:
        stat = os.stat(path)
        return ("inode", stat.st_dev, stat.st_ino)
    except (OSError, ValueError):
        pass
    try:
        return ("path", os.path.realpath(path))
    except (OSError, ValueError):  # a NUL byte, a loop of links
        return ("path", os.path.abspath(path))


@contextlib.contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """Make the folder ``path`` (and missing parents) for the body's outputs; when the body
    fails, remove again the folders made here that are still empty, so a failed command
    leaves no folder that was not there before (SPEC §9)."""
    folder = Path(path)
    made = []
    missing = folder
    while not os.path.lexists(missing) and missing != missing.parent:
        made.append(missing)
        missing = missing.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for created in made:  # deepest first
            with contextlib.suppress(OSError):
                created.rmdir()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``path`` on success.

    On any exception, Ctrl-C included, the temporary file is removed (and the folders made
    for it, when empty) and ``path`` is untouched, so no half-written output is left behind.
    """
    target = Path(path)
    with output_folder(target.parent):
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        temporary = Path(name)
        try:
            yield temporary
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are shared
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
