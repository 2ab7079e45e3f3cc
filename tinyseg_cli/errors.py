"""The exception types the command line turns into a one-line message: exit status 1 for a
data or runtime error, 2 for a usage error (SPEC §2, §9)."""

import re


class TinysegError(Exception):
    """A data or runtime error the user can act on (SPEC §9): one line, exit status 1."""


class UsageError(TinysegError):
    """A bad option value or combination found past option parsing: one line, exit status 2."""


# Wrappers libraries put before the reason itself (pyarrow's reader of a buffer).
_LIBRARY_PREFIXES = ("Could not open Parquet input source '<Buffer>': ",)


def library_reason(error: BaseException, limit: int = 160) -> str:
    """A library exception's reason for one of our one-line messages: its first sentence,
    without wrappers; the full text is for ``-v`` (SPEC §2: no multi-line library text)."""
    text = str(error).strip()
    if text.startswith("Weights only load failed"):  # torch.load(weights_only=True)
        return _weights_only_reason(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    reason = lines[0]
    for prefix in _LIBRARY_PREFIXES:
        reason = reason.removeprefix(prefix)
    sentence, stop, _ = reason.partition(". ")
    reason = sentence if stop else reason.rstrip(".")
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def _weights_only_reason(text: str) -> str:
    """torch's page-long refusal of a file a weights-only load cannot read, in a few words."""
    found = re.search(r"GLOBAL (\S+)", text)
    if found:
        return (
            f"it holds a pickled Python object ({found.group(1)}), which a safe weights-only "
            "load refuses"
        )
    detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    return f"a weights-only load failed: {detail.group(1).strip() if detail else 'unknown content'}"
