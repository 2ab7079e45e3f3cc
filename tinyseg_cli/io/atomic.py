"""Outputs written atomically: a temporary file beside the target, renamed into place (SPEC §2)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tinyseg_cli.errors import TinysegError

STDIO = "-"


def check_output(path: str | Path, force: bool) -> None:
    """Fail before any work when ``path`` exists and ``force`` is off, or cannot be written."""
    if str(path) == STDIO:
        return
    target = Path(path)
    if target.is_dir():
        raise TinysegError(f"{target}: is a directory, expected a file path for the output")
    if target.exists() and not force:
        raise TinysegError(f"{target}: already exists (pass --force to overwrite)")
    parent = target.parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise TinysegError(f"{parent}: directory is not writable")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``path`` on success.

    On any exception, Ctrl-C included, the temporary file is removed and ``path`` is
    untouched, so no half-written output is ever left behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are shared files
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
