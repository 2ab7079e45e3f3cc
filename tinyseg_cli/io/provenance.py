"""Provenance stored in every Parquet output: version, command line, input fingerprints."""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from pathlib import Path

from tinyseg_cli import __version__

HASH_LIMIT = 64 << 20  # files up to 64 MiB are hashed; larger ones are fingerprinted by size+mtime


def command_line(argv: list[str] | None = None) -> str:
    """The command as the user typed it, with the program name shortened to ``tinyseg``."""
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = "tinyseg"
    return shlex.join(args)


def fingerprint(path: str | Path) -> dict[str, object]:
    """A content hash (sha256) for small files, size and mtime for large ones and folders."""
    if str(path) == "-":
        return {"path": "-"}
    p = Path(path)
    if p.is_dir():
        digest = hashlib.sha256()
        count = size = 0
        for child in sorted(p.iterdir()):
            if child.is_file():
                stat = child.stat()
                entry = f"{child.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                digest.update(os.fsencode(entry))  # any file name, UTF-8 or not
                count += 1
                size += stat.st_size
        return {"path": str(p), "files": count, "bytes": size, "listing_sha256": digest.hexdigest()}
    if not p.exists():
        return {"path": str(p)}
    stat = p.stat()
    if stat.st_size > HASH_LIMIT:
        return {"path": str(p), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    digest = hashlib.sha256()
    with open(p, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(p), "sha256": digest.hexdigest()}


def provenance(inputs: list[str | Path], argv: list[str] | None = None) -> dict[str, object]:
    """The provenance record for an output made from ``inputs``."""
    return {
        "version": __version__,
        "command": command_line(argv),
        "inputs": [fingerprint(path) for path in inputs],
    }
