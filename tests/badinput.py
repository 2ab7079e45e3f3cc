"""The checks every case of the bad-input corpus makes (issue 11, SPEC §9): the exit status,
one line on stderr (two at most) naming what is wrong, no traceback, and nothing changed on
disk: no file or folder left that was not there before, inputs untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: a folder maps to "dir", a file to its digest."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        state[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def stderr_of(result: Any) -> str:
    """stderr of a CliRunner result or a CompletedProcess (bytes or text)."""
    text = result.stderr
    return text.decode(errors="replace") if isinstance(text, bytes) else text


def assert_refused(
    result: Any, code: int, *needles: str, root: Path, before: dict[str, str]
) -> str:
    """``result`` exited with ``code`` after at most two lines of stderr holding every
    needle, without a traceback, and ``root`` is as ``before``; the stderr text."""
    exit_code = getattr(result, "exit_code", getattr(result, "returncode", None))
    err = stderr_of(result)
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_code == code, f"exit {exit_code}, expected {code}: {err}"
    assert 1 <= len(lines) <= 2, f"expected one line on stderr, got {len(lines)}: {err}"
    assert "Traceback" not in err and "run with -v" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    after = snapshot(root)
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))}"
    return err
