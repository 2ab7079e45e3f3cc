"""The one exception type the command line turns into a one-line message and exit status 1."""


class TinysegError(Exception):
    """A data or runtime error the user can act on (SPEC §9): one line, exit status 1."""
