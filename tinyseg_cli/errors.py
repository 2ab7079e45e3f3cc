"""The exception types the command line turns into a one-line message: exit status 1 for a
data or runtime error, 2 for a usage error (SPEC §2, §9)."""


class TinysegError(Exception):
    """A data or runtime error the user can act on (SPEC §9): one line, exit status 1."""


class UsageError(TinysegError):
    """A bad option value or combination found past option parsing: one line, exit status 2."""
